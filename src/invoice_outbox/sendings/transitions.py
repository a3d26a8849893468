"""Every write of a sending's status: one function per edge of `status.TRANSITIONS`.

This is the only module that writes ``sendings.status`` (``tests/unit/test_status_writer.py``
scans the source tree to keep it so).  Each function is named for its edge and applies it in
one of two ways:

- a guarded UPDATE whose WHERE clause selects ``status IN sources_of(target)`` or a narrower
  set, so a row that changed meanwhile is left alone instead of being overwritten;
- on a row the caller loaded (and locked, where it matters): `ensure_transition` first.

Two edges also have a PostgreSQL path as fixed SQL text, the worker's two hottest statements:
the claim (`CLAIMED_CTE`, inside the lane claim of ``worker/lane_sql.py``, which picks the rows
fairly per system), and the Sent outcome (its UPDATE and the attempt's INSERT in one round
trip).  Built with the expression language, each cost more Python to build (and, with IN lists
of varying length, PostgreSQL more to parse and plan) than the row work it did.  Here the text never
changes: rows travel as arrays (``unnest``), so psycopg prepares each statement once per
connection.  Each edge exists once per engine path; the tests check both give the same results.
Only our own enum values are formatted into SQL text; every datum is a bound parameter.

Functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Row,
    ScalarSelect,
    TextClause,
    and_,
    case,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import QueryableAttribute

from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.status import (
    CLAIMABLE,
    UNDECIDED,
    Acceptance,
    SendingType,
    Status,
    acceptance_sources_of,
    can_transition,
    ensure_transition,
    in_order,
    sources_of,
)

S = Status
A = Acceptance
Executor = AsyncConnection | AsyncSession


def _sources(target: Status, narrower: frozenset[Status] | None) -> list[str]:
    """`sources_of(target)` (or `narrower`, checked to be part of it), in declared order."""
    sources = sources_of(target)
    if narrower is not None:
        if not narrower <= sources:
            wrong = ", ".join(in_order(narrower - sources))
            raise ValueError(f"{wrong} cannot become {target.value} (status.TRANSITIONS)")
        sources = narrower
    return in_order(sources)


def _guard(target: Status, narrower: frozenset[Status] | None = None) -> ColumnElement[bool]:
    """``status IN sources_of(target)`` (or the `narrower` set) as a WHERE condition."""
    values = _sources(target, narrower)
    return Sending.status == values[0] if len(values) == 1 else Sending.status.in_(values)


def _sql_guard(column: str, target: Status, narrower: frozenset[Status] | None = None) -> str:
    """`_guard` as SQL text for the fixed statements."""
    values = [f"'{v}'" for v in _sources(target, narrower)]
    return f"{column} = {values[0]}" if len(values) == 1 else f"{column} IN ({', '.join(values)})"


_IN_FLIGHT: Final = frozenset({S.SENDING})
#: The guards of an attempt's outcome and of a release: from Sending only (checked at import).
_FROM_SENDING: Final = {t: _guard(t, _IN_FLIGHT) for t in (S.SENT, S.FAILED, S.ABORTED, S.PENDING)}
_CLAIMABLE: Final = _guard(S.SENDING, CLAIMABLE)
#: An outcome or a release ends the claim's lease.
_SETTLED: Final[dict[str, Any]] = {"lease_owner": None, "lease_expires_at": None}
#: A new round (a resend, a correction) asks for a new verdict.
_NO_VERDICT: Final[dict[str, Any]] = {
    "acceptance": None,
    "acceptance_code": None,
    "acceptance_at": None,
    "acceptance_due_at": None,
}


# New rows --------------------------------------------------------------------------------------


def create_pending(
    *,
    practice_id: uuid.UUID,
    encounter_id: uuid.UUID,
    invoice_id: uuid.UUID,
    system: str,
    sending_type: SendingType,
    document_id: uuid.UUID,
    now: datetime,
    revision: int = 0,
    follows: uuid.UUID | None = None,
) -> Sending:
    """A new sending, Pending and due now, with its own idempotency key (no edge: it had no
    status before).  With `follows` it waits instead (not due) until that sending is done
    (`release_followers`).  The caller adds it to the session."""
    return Sending(
        id=uuid.uuid4(),
        practice_id=practice_id,
        encounter_id=encounter_id,
        invoice_id=invoice_id,
        system=system,
        sending_type=sending_type.value,
        status=S.PENDING.value,
        attempts=0,
        round_attempts=0,
        sending_time=now,
        next_attempt_at=None if follows is not None else now,
        idempotency_key=uuid.uuid4().hex,
        document_id=document_id,
        revision=revision,
        follows_id=follows,
        created_at=now,
        updated_at=now,
    )


def pending_values(
    *,
    id: uuid.UUID,
    practice_id: uuid.UUID,
    encounter_id: uuid.UUID,
    invoice_id: uuid.UUID,
    system: str,
    idempotency_key: str,
    document_id: uuid.UUID,
    now: datetime,
    invoice_number: str | None = None,
) -> dict[str, Any]:
    """The columns of a new Invoice sending, Pending and due now (no edge: it had no status
    before), for a Core INSERT; intake's PostgreSQL statement writes the same (`INTAKE_INSERT`)."""
    return {
        "id": id,
        "practice_id": practice_id,
        "encounter_id": encounter_id,
        "invoice_id": invoice_id,
        "system": system,
        "sending_type": SendingType.INVOICE.value,
        "status": S.PENDING.value,
        "attempts": 0,
        "round_attempts": 0,
        "sending_time": now,
        "next_attempt_at": now,
        "idempotency_key": idempotency_key,
        "document_id": document_id,
        "invoice_number": invoice_number,
        "created_at": now,
        "updated_at": now,
    }


#: What intake answers for each sending (the legacy row, and the id).
INTAKE_RETURNING: Final = (
    "id, invoice_id, system, practice_id, encounter_id, status, reason, sending_time, "
    "attempts, sending_type"
)


def intake_insert(source: str, *, skip_existing: bool) -> str:
    """PostgreSQL: INSERT the new Invoice sendings described by `source` -- a FROM clause
    whose rows have ``id, practice_id, encounter_id, invoice_id, system, key, document_id,
    invoice_number`` -- Pending and due at ``:now``, as `pending_values`.  One that exists
    already (same invoice, system and type: a concurrent submission won a race) is skipped
    with `skip_existing`, else fails the statement.  Returns `INTAKE_RETURNING` of each row made."""
    conflict = (
        "ON CONFLICT (invoice_id, system, sending_type, revision) DO NOTHING"
        if skip_existing
        else ""
    )
    return f"""
        INSERT INTO sendings (id, practice_id, encounter_id, invoice_id, system, sending_type,
            status, attempts, round_attempts, sending_time, next_attempt_at, idempotency_key,
            document_id, invoice_number, created_at, updated_at)
        SELECT n.id, n.practice_id, n.encounter_id, n.invoice_id, n.system,
            '{SendingType.INVOICE.value}', '{S.PENDING.value}', 0, 0, :now, :now, n.key,
            n.document_id, n.invoice_number, :now, :now
        FROM {source}
        {conflict}
        RETURNING {INTAKE_RETURNING}"""  # noqa: S608 -- `source` is our own SQL text


async def insert_pending(
    connection: AsyncConnection, rows: Sequence[Mapping[str, Any]], returning: Sequence[Any]
) -> Sequence[Row[Any]]:
    """INSERT new sendings (`pending_values` rows); one whose invoice, system and type exist
    already (a concurrent submission won the race) is skipped.  `returning` of each made."""
    if not rows:
        return []
    statement = (
        postgresql_insert(Sending)
        if connection.dialect.name == "postgresql"
        else sqlite_insert(Sending)
    )
    # Many parameter sets: SQLAlchemy sends them as multi-row INSERTs ("insertmanyvalues")
    # with the statement compiled once (cached), not once per number of rows.
    result = await connection.execute(
        statement.on_conflict_do_nothing(
            index_elements=["invoice_id", "system", "sending_type", "revision"]
        ).returning(*returning),
        list(rows),
    )
    return result.all()


def demo_sending(status: Status, **columns: Any) -> Sending:
    """A sending made up in `status` with no edges behind it: demo data only."""
    return Sending(status=status.value, **columns)


# Claims (Pending/Failed → Sending) --------------------------------------------------------------

#: What a claim returns: what the worker needs to deliver (see `worker.claims.Claim`).
CLAIM_COLUMNS: Final = (
    Sending.id,
    Sending.system,
    Sending.practice_id,
    Sending.invoice_id,
    Sending.sending_type,
    Sending.idempotency_key,
    Sending.document_id,
    Sending.attempts,
    Sending.round_attempts,
)


def _lease(worker: str, now: datetime, lease: timedelta) -> dict[str, Any]:
    return {
        "lease_owner": worker,
        "lease_expires_at": now + lease,
        "attempts": Sending.attempts + 1,
        "round_attempts": Sending.round_attempts + 1,
        "sending_time": now,
        "updated_at": now,
    }


async def claim(
    connection: AsyncConnection,
    ids: ScalarSelect[Any],
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
) -> CursorResult[Any]:
    """Pending/Failed → Sending: the sendings `ids` picks (the caller selects them, locked),
    under `worker`'s lease; the attempt number counts up.  Rows of `CLAIM_COLUMNS`."""
    return await connection.execute(
        update(Sending)
        .where(Sending.id.in_(ids), _CLAIMABLE)
        .values(status=S.SENDING.value, **_lease(worker, now, lease))
        .returning(*CLAIM_COLUMNS)
        .execution_options(synchronize_session=False)
    )


async def take_over(
    connection: AsyncConnection,
    ids: ScalarSelect[Any],
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
) -> CursorResult[Any]:
    """Not an edge: in-flight sendings whose lease expired move to `worker`'s lease, and the
    status stays Sending (the caller records the lost attempt).  Rows of `CLAIM_COLUMNS`."""
    return await connection.execute(
        update(Sending)
        .where(Sending.id.in_(ids), Sending.status == S.SENDING.value)
        .values(**_lease(worker, now, lease))
        .returning(*CLAIM_COLUMNS)
        .execution_options(synchronize_session=False)
    )


#: `claim` as SQL text for PostgreSQL statements that pick the rows themselves (the worker's
#: lane claim, `invoice_outbox.worker.lane_sql`): a CTE named ``claimed`` over a relation
#: ``chosen(id, document_id, system_version)`` of rows the statement has locked.  It returns
#: the `CLAIM_COLUMNS`, then the sealed document (``key_id``, ``nonce``, ``body``,
#: ``content_type``; NULL once purged) and ``system_version`` (the system's ``updated_at``
#: when the lane was read).
CLAIMED_CTE: Final = f"""claimed AS (
    UPDATE sendings AS s
    SET status = '{S.SENDING.value}', lease_owner = :worker, lease_expires_at = :expires,
        attempts = s.attempts + 1, round_attempts = s.round_attempts + 1,
        sending_time = :now, updated_at = :now
    FROM chosen AS c LEFT JOIN documents AS doc ON doc.id = c.document_id
    WHERE s.id = c.id AND {_sql_guard("s.status", S.SENDING, CLAIMABLE)}
    RETURNING s.id, s.system, s.practice_id, s.invoice_id, s.sending_type, s.idempotency_key,
        s.document_id, s.attempts, s.round_attempts, doc.key_id, doc.nonce, doc.body,
        doc.content_type, c.system_version
)"""  # noqa: S608


async def release_lost(
    connection: AsyncConnection, ids: Sequence[uuid.UUID], *, now: datetime
) -> CursorResult[Any]:
    """Sending → Pending (first attempt) or Failed (a later one): in-flight sendings whose
    worker is gone (lease expired) given back to the queue, due now, without spending the
    attempt (their system holds its queue, so nothing may take them over now).  The caller
    locked them and records the lost attempt.  Rows of (id, attempts)."""
    return await connection.execute(
        update(Sending)
        .where(Sending.id.in_(list(ids)), _FROM_SENDING[S.PENDING], Sending.lease_expires_at <= now)
        .values(
            status=case((Sending.attempts > 1, S.FAILED.value), else_=S.PENDING.value),
            next_attempt_at=now,
            round_attempts=case((Sending.round_attempts > 0, Sending.round_attempts - 1), else_=0),
            updated_at=now,
            **_SETTLED,
        )
        .returning(Sending.id, Sending.attempts)
        .execution_options(synchronize_session=False)
    )


# Outcomes (Sending → Sent / Failed / Aborted) and release (Sending → Pending / Failed) ---------


@dataclass(frozen=True, slots=True)
class SentBatch:
    """Delivered attempts, column by column (as the PostgreSQL statement takes its arrays): the
    sendings, each one's attempt number (its claim's), start, duration, answer code, the
    idempotency key it was delivered under and the keyed digest of the document bytes
    delivered (`Attempt.document_digest`)."""

    ids: list[uuid.UUID]
    attempts: list[int]
    started: list[datetime]
    durations: list[int]
    codes: list[int | None]
    keys: list[str]
    digests: list[str | None]


#: `mark_sent`, PostgreSQL: guarded per row (same worker, same attempt, same idempotency key,
#: still Sending), and a "Sent" attempt for exactly the rows that moved, in one round trip.
#: Returns their ids.
MARK_SENT_SQL: Final[TextClause] = text(f"""
    WITH delivered AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[]),
                             CAST(:started AS timestamptz[]), CAST(:durations AS integer[]),
                             CAST(:codes AS integer[]), CAST(:keys AS text[]),
                             CAST(:digests AS text[]))
            AS d(id, attempt, started_at, duration_ms, code, key, digest)
    ), sent AS (
        UPDATE sendings AS s
        SET status = '{S.SENT.value}', sent_at = :now, reason = NULL,
            next_attempt_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
            updated_at = :now
        FROM delivered
        WHERE s.id = delivered.id AND s.attempts = delivered.attempt
          AND s.idempotency_key = delivered.key
          AND {_sql_guard("s.status", S.SENT, _IN_FLIGHT)} AND s.lease_owner = :worker
        RETURNING s.id
    )
    INSERT INTO attempts (sending_id, number, started_at, duration_ms, outcome, code, reason,
                          worker, document_digest)
    SELECT delivered.id, delivered.attempt, delivered.started_at, delivered.duration_ms,
           'Sent', delivered.code, NULL, :worker, delivered.digest
    FROM delivered JOIN sent ON sent.id = delivered.id
    RETURNING sending_id
""")  # noqa: S608


async def mark_sent(
    connection: AsyncConnection, delivered: SentBatch, *, worker: str, now: datetime
) -> set[uuid.UUID]:
    """Sending → Sent for each of `delivered` still held by `worker` at that attempt under the
    same idempotency key (so what a Sent sending records is what the receiver got), and its
    "Sent" attempt row with the delivered document's digest.  `cause` stays: a sending that got
    through after failing is grouped by what it overcame.  Returns the ids that moved (the
    others' claims no longer held)."""
    ids, attempts = delivered.ids, delivered.attempts
    if not ids:
        return set()
    if connection.dialect.name == "postgresql":
        rows = await connection.execute(
            MARK_SENT_SQL,
            {
                "ids": ids,
                "attempts": attempts,
                "started": delivered.started,
                "durations": delivered.durations,
                "codes": delivered.codes,
                "keys": delivered.keys,
                "digests": delivered.digests,
                "now": now,
                "worker": worker,
            },
        )
        return set(rows.scalars())
    rows = await connection.execute(
        update(Sending)
        .where(
            Sending.id.in_(ids),
            tuple_(Sending.id, Sending.attempts, Sending.idempotency_key).in_(
                list(zip(ids, attempts, delivered.keys, strict=True))
            ),
            _FROM_SENDING[S.SENT],
            Sending.lease_owner == worker,
        )
        .values(
            status=S.SENT.value,
            sent_at=now,
            reason=None,
            next_attempt_at=None,
            updated_at=now,
            **_SETTLED,
        )
        .returning(Sending.id)
        .execution_options(synchronize_session=False)
    )
    owned = set(rows.scalars())
    recorded = [
        {
            "sending_id": sending_id,
            "number": attempt,
            "started_at": started_at,
            "duration_ms": duration_ms,
            "outcome": "Sent",
            "code": code,
            "reason": None,
            "worker": worker,
            "document_digest": document_digest,
        }
        for sending_id, attempt, started_at, duration_ms, code, document_digest in zip(
            ids,
            attempts,
            delivered.started,
            delivered.durations,
            delivered.codes,
            delivered.digests,
            strict=True,
        )
        if sending_id in owned
    ]
    if recorded:
        await connection.execute(insert(Attempt), recorded)
    return owned


async def _settle(
    connection: AsyncConnection,
    target: Status,
    sending_id: uuid.UUID,
    worker: str,
    attempt: int,
    values: dict[str, Any],
) -> bool:
    """Sending → `target`, guarded by the claim: same worker, same attempt, still Sending."""
    result = await connection.execute(
        update(Sending)
        .where(
            Sending.id == sending_id,
            _FROM_SENDING[target],
            Sending.lease_owner == worker,
            Sending.attempts == attempt,
        )
        .values(status=target.value, **values, **_SETTLED)
    )
    return bool(result.rowcount)


async def mark_failed(
    connection: AsyncConnection,
    sending_id: uuid.UUID,
    *,
    worker: str,
    attempt: int,
    reason: str,
    cause: str | None,
    next_attempt_at: datetime,
    now: datetime,
    round_attempts: int | None = None,
) -> bool:
    """Sending → Failed: `worker`'s attempt `attempt` failed; the next is due at
    `next_attempt_at`.  `round_attempts` replaces the budget count (a failed probe gives its
    attempt back).  False when the claim no longer held (nothing changed)."""
    values: dict[str, Any] = {
        "next_attempt_at": next_attempt_at,
        "reason": reason,
        "cause": cause,
        "updated_at": now,
    }
    if round_attempts is not None:
        values["round_attempts"] = round_attempts
    return await _settle(connection, S.FAILED, sending_id, worker, attempt, values)


async def abort(
    connection: AsyncConnection,
    sending_id: uuid.UUID,
    *,
    worker: str,
    attempt: int,
    reason: str,
    cause: str | None,
    now: datetime,
) -> bool:
    """Sending → Aborted: no more automatic attempts (a permanent error, or the budget is
    spent).  False when the claim no longer held (nothing changed)."""
    values = {
        "next_attempt_at": None,
        "reason": reason,
        "cause": cause,
        "aborted_at": now,
        "updated_at": now,
    }
    return await _settle(connection, S.ABORTED, sending_id, worker, attempt, values)


async def release(
    connection: AsyncConnection,
    sending_id: uuid.UUID,
    *,
    worker: str,
    attempt: int,
    round_attempts: int,
    now: datetime,
) -> bool:
    """Sending → Pending (after a first attempt) or Failed (a later one): given back to the
    queue unfinished, due now; `round_attempts` is the budget count to keep (the claim's, less
    the attempt given back).  False when the claim no longer held (nothing changed)."""
    target = S.FAILED if attempt > 1 else S.PENDING
    values = {"next_attempt_at": now, "round_attempts": round_attempts, "updated_at": now}
    return await _settle(connection, target, sending_id, worker, attempt, values)


# Admins' and practices' commands ----------------------------------------------------------------


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


#: What a corrected document may replace: a sending no worker holds that was not delivered or
#: cancelled.  A Pending one stays Pending; the others take their edge to Pending.
REPLACEABLE: Final = frozenset({S.PENDING, S.FAILED, S.ABORTED, S.DISCARDED})
_WAITING_FOLLOWER: Final = and_(
    Sending.status == S.PENDING.value,
    Sending.follows_id.is_not(None),
    Sending.next_attempt_at.is_(None),
)
_REPLACEABLE_GUARD: Final = or_(
    Sending.status == S.PENDING.value, _guard(S.PENDING, REPLACEABLE - {S.PENDING})
)


async def replace_document(
    executor: Executor,
    keys: Mapping[uuid.UUID, str],
    *,
    document_id: uuid.UUID,
    now: datetime,
    returning: Sequence[QueryableAttribute[Any]] = (Sending.id,),
) -> Sequence[Row[Any]]:
    """A corrected document: → Pending for each of the sendings `keys` names, all or none.

    Only when every one of them is `REPLACEABLE` at this moment (one UPDATE, guarded by the
    status of each row and by the count of all of them) does each get `document_id`, its new
    idempotency key from `keys` (new content: a receiver must not drop it as a repeat), a
    fresh attempt budget, due now.  Otherwise nothing changes and no row is returned: a worker
    claimed one meanwhile (Sending), or it was delivered or cancelled.  On PostgreSQL the
    caller has locked the rows (``FOR UPDATE``), so the count cannot go stale under it; on
    SQLite the statement holds the database's write lock.  Returns `returning` of each row.
    """
    ids = list(keys)
    if not ids:
        return []
    in_place = (
        select(func.count())
        .select_from(Sending)
        .where(Sending.id.in_(ids), _REPLACEABLE_GUARD)
        .scalar_subquery()
    )
    result = await executor.execute(
        update(Sending)
        .where(Sending.id.in_(ids), _REPLACEABLE_GUARD, in_place == len(ids))
        .values(
            status=S.PENDING.value,
            document_id=document_id,
            idempotency_key=case(keys, value=Sending.id),
            round_attempts=0,
            # A corrected claim still waiting for its reversal keeps waiting
            # (`release_followers` makes it due), whatever its document.
            next_attempt_at=case((_WAITING_FOLLOWER, None), else_=now),
            updated_at=now,
            discarded_at=None,
            discarded_by=None,
            discard_reason=None,
            # New content: the recipient's verdict on the old one does not carry over.
            acceptance=None,
            acceptance_code=None,
            acceptance_at=None,
            acceptance_due_at=None,
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


# Acceptance: the recipient's verdict (its own graph: status.ACCEPTANCE_TRANSITIONS) -----------


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
