"""Recording what an attempt did: the sending's new status, one Attempt row, the system's health.

Every outcome is written in one transaction guarded by the claim (same worker, same attempt,
still Sending), so a worker whose lease was taken over cannot overwrite the newer attempt.
The status writes themselves are `invoice_outbox.sendings.transitions` (mark_sent, mark_failed,
abort, release); here is which one an outcome takes.
A sending cancelled while in flight keeps its Cancelled status; if the receiver got it anyway,
a Cancellation sending is queued for that system.

What an outcome says about the *system* (`invoice_outbox.worker.circuit`) is gathered per
system and written once per batch: a success proves it up; a retryable failure counts toward
its circuit (by distinct sending); a ``Retry-After`` pauses the system's lane until then, and
an HTTP 429 ("too many requests") pauses it without counting as a failure of the system.
A failed probe of a down system does not spend the invoice's attempt, and its sending goes to
the back of the queue (due again after the probe interval), so the next probe tries another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from invoice_outbox.db.waker import notify_connection
from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.cancellation import add_cancellation
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.status import Acceptance, SendingType, Status
from invoice_outbox.systems.acceptance import AcceptanceConfig
from invoice_outbox.systems.channels.base import Delivered, DeliveryError
from invoice_outbox.systems.rejections import load_catalogue, rejection_reason
from invoice_outbox.systems.retry import RetryPolicy, decide
from invoice_outbox.worker import circuit
from invoice_outbox.worker.circuit import HealthNotes, apply_notes, note_reachable
from invoice_outbox.worker.claims import Claim
from invoice_outbox.worker.lanes import DEFAULT_THROTTLE

HELD_SUFFIX = " (the system is down: this invoice waits, without spending attempts)"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced: exactly one of `delivered` and `error` is set."""

    claim: Claim
    started_at: datetime
    duration_ms: int
    delivered: Delivered | None = None
    error: DeliveryError | None = None
    #: The keyed digest of the document bytes handed to the channel (None: none was); see
    #: `Attempt.document_digest`.
    document_digest: str | None = None
    #: The system's acceptance settings when it tells acceptance (None: Transport).  A
    #: delivered outcome with a verdict is recorded by `_record_judged`.
    acceptance: AcceptanceConfig | None = None

    @property
    def judged(self) -> bool:
        """Delivered with a verdict to record (not the Transport fast path)."""
        return self.delivered is not None and self.delivered.verdict is not None


@dataclass(frozen=True, slots=True)
class Recorded:
    """The status the sending ended the attempt in ('lost' when the lease was taken over);
    `recovered_system`: its system was Down or Degraded and this outcome proved it up;
    `paused_until`: the receiver asked the system's lane to wait until then."""

    status: str
    recovered_system: bool = False
    #: This failure took the system Down (its queue is held from now on); reported by one
    #: outcome of the batch.
    system_down: bool = False
    #: Like `recovered_system`, but reported by one outcome of the batch (for the log).
    system_back: bool = False
    paused_until: datetime | None = None


def throttled(error: DeliveryError) -> bool:
    """HTTP 429: the receiver is up and asks us to slow down (not a failure of the system)."""
    return error.code == 429 and error.cause == "http-429"


def pause_of(error: DeliveryError, now: datetime) -> datetime | None:
    """Until when a failure pauses its system's lane: its Retry-After, or `DEFAULT_THROTTLE`
    for a 429 that gave none."""
    if error.kind != "retryable":
        return None
    if error.retry_after is not None and error.retry_after > timedelta(0):
        return now + error.retry_after
    return now + DEFAULT_THROTTLE if throttled(error) else None


async def _record_failure(
    connection: AsyncConnection,
    outcome: Outcome,
    error: DeliveryError,
    *,
    worker: str,
    now: datetime,
    policy: RetryPolicy,
    jitter: float,
    probe_interval: timedelta,
) -> Status | None:
    """Failed (another attempt scheduled) or Aborted; None when the claim no longer held."""
    claim = outcome.claim
    next_attempt_at: datetime | None = now
    reason, round_attempts = error.reason, None
    if claim.probe and error.kind == "retryable" and not throttled(error):
        # A failed probe says the system is still down; the invoice should not pay for that.
        # It goes to the back of the queue, so the next probe tries another sending.
        reason, round_attempts = error.reason + HELD_SUFFIX, claim.round_attempts - 1
        wait = max(probe_interval, error.retry_after or timedelta(0))
        next_attempt_at = now + wait
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
    """Write one outcome (caller commits): `record_batch` of one."""
    (recorded,) = await record_batch(
        connection,
        [outcome],
        worker=worker,
        now=now,
        policy_of=lambda _: policy,
        jitter=lambda: jitter,
        threshold=threshold,
        probe_interval=probe_interval,
        keyring=keyring,
    )
    return recorded


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
            document_digest=outcome.document_digest,
        )
        if not await transitions.mark_sent_judged(connection, judged, worker=worker, now=now):
            return await _record_unowned(
                connection, outcome, now=now, worker=worker, keyring=keyring
            )
        if accepted:
            await _release_followers(connection, [outcome], now=now)
        return Recorded(Status.SENT.value)
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
    return Recorded(Status.ABORTED.value)


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
        "document_digest": outcome.document_digest,
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
        keys=[o.claim.idempotency_key for o in delivered],
        digests=[o.document_digest for o in delivered],
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
    stamped: dict[str, datetime] | None = None,
    keyring: Keyring | None = None,
) -> list[Recorded]:
    """Write many outcomes (caller commits); one `Recorded` per outcome, in order.

    Guarded per outcome by its claim (see the module docstring).  Deliveries are written in
    bulk; what the outcomes say about each system is gathered in order and written once per
    system, systems in name order.  A down system that a probe found up again wakes every
    worker (NOTIFY, with the commit): its held queue is claimable.  `keyring` seals the
    Cancellation queued when a cancelled sending was delivered anyway.
    """
    plain = [o for o in outcomes if o.delivered is not None and not o.judged]
    owned = await _mark_sent(connection, plain, worker=worker, now=now)
    # Corrected claims waiting for one of these (a reversal) are due now.
    await _release_followers(connection, [o for o in plain if o.claim.sending_id in owned], now=now)
    notes: dict[str, HealthNotes] = {}
    statuses: list[str] = []

    async def unowned(outcome: Outcome) -> str:
        recorded = await _record_unowned(
            connection, outcome, now=now, worker=worker, keyring=keyring
        )
        return recorded.status

    for outcome in outcomes:
        system = outcome.claim.system
        error = outcome.error
        if outcome.judged:  # a verdict to record: Sent and Accepted/Awaiting, or Rejected
            judged = await _record_judged(
                connection, outcome, worker=worker, now=now, keyring=keyring
            )
            statuses.append(judged.status)
            if judged.status != "lost":
                notes.setdefault(system, HealthNotes()).success()  # the system answered
            continue
        if outcome.delivered is not None:
            if outcome.claim.sending_id not in owned:
                statuses.append(await unowned(outcome))
                continue
            statuses.append(Status.SENT.value)
            notes.setdefault(system, HealthNotes()).success()
            continue
        assert error is not None
        status = await _record_failure(
            connection,
            outcome,
            error,
            worker=worker,
            now=now,
            policy=policy_of(outcome),
            jitter=jitter(),
            probe_interval=probe_interval,
        )
        if status is None:
            statuses.append(await unowned(outcome))
            continue
        attempt_outcome = "Retryable" if error.kind == "retryable" else "Permanent"
        await _insert_attempt(
            connection, outcome, attempt_outcome, error.code, error.reason, worker
        )
        statuses.append(status.value)
        note = notes.setdefault(system, HealthNotes())
        if error.kind == "retryable" and not throttled(error):
            note.failure(outcome.claim.sending_id, error.reason)
        else:
            note.success()  # the system answered: it is up
        until = pause_of(error, now)
        if until is not None:
            note.pause(until)
    recovered: set[str] = set()
    downed: set[str] = set()
    for system in sorted(name for name, note in notes.items() if note.failures):
        came_back, went_down = await apply_notes(
            connection,
            system,
            notes[system],
            now=now,
            threshold=threshold,
            probe_interval=probe_interval,
        )
        if came_back:
            recovered.add(system)
        if went_down:
            downed.add(system)
    good = sorted(name for name, note in notes.items() if not note.failures)
    recovered |= await note_reachable(connection, good, now=now, stamped=stamped)
    for system in good:
        until = notes[system].pause_until
        if until is not None:
            await circuit.pause(connection, system, until)
    if any(o.claim.probe and o.claim.system in recovered for o in outcomes):
        await notify_connection(connection)
    results: list[Recorded] = []
    told: set[str] = set()  # a change of a system's health is reported by one outcome only
    for outcome, final in zip(outcomes, statuses, strict=True):
        system = outcome.claim.system
        first = system not in told
        told.add(system)
        results.append(
            Recorded(
                final,
                recovered_system=system in recovered,
                paused_until=notes[system].pause_until if system in notes else None,
                system_down=first and system in downed,
                system_back=first and system in recovered,
            )
        )
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


def switched_off_reason(system: str) -> str:
    """Why an attempt was interrupted when its system was switched off."""
    return (
        f"Interrupted: {system} was switched off while this was being sent; it waits, "
        f"and is sent when {system} is switched on again"
    )


async def release(
    connection: AsyncConnection,
    claim: Claim,
    *,
    worker: str,
    now: datetime,
    started_at: datetime,
    reason: str = INTERRUPTED_REASON,
) -> bool:
    """Give a claimed sending back to the queue, due now, without spending its attempt budget.

    Used when a worker stops before an attempt finished, or its system was switched off
    meanwhile.  The attempt is recorded with `reason` (the receiver may have got it).  Returns
    False when the claim no longer held.
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
    await _insert_attempt(connection, outcome, "Retryable", None, reason, worker)
    return True
