"""Keeping invoice documents only as long as delivery needs them (POPIA).

A document is purged once it is older than the retention period and every sending that
points at it has been Sent or Cancelled for at least that long (Aborted and Failed sendings
keep theirs: someone may fix the cause and resend).  Replaced documents, which no sending
points at any more, go too.  The sendings and attempts stay: they hold ids, never the document.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status

DONE = (Status.SENT.value, Status.CANCELLED.value)


async def purge_documents(connection: AsyncConnection, *, now: datetime, keep: timedelta) -> int:
    """Delete documents no longer needed; returns how many (caller commits)."""
    cutoff = now - keep
    still_needed = exists(
        select(Sending.id).where(
            Sending.document_id == Document.id,
            or_(Sending.status.not_in(DONE), Sending.updated_at >= cutoff),
        )
    )
    result = await connection.execute(
        delete(Document).where(and_(Document.created_at < cutoff, ~still_needed))
    )
    return int(result.rowcount)
