"""Commands over many sendings.  Functions never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import STATUS_VO_COLUMNS
from invoice_outbox.sendings.status import RETRYABLE, Status

BATCH = 1000


async def retry_all_failed(session: AsyncSession, *, now: datetime) -> list[Sequence[Any]]:
    """Queue every Failed and Aborted sending again, due now, with a fresh attempt budget.

    Works in batches of ids (bounded statement size); returns the requeued rows as
    InvoiceSendingStatusVo rows (status Pending).
    """
    retryable = [s.value for s in RETRYABLE]
    ids: list[uuid.UUID] = list(
        (await session.scalars(select(Sending.id).where(Sending.status.in_(retryable)))).all()
    )
    rows: list[Sequence[Any]] = []
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        result = await session.execute(
            update(Sending)
            .where(Sending.id.in_(chunk), Sending.status.in_(retryable))
            .values(status=Status.PENDING.value, next_attempt_at=now, round_attempts=0,
                    updated_at=now)
            .returning(*STATUS_VO_COLUMNS)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        rows.extend(result.all())
    return rows
