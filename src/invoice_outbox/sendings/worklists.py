"""What a practice must correct: sendings the recipient rejected for a reason the practice
fixes (the rejection catalogue's `who` is the practice), with the fix in plain words.

Read by the dashboard's practice view; the API's practice view marks the same items with
``MustCorrect``.  Nothing here writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, tzinfo
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings.items import ITEM_COLUMNS, practice_item
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Acceptance, Status
from invoice_outbox.systems.rejections import Catalogue

#: Rejections looked at per view (newest first); the practice view shows at most `SHOWN`.
_LOOKED_AT: Final = 500
SHOWN: Final = 50


async def must_correct(
    connection: AsyncConnection,
    practices: Collection[uuid.UUID] | None,
    *,
    catalogue: Catalogue,
    zone: tzinfo,
    now: datetime,
) -> list[dict[str, Any]]:
    """Newest first, up to `SHOWN` practice items (`practice_item`) of rejected sendings of
    `practices` (None: every practice) that the practice must correct."""
    statement = select(*ITEM_COLUMNS).where(
        Sending.status == Status.ABORTED.value, Sending.acceptance == Acceptance.REJECTED.value
    )
    if practices is not None:
        statement = statement.where(Sending.practice_id.in_(sorted(practices)))
    statement = statement.order_by(Sending.sending_time.desc(), Sending.id).limit(_LOOKED_AT)
    items = []
    for row in await connection.execute(statement):
        item = practice_item(row, zone, now, catalogue=catalogue)
        if item["MustCorrect"]:
            items.append(item)
            if len(items) == SHOWN:
                break
    return items
