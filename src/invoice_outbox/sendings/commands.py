"""Commands over many sendings: requeue (retry all, resend) and discard.  Functions never commit.

Which status may become which lives in `status`; the guarded writes that apply those rules are
`transitions`.  Here is what the commands select and which edges they may take.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import STATUS_VO_COLUMNS
from invoice_outbox.sendings.status import RETRYABLE, Status, sources_of

BATCH = 1000


def resend_sources(*, force: bool, discarded: bool = False) -> frozenset[Status]:
    """Statuses a resend may move to Pending: Failed and Aborted; Sent too when forced;
    Discarded too when `discarded` (an admin naming the sending; bulk selections by cause or
    filter, and retry-all, leave discarded sendings alone)."""
    sources = (
        RETRYABLE
        | ({Status.SENT} if force else frozenset())
        | ({Status.DISCARDED} if discarded else frozenset())
    )
    assert sources <= sources_of(Status.PENDING), "status.py must allow every resend edge"
    return sources


@dataclass(frozen=True, slots=True)
class RetryAll:
    """What `retry_all_failed` requeued: legacy rows (for the answer) and their sending ids."""

    rows: list[Sequence[Any]]
    ids: list[uuid.UUID]


async def retry_all_failed(session: AsyncSession, *, now: datetime) -> RetryAll:
    """Queue every Failed and Aborted sending again, due now, with a fresh attempt budget.

    Discarded sendings (given up for good) are left alone.  Works in batches of ids (bounded
    statement size); returns the requeued rows as InvoiceSendingStatusVo rows (status
    Pending) and their ids.
    """
    retryable = [s.value for s in RETRYABLE]
    ids: list[uuid.UUID] = list(
        (await session.scalars(select(Sending.id).where(Sending.status.in_(retryable)))).all()
    )
    rows: list[Sequence[Any]] = []
    requeued: list[uuid.UUID] = []
    width = len(STATUS_VO_COLUMNS)
    for start in range(0, len(ids), BATCH):
        moved = await transitions.requeue(
            session,
            ids[start : start + BATCH],
            sources=RETRYABLE,
            now=now,
            returning=(*STATUS_VO_COLUMNS, Sending.id),
        )
        for row in moved:
            rows.append(tuple(row[:width]))
            requeued.append(uuid.UUID(str(row[width])))
    return RetryAll(rows=rows, ids=requeued)


async def requeue(
    session: AsyncSession,
    ids: Sequence[uuid.UUID],
    *,
    sources: frozenset[Status],
    now: datetime,
    unchanged_since: datetime | None = None,
) -> list[uuid.UUID]:
    """Put the sendings `ids` back in the queue, due now, with a fresh attempt budget.

    Only rows whose status is in `sources` (see `resend_sources`) move; with
    `unchanged_since`, only rows not updated after that time (a job's snapshot).  Returns
    the ids that moved.  The attempt count, idempotency key and history are kept.
    """
    moved = await transitions.requeue(
        session, ids, sources=sources, now=now, unchanged_since=unchanged_since
    )
    return [row[0] for row in moved]


async def discard(
    session: AsyncSession, sending_id: uuid.UUID, *, actor: str, reason: str, now: datetime
) -> bool:
    """Give up on an Aborted sending for good: it becomes Discarded, with who, when and why.

    No attempt is scheduled.  Bulk resends by cause or filter (and retry-all) leave it alone;
    an admin's resend naming it still works.  Returns False when the sending is not Aborted
    (nothing changed).
    """
    return await transitions.discard(session, sending_id, actor=actor, reason=reason, now=now)


async def discard_many(
    session: AsyncSession,
    ids: Sequence[uuid.UUID],
    *,
    actor: str,
    reason: str,
    now: datetime,
    unchanged_since: datetime | None = None,
) -> list[uuid.UUID]:
    """`discard` for many Aborted sendings at once (a discard job's batch); with
    `unchanged_since`, only those not changed since the job's snapshot.  Returns those moved."""
    return await transitions.discard_many(
        session, ids, actor=actor, reason=reason, now=now, unchanged_since=unchanged_since
    )
