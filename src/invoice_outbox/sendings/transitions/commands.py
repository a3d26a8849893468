"""Admins' and practices' commands: resends and retries (→ Pending), cancels, discards.

`requeue` (→ Pending from the sources asked for, optionally only rows unchanged since a
snapshot), `cancel_loaded` (→ Cancelled on a loaded, locked row), `discard` and
`discard_many` (Aborted → Discarded).  Functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, update
from sqlalchemy.orm import QueryableAttribute

from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status, can_transition
from invoice_outbox.sendings.transitions._guards import _SETTLED, Executor, _guard

S = Status

#: A new round (a resend, a correction) asks for a new verdict.
_NO_VERDICT: Final[dict[str, Any]] = {
    "acceptance": None,
    "acceptance_code": None,
    "acceptance_at": None,
    "acceptance_due_at": None,
}


async def requeue(
    executor: Executor,
    ids: Sequence[uuid.UUID],
    *,
    sources: frozenset[Status],
    now: datetime,
    unchanged_since: datetime | None = None,
    returning: Sequence[QueryableAttribute[Any]] = (Sending.id,),
) -> Sequence[Row[Any]]:
    """→ Pending (a resend, retry-all): of the sendings `ids`, those whose status is in
    `sources` (part of `sources_of(PENDING)`; with `unchanged_since`, only rows not updated
    after it) are due now with a fresh attempt budget.  The attempt count, idempotency key and
    history are kept; a discard is over (its columns are cleared; the audit log keeps it).
    Returns `returning` of each row that moved."""
    if not ids:
        return []
    conditions = [Sending.id.in_(list(ids)), _guard(S.PENDING, frozenset(sources))]
    if unchanged_since is not None:
        conditions.append(Sending.updated_at <= unchanged_since)
    result = await executor.execute(
        update(Sending)
        .where(*conditions)
        .values(
            status=S.PENDING.value,
            next_attempt_at=now,
            round_attempts=0,
            updated_at=now,
            discarded_at=None,
            discarded_by=None,
            discard_reason=None,
            **_SETTLED,
            **_NO_VERDICT,
        )
        .returning(*returning)
        .execution_options(synchronize_session=False)
    )
    return result.all()


def cancel_loaded(sending: Sending, *, now: datetime) -> bool:
    """→ Cancelled on a loaded (locked) row, where the graph has the edge (not from Sent or
    Cancelled).  Returns whether it moved.  One in flight keeps its lease: the worker's
    outcome is then recorded as an attempt only."""
    if not can_transition(Status(sending.status), S.CANCELLED):
        return False
    sending.status = S.CANCELLED.value
    sending.next_attempt_at = None
    sending.updated_at = now
    return True


async def discard(
    executor: Executor, sending_id: uuid.UUID, *, actor: str, reason: str, now: datetime
) -> bool:
    """Aborted → Discarded: given up on for good by `actor` for `reason` (kept with the time on
    the row); nothing is scheduled.  False when it is not Aborted (nothing changed)."""
    result = await executor.execute(
        update(Sending)
        .where(Sending.id == sending_id, _guard(S.DISCARDED))
        .values(
            status=S.DISCARDED.value,
            discarded_at=now,
            discarded_by=actor[:200],
            discard_reason=reason,
            next_attempt_at=None,
            updated_at=now,
        )
        .returning(Sending.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def discard_many(
    executor: Executor,
    ids: Sequence[uuid.UUID],
    *,
    actor: str,
    reason: str,
    now: datetime,
    unchanged_since: datetime | None = None,
) -> list[uuid.UUID]:
    """Aborted → Discarded for each of `ids` that is Aborted (and, with `unchanged_since`, not
    changed after it: a discard job's snapshot).  Returns the ids that moved."""
    if not ids:
        return []
    statement = update(Sending).where(Sending.id.in_(sorted(ids)), _guard(S.DISCARDED))
    if unchanged_since is not None:
        statement = statement.where(Sending.updated_at <= unchanged_since)
    result = await executor.execute(
        statement.values(
            status=S.DISCARDED.value,
            discarded_at=now,
            discarded_by=actor[:200],
            discard_reason=reason,
            next_attempt_at=None,
            updated_at=now,
        )
        .returning(Sending.id)
        .execution_options(synchronize_session=False)
    )
    return [row[0] for row in result.all()]
