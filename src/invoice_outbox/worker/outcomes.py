"""Recording what an attempt did: the sending's new status, one Attempt row, the system's health.

Every outcome is written in one transaction guarded by the claim (same worker, same attempt,
still Sending), so a worker whose lease was taken over cannot overwrite the newer attempt.
The status writes themselves are `invoice_outbox.sendings.transitions` (mark_sent, mark_failed,
abort, release); here is which one an outcome takes.
A sending cancelled while in flight keeps its Cancelled status; if the receiver got it anyway,
a Cancellation sending is queued for that system.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.cancellation import add_cancellation
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.retry import RetryPolicy, decide
from invoice_outbox.sendings.status import Acceptance, SendingType, Status
from invoice_outbox.systems.acceptance import AcceptanceConfig
from invoice_outbox.systems.channels.base import Delivered, DeliveryError
from invoice_outbox.systems.rejections import load_catalogue, rejection_reason
from invoice_outbox.worker.circuit import note_failure, note_reachable
from invoice_outbox.worker.claims import Claim

HELD_SUFFIX = " (the system is down: this invoice waits, without spending attempts)"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced: exactly one of `delivered` and `error` is set."""

    claim: Claim
    started_at: datetime
    duration_ms: int
    delivered: Delivered | None = None
    error: DeliveryError | None = None
    #: The system's acceptance settings when it tells acceptance (None: Transport).  A
    #: delivered outcome with a verdict is recorded by `_record_judged`.
    acceptance: AcceptanceConfig | None = None

    @property
    def judged(self) -> bool:
        """Delivered with a verdict to record (not the Transport fast path)."""
        return self.delivered is not None and self.delivered.verdict is not None


@dataclass(frozen=True, slots=True)
class Recorded:
    """The status the sending ended the attempt in ('lost' when the lease was taken over)."""

    status: str
    recovered_system: bool = False


async def _record_failure(
    connection: AsyncConnection,
    outcome: Outcome,
    error: DeliveryError,
    *,
    worker: str,
    now: datetime,
    policy: RetryPolicy,
    jitter: float,
) -> Status | None:
    """Failed (another attempt scheduled) or Aborted; None when the claim no longer held."""
    claim = outcome.claim
    next_attempt_at: datetime | None = now
    reason, round_attempts = error.reason, None
    if claim.probe and error.kind == "retryable":
        # A failed probe says the system is still down; the invoice should not pay for that.
        reason, round_attempts = error.reason + HELD_SUFFIX, claim.round_attempts - 1
    else:
        decision = decide(
            policy,
            attempts_made=claim.round_attempts,
            error=error.kind,
            retry_after=error.retry_after,
            now=now,
            jitter_sample=jitter,
        )
        next_attempt_at = decision.next_attempt_at if decision.retry else None
    if next_attempt_at is not None:
        moved = await transitions.mark_failed(
            connection,
            claim.sending_id,
            worker=worker,
            attempt=claim.attempt,
            reason=reason,
            cause=error.cause,
            next_attempt_at=next_attempt_at,
            now=now,
            round_attempts=round_attempts,
        )
        return Status.FAILED if moved else None
    if error.kind == "retryable":
        reason = f"{reason}; gave up after {claim.round_attempts} attempts"
    moved = await transitions.abort(
        connection,
        claim.sending_id,
        worker=worker,
        attempt=claim.attempt,
        reason=reason,
        cause=error.cause,
        now=now,
    )
    return Status.ABORTED if moved else None


async def record(
    connection: AsyncConnection,
    outcome: Outcome,
    *,
    worker: str,
    now: datetime,
    policy: RetryPolicy,
    jitter: float,
    threshold: int,
    probe_interval: timedelta,
    keyring: Keyring | None = None,
) -> Recorded:
    """Write the outcome (caller commits).  See the module docstring for the guarantees.

    `keyring` seals the Cancellation queued when a cancelled sending was delivered anyway."""
    claim = outcome.claim
    if outcome.judged:
        return await _record_judged(connection, outcome, worker=worker, now=now, keyring=keyring)
    if outcome.delivered is not None:
        if not await _mark_sent(connection, [outcome], worker=worker, now=now):
            return await _record_unowned(
                connection, outcome, now=now, worker=worker, keyring=keyring
            )
        await _release_followers(connection, [outcome], now=now)
        recovered = await note_reachable(connection, claim.system)
        return Recorded(Status.SENT.value, recovered_system=recovered)
    error = outcome.error
    assert error is not None
    status = await _record_failure(
        connection, outcome, error, worker=worker, now=now, policy=policy, jitter=jitter
    )
    if status is None:
        return await _record_unowned(connection, outcome, now=now, worker=worker, keyring=keyring)
    attempt_outcome = "Retryable" if error.kind == "retryable" else "Permanent"
    await _insert_attempt(connection, outcome, attempt_outcome, error.code, error.reason, worker)
    recovered = False
    if error.kind == "retryable":
        await note_failure(
            connection,
            claim.system,
            reason=error.reason,
            now=now,
            threshold=threshold,
            probe_interval=probe_interval,
        )
    else:
        recovered = await note_reachable(connection, claim.system)
    return Recorded(status.value, recovered_system=recovered)


async def _release_followers(
    connection: AsyncConnection, done: Sequence[Outcome], *, now: datetime
) -> None:
    """Corrected claims waiting for these Cancellations (done) become due."""
    ids = [o.claim.sending_id for o in done if o.claim.sending_type == SendingType.CANCELLATION]
    if ids:
        await transitions.release_followers(connection, ids, now=now)


async def _record_judged(
    connection: AsyncConnection,
    outcome: Outcome,
    *,
    worker: str,
    now: datetime,
    keyring: Keyring | None,
) -> Recorded:
    """A delivery whose answer (or system) carries a verdict: Sent and Accepted or Awaiting,
    or Aborted as the recipient's rejection (or for want of a readable verdict)."""
    claim, delivered = outcome.claim, outcome.delivered
    assert delivered is not None
    assert delivered.verdict is not None
    verdict, config = delivered.verdict, outcome.acceptance or AcceptanceConfig()
    if verdict.outcome in ("accepted", "pending"):
        accepted = verdict.outcome == "accepted"
        judged = transitions.JudgedAttempt(
            sending_id=claim.sending_id,
            attempt=claim.attempt,
            started_at=outcome.started_at,
            duration_ms=outcome.duration_ms,
            code=delivered.code,
            verdict=Acceptance.ACCEPTED if accepted else Acceptance.AWAITING,
            due_at=None if accepted else now + timedelta(seconds=config.within_seconds),
            recipient_code=verdict.code,
            recipient_message=verdict.message,
            reference=verdict.reference,
        )
        if not await transitions.mark_sent_judged(connection, judged, worker=worker, now=now):
            return await _record_unowned(
                connection, outcome, now=now, worker=worker, keyring=keyring
            )
        if accepted:
            await _release_followers(connection, [outcome], now=now)
        recovered = await note_reachable(connection, claim.system)
        return Recorded(Status.SENT.value, recovered_system=recovered)
    what = claim.sending_type.lower()
    if verdict.outcome == "missing" or verdict.code is None:
        reason = (
            f"{claim.system} answered {delivered.detail}, but its answer has no verdict where "
            "its Acceptance settings look for one: check them, then resend"
        )
        moved = await transitions.abort(
            connection,
            claim.sending_id,
            worker=worker,
            attempt=claim.attempt,
            reason=reason,
            cause="no-verdict",
            now=now,
        )
        attempt_outcome = "Permanent"
    else:
        catalogue = await load_catalogue(connection)
        slug, entry = catalogue.lookup(claim.system, config.kind, verdict.code)
        reason = rejection_reason(claim.system, what, verdict.code, entry)
        moved = await transitions.reject_in_answer(
            connection,
            claim.sending_id,
            worker=worker,
            attempt=claim.attempt,
            reason=reason,
            cause=slug,
            code=verdict.code,
            reference=verdict.reference,
            now=now,
        )
        attempt_outcome = "Rejected"
    if not moved:
        return await _record_unowned(connection, outcome, now=now, worker=worker, keyring=keyring)
    row = _attempt_row(outcome, attempt_outcome, delivered.code, reason, worker)
    row.update(recipient_code=verdict.code, recipient_message=verdict.message)
    await connection.execute(insert(Attempt).values(row))
    recovered = await note_reachable(connection, claim.system)
    return Recorded(Status.ABORTED.value, recovered_system=recovered)


def _attempt_row(
    outcome: Outcome, attempt_outcome: str, code: int | None, reason: str | None, worker: str
) -> dict[str, Any]:
    return {
        "sending_id": outcome.claim.sending_id,
        "number": outcome.claim.attempt,
        "started_at": outcome.started_at,
        "duration_ms": outcome.duration_ms,
        "outcome": attempt_outcome,
        "code": code,
        "reason": reason,
        "worker": worker,
    }


async def _insert_attempt(
    connection: AsyncConnection,
    outcome: Outcome,
    attempt_outcome: str,
    code: int | None,
    reason: str | None,
    worker: str,
) -> None:
    row = _attempt_row(outcome, attempt_outcome, code, reason, worker)
    await connection.execute(insert(Attempt).values(row))


async def _mark_sent(
    connection: AsyncConnection, delivered: Sequence[Outcome], *, worker: str, now: datetime
) -> set[Any]:
    """`transitions.mark_sent` for delivered outcomes (guarded per row as `record` is: same
    worker, same attempt, still Sending), their attempts recorded with them; returns the ids
    whose claim held.  The others are left for `_record_unowned`."""
    if not delivered:
        return set()
    columns = transitions.SentBatch(
        ids=[o.claim.sending_id for o in delivered],
        attempts=[o.claim.attempt for o in delivered],
        started=[o.started_at for o in delivered],
        durations=[o.duration_ms for o in delivered],
        codes=[o.delivered.code if o.delivered else None for o in delivered],
    )
    return await transitions.mark_sent(connection, columns, worker=worker, now=now)


async def record_batch(
    connection: AsyncConnection,
    outcomes: Sequence[Outcome],
    *,
    worker: str,
    now: datetime,
    policy_of: Callable[[Outcome], RetryPolicy],
    jitter: Callable[[], float],
    threshold: int,
    probe_interval: timedelta,
    keyring: Keyring,
) -> list[Recorded]:
    """Write many outcomes (caller commits); one `Recorded` per outcome, in order.

    Same result as calling `record` for each in order, with fewer statements: deliveries are
    written in bulk, and a system's health is noted once per run of successes (the order of
    successes and failures per system is kept, so consecutive-failure counts stay right).
    """
    plain = [o for o in outcomes if o.delivered is not None and not o.judged]
    owned = await _mark_sent(connection, plain, worker=worker, now=now)
    await _release_followers(connection, [o for o in plain if o.claim.sending_id in owned], now=now)
    noted_reachable: set[str] = set()
    results: list[Recorded] = []
    for outcome in outcomes:
        system = outcome.claim.system
        if outcome.delivered is None or outcome.judged:
            results.append(
                await record(
                    connection,
                    outcome,
                    worker=worker,
                    now=now,
                    policy=policy_of(outcome),
                    jitter=jitter(),
                    threshold=threshold,
                    probe_interval=probe_interval,
                    keyring=keyring,
                )
            )
            error = outcome.error
            if error is not None and error.kind == "retryable":
                noted_reachable.discard(system)
            else:
                noted_reachable.add(system)
        elif outcome.claim.sending_id not in owned:
            results.append(
                await _record_unowned(connection, outcome, now=now, worker=worker, keyring=keyring)
            )
        elif system in noted_reachable:
            results.append(Recorded(Status.SENT.value))
        else:
            recovered = await note_reachable(connection, system)
            noted_reachable.add(system)
            results.append(Recorded(Status.SENT.value, recovered_system=recovered))
    return results


async def _record_unowned(
    connection: AsyncConnection,
    outcome: Outcome,
    *,
    now: datetime,
    worker: str,
    keyring: Keyring | None = None,
) -> Recorded:
    """The claim no longer holds: cancelled in flight, or the lease was taken over."""
    claim = outcome.claim
    current = await connection.scalar(
        select(Sending.status).where(
            Sending.id == claim.sending_id,
            Sending.lease_owner == worker,
            Sending.attempts == claim.attempt,
        )
    )
    if current != Status.CANCELLED.value:
        return Recorded("lost")
    error = outcome.error
    await _insert_attempt(
        connection,
        outcome,
        "Sent" if error is None else error.kind.capitalize(),
        outcome.delivered.code if outcome.delivered else (error.code if error else None),
        None if error is None else error.reason,
        worker,
    )
    await connection.execute(
        update(Sending)
        .where(Sending.id == claim.sending_id)
        .values(lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    if outcome.delivered is not None and claim.sending_type == SendingType.INVOICE.value:
        assert keyring is not None, "a delivered outcome is recorded with the worker's keyring"
        session = AsyncSession(bind=connection)
        sending = await session.get_one(Sending, claim.sending_id)
        content_type = await session.scalar(
            select(Document.content_type).where(Document.id == claim.document_id)
        )
        await add_cancellation(
            session,
            sending,
            content_type=content_type or "application/json",
            now=now,
            keyring=keyring,
        )
        await session.flush()
    return Recorded(Status.CANCELLED.value)


INTERRUPTED_REASON = "Interrupted: invoice-outbox was shutting down; it will be sent again"


async def release(
    connection: AsyncConnection, claim: Claim, *, worker: str, now: datetime, started_at: datetime
) -> bool:
    """Give a claimed sending back to the queue, due now, without spending its attempt budget.

    Used when a worker stops before an attempt finished.  The attempt is recorded (the receiver
    may have got it).  Returns False when the claim no longer held.
    """
    released = await transitions.release(
        connection,
        claim.sending_id,
        worker=worker,
        attempt=claim.attempt,
        round_attempts=claim.round_attempts - 1,
        now=now,
    )
    if not released:
        return False
    outcome = Outcome(claim, started_at, 0)
    await _insert_attempt(connection, outcome, "Retryable", None, INTERRUPTED_REASON, worker)
    return True
