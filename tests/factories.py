"""Build sendings and attempts for tests with explicit, readable values."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import SendingType, Status


def sending(
    *,
    status: Status,
    when: datetime,
    practice_id: uuid.UUID,
    system: str = "MediSwitch",
    reason: str | None = None,
    attempts: int = 0,
    overrides: dict[str, Any] | None = None,
) -> Sending:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "practice_id": practice_id,
        "encounter_id": uuid.uuid4(),
        "invoice_id": uuid.uuid4(),
        "system": system,
        "sending_type": SendingType.INVOICE.value,
        "status": status.value,
        "reason": reason,
        "attempts": attempts,
        "round_attempts": attempts,
        "sending_time": when,
        "idempotency_key": uuid.uuid4().hex,
        "created_at": when,
        "updated_at": when,
    }
    values.update(overrides or {})
    return Sending(**values)
