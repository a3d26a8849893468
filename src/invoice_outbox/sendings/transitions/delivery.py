"""The worker's delivery path: claims, take-overs, outcomes and releases of an attempt.

Pending/Failed → Sending (`claim`, and `CLAIMED_CTE`, its PostgreSQL text inside the lane
claim), Sending → Sent / Failed / Aborted (`mark_sent` with `MARK_SENT_SQL`, `mark_failed`,
`abort`), Sending → Pending/Failed (`release`, `release_lost`); `take_over` moves an expired
lease without an edge.  Every outcome is guarded by the claim (same worker, same attempt,
still Sending): a claim that no longer holds changes nothing.  Functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import CursorResult, ScalarSelect, TextClause, case, insert, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.status import CLAIMABLE, Status
from invoice_outbox.sendings.transitions._guards import (
    _FROM_SENDING,
    _IN_FLIGHT,
    _SETTLED,
    _guard,
    _settle,
    _sql_guard,
)

S = Status

_CLAIMABLE: Final = _guard(S.SENDING, CLAIMABLE)


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
