"""Commands over many sendings: requeue (retry all, resend) and discard.  Functions never commit.

Which status may become which lives in `status`; here are only the guarded UPDATEs that apply
those rules, so a row that changed meanwhile is left alone instead of being overwritten.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import STATUS_VO_COLUMNS
from invoice_outbox.sendings.status import RETRYABLE, Status, sources_of

BATCH = 1000

#: A discarded sending stays `Aborted`; its Reason starts with this (until a schema column
#: such as ``discarded_at`` exists, the Reason is the marker).
DISCARDED_PREFIX = "Discarded by "


def resend_sources(*, force: bool) -> frozenset[Status]:
    """Statuses a resend may move to Pending: Failed and Aborted; Sent too when forced."""
    sources = RETRYABLE | ({Status.SENT} if force else frozenset())
    assert sources <= sources_of(Status.PENDING), "status.py must allow every resend edge"
    return sources


def discarded() -> ColumnElement[bool]:
    """Sendings given up for good by an admin (see `discard`)."""
    escaped = DISCARDED_PREFIX.replace("_", "\\_").replace("%", "\\%")
    return and_(
        Sending.status == Status.ABORTED.value,
        # COALESCE: with a NULL Reason, NOT (... LIKE ...) would be NULL and drop the row.
        func.coalesce(Sending.reason, "").like(f"{escaped}%", escape="\\"),
    )


def not_discarded() -> ColumnElement[bool]:
    return not_(discarded())


def is_discarded(status: str, reason: str | None) -> bool:
    return status == Status.ABORTED.value and (reason or "").startswith(DISCARDED_PREFIX)


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
        (
            await session.scalars(
                select(Sending.id).where(Sending.status.in_(retryable), not_discarded())
            )
        ).all()
    )
    rows: list[Sequence[Any]] = []
    requeued: list[uuid.UUID] = []
    width = len(STATUS_VO_COLUMNS)
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        result = await session.execute(
            update(Sending)
            .where(Sending.id.in_(chunk), Sending.status.in_(retryable))
            .values(
                status=Status.PENDING.value, next_attempt_at=now, round_attempts=0, updated_at=now
            )
            .returning(*STATUS_VO_COLUMNS, Sending.id)
            .execution_options(synchronize_session=False)
        )
        for row in result.all():
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
    if not ids:
        return []
    conditions: list[ColumnElement[bool]] = [
        Sending.id.in_(list(ids)),
        Sending.status.in_(sorted(s.value for s in sources)),
    ]
    if unchanged_since is not None:
        conditions.append(Sending.updated_at <= unchanged_since)
    result = await session.execute(
        update(Sending)
        .where(*conditions)
        .values(
            status=Status.PENDING.value,
            next_attempt_at=now,
            round_attempts=0,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(Sending.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())


async def discard(
    session: AsyncSession, sending_id: uuid.UUID, *, actor: str, reason: str, now: datetime
) -> bool:
    """Give up on an Aborted sending for good: no more attempts, the Reason says who and why.

    The status stays `Aborted` (nothing was cancelled); `next_attempt_at` is cleared.  Bulk
    resends by cause or filter (and retry-all) leave it alone; a resend naming it still works.
    Returns False when the sending is not Aborted or already discarded (nothing changed).
    """
    result = await session.execute(
        update(Sending)
        .where(Sending.id == sending_id, Sending.status == Status.ABORTED.value, not_discarded())
        .values(reason=f"{DISCARDED_PREFIX}{actor}: {reason}", next_attempt_at=None, updated_at=now)
        .returning(Sending.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None
