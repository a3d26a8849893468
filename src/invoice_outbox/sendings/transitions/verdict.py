"""The recipient's verdict: the acceptance column (its own graph,
`status.ACCEPTANCE_TRANSITIONS`), with the status edges a verdict brings.

`mark_sent_judged` (Sending → Sent with Awaiting or Accepted), `reject_in_answer` (Sending →
Aborted, Rejected), `acknowledge` (→ Accepted, or → Rejected with Sent → Aborted),
`mark_overdue` (Awaiting → Overdue); `release_followers` makes due the sendings that waited
for a finished one (no edge); `undecided` reads a verdict.  Functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.status import (
    UNDECIDED,
    Acceptance,
    Status,
    acceptance_sources_of,
    ensure_transition,
)
from invoice_outbox.sendings.transitions._guards import _FROM_SENDING, _SETTLED, Executor, _settle

S = Status
A = Acceptance


def _acceptance_guard(target: Acceptance) -> ColumnElement[bool]:
    """``acceptance IN acceptance_sources_of(target)`` (NULL included where it may)."""
    sources = acceptance_sources_of(target)
    named = sorted(a.value for a in sources if a is not None)
    guard = Sending.acceptance.in_(named)
    return or_(Sending.acceptance.is_(None), guard) if None in sources else guard


@dataclass(frozen=True, slots=True)
class JudgedAttempt:
    """A delivered attempt of a system that tells acceptance: the claim it settles, the
    attempt's record, and the verdict (Awaiting with a deadline, or Accepted)."""

    sending_id: uuid.UUID
    attempt: int
    started_at: datetime
    duration_ms: int
    code: int | None
    verdict: Acceptance
    due_at: datetime | None
    recipient_code: str | None
    recipient_message: str | None
    reference: str | None
    #: The keyed digest of the document handed over (`Attempt.document_digest`).
    document_digest: str | None = None


async def mark_sent_judged(
    connection: AsyncConnection, judged: JudgedAttempt, *, worker: str, now: datetime
) -> bool:
    """Sending → Sent with its acceptance (None → Awaiting or Accepted), and its "Sent"
    attempt, guarded by the claim as `mark_sent` is.  Only systems that tell acceptance take
    this path; Transport systems keep `mark_sent` (no extra statement).  False when the
    claim no longer held (nothing changed)."""
    if judged.verdict not in (A.AWAITING, A.ACCEPTED):
        raise ValueError(f"a delivered sending cannot be {judged.verdict.value} at once")
    values: dict[str, Any] = {
        "sent_at": now,
        "reason": None,
        "next_attempt_at": None,
        "updated_at": now,
        "acceptance": judged.verdict.value,
        "acceptance_code": judged.recipient_code,
        "acceptance_at": now if judged.verdict is A.ACCEPTED else None,
        "acceptance_due_at": judged.due_at if judged.verdict is A.AWAITING else None,
    }
    if judged.reference is not None:
        values["acceptance_reference"] = judged.reference
    result = await connection.execute(
        update(Sending)
        .where(
            Sending.id == judged.sending_id,
            _FROM_SENDING[S.SENT],
            Sending.lease_owner == worker,
            Sending.attempts == judged.attempt,
        )
        .values(status=S.SENT.value, **values, **_SETTLED)
    )
    if not result.rowcount:
        return False
    await connection.execute(
        insert(Attempt).values(
            sending_id=judged.sending_id,
            number=judged.attempt,
            started_at=judged.started_at,
            duration_ms=judged.duration_ms,
            outcome="Sent",
            code=judged.code,
            reason=None,
            worker=worker,
            recipient_code=judged.recipient_code,
            recipient_message=judged.recipient_message,
            document_digest=judged.document_digest,
        )
    )
    return True


async def reject_in_answer(
    connection: AsyncConnection,
    sending_id: uuid.UUID,
    *,
    worker: str,
    attempt: int,
    reason: str,
    cause: str,
    code: str | None,
    reference: str | None,
    now: datetime,
) -> bool:
    """Sending → Aborted, acceptance None → Rejected: the recipient refused the claim in its
    answer (its `code`, the catalogue's `cause` slug, a `reason` naming the rejection).  No
    automatic attempt follows: the legacy aborted list shows it.  Guarded by the claim."""
    values: dict[str, Any] = {
        "next_attempt_at": None,
        "reason": reason,
        "cause": cause,
        "aborted_at": now,
        "updated_at": now,
        "acceptance": A.REJECTED.value,
        "acceptance_code": code,
        "acceptance_at": now,
        "acceptance_due_at": None,
    }
    if reference is not None:
        values["acceptance_reference"] = reference
    return await _settle(connection, S.ABORTED, sending_id, worker, attempt, values)


async def acknowledge(
    executor: Executor,
    sending_id: uuid.UUID,
    *,
    accepted: bool,
    code: str | None,
    reference: str | None,
    reason: str | None,
    cause: str | None,
    now: datetime,
) -> bool:
    """A recipient's acknowledgement of a delivered (Sent) sending whose verdict is still open
    (None, Awaiting or Overdue): → Accepted (status stays Sent), or → Rejected with Sent →
    Aborted (`reason` names the rejection, `cause` is its catalogue slug).  False when the
    sending is not Sent or its verdict is already final (nothing changed: the caller records
    the acknowledgement as not applied)."""
    target = A.ACCEPTED if accepted else A.REJECTED
    values: dict[str, Any] = {
        "acceptance": target.value,
        "acceptance_code": code,
        "acceptance_at": now,
        "acceptance_due_at": None,
        "updated_at": now,
    }
    if reference is not None:
        values["acceptance_reference"] = reference
    conditions = [Sending.id == sending_id, Sending.status == S.SENT.value]
    if not accepted:
        ensure_transition(S.SENT, S.ABORTED)
        values.update(
            status=S.ABORTED.value, reason=reason, cause=cause, aborted_at=now, next_attempt_at=None
        )
    result = await executor.execute(
        update(Sending)
        .where(*conditions, _acceptance_guard(target))
        .values(**values)
        .returning(Sending.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def mark_overdue(executor: Executor, *, now: datetime, limit: int = 1000) -> list[uuid.UUID]:
    """Awaiting → Overdue for up to `limit` sendings whose deadline has passed (the status
    stays Sent: delivered, no verdict yet).  Returns their ids."""
    due = (
        select(Sending.id)
        .where(Sending.acceptance == A.AWAITING.value, Sending.acceptance_due_at <= now)
        .order_by(Sending.acceptance_due_at)
        .limit(limit)
        .scalar_subquery()
    )
    result = await executor.execute(
        update(Sending)
        .where(Sending.id.in_(due), _acceptance_guard(A.OVERDUE))
        .values(acceptance=A.OVERDUE.value, updated_at=now)
        .returning(Sending.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


async def release_followers(
    executor: Executor, done: Sequence[uuid.UUID], *, now: datetime
) -> list[uuid.UUID]:
    """Not an edge: sendings waiting for one of `done` (a corrected claim waiting for the
    reversal of the accepted one) become due now; they stay Pending.  Returns their ids."""
    if not done:
        return []
    result = await executor.execute(
        update(Sending)
        .where(
            Sending.follows_id.in_(list(done)),
            Sending.status == S.PENDING.value,
            Sending.next_attempt_at.is_(None),
        )
        .values(next_attempt_at=now, updated_at=now)
        .returning(Sending.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


def undecided(acceptance: str | None) -> bool:
    """The verdict is still to come (Awaiting or Overdue)."""
    return acceptance in {a.value for a in UNDECIDED}
