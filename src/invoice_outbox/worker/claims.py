"""Claiming due sendings under a lease.

A claim is one UPDATE over the rows a sub-select picks ``FOR UPDATE SKIP LOCKED`` (PostgreSQL;
on SQLite the single write lock makes the statement atomic anyway), so two workers never hold
the same sending.  Claiming increments ``attempts``: the attempt number belongs to the claim,
and an attempt whose worker died is recorded (visibly) when another worker takes it over.

Systems that are disabled or down are held: their sendings are not claimed, except one probe
at a time for a down system whose probe is due.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Insert, Result, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.queries import AnySelect
from invoice_outbox.sendings.status import CLAIMABLE, Status
from invoice_outbox.systems.models import System

LOST_REASON = (
    "The worker delivering this stopped before recording the outcome; it was sent again "
    "(the receiver may see a repeat with the same idempotency key)"
)


@dataclass(frozen=True, slots=True)
class Claim:
    """A sending this worker now holds, and the attempt it is about to make."""

    sending_id: uuid.UUID
    system: str
    practice_id: uuid.UUID
    invoice_id: uuid.UUID
    sending_type: str
    idempotency_key: str
    document_id: uuid.UUID | None
    attempt: int
    round_attempts: int
    probe: bool = False


_CLAIMABLE = [s.value for s in CLAIMABLE]


def _held_systems() -> AnySelect:
    return select(System.name).where(or_(System.enabled.is_(False), System.circuit == "Down"))


def _claims(rows: Result[Any], *, probe: bool = False) -> list[Claim]:
    return [
        Claim(
            sending_id=r.id,
            system=r.system,
            practice_id=r.practice_id,
            invoice_id=r.invoice_id,
            sending_type=r.sending_type,
            idempotency_key=r.idempotency_key,
            document_id=r.document_id,
            attempt=r.attempts,
            round_attempts=r.round_attempts,
            probe=probe,
        )
        for r in rows
    ]


def _insert_ignoring_duplicates(connection: AsyncConnection) -> Insert:
    """INSERT INTO attempts that skips a number already recorded (never fails a claim round)."""
    if connection.dialect.name == "postgresql":
        return postgresql_insert(Attempt).on_conflict_do_nothing()
    return sqlite_insert(Attempt).on_conflict_do_nothing()


async def take_over_expired(
    connection: AsyncConnection, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Claim in-flight sendings whose lease expired (their worker died), recording the lost try.

    The lost attempt is recorded under the worker that made it and the time it started (the
    previous lease owner and SendingTime), so the timeline blames the right process.
    """
    expired = (
        select(Sending.id, Sending.lease_owner, Sending.sending_time)
        .where(
            Sending.status == Status.SENDING.value,
            Sending.lease_expires_at <= now,
            Sending.system.not_in(_held_systems()),
        )
        .order_by(Sending.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    previous = {row.id: row for row in await connection.execute(expired)}
    if not previous:
        return []
    ids = select(Sending.id).where(Sending.id.in_(list(previous))).scalar_subquery()
    claims = _claims(
        await transitions.take_over(connection, ids, worker=worker, now=now, lease=lease)
    )
    lost = [
        {
            "sending_id": c.sending_id,
            "number": c.attempt - 1,
            "started_at": previous[c.sending_id].sending_time,
            "duration_ms": 0,
            "outcome": "Retryable",
            "code": None,
            "reason": LOST_REASON,
            "worker": previous[c.sending_id].lease_owner,
        }
        for c in claims
        if c.attempt > 1
    ]
    if lost:
        await connection.execute(_insert_ignoring_duplicates(connection), lost)
    return claims


async def claim_due(
    connection: AsyncConnection, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Claim up to `limit` due sendings of systems that are not held, earliest due first.

    PostgreSQL: one fixed statement (`transitions.CLAIM_DUE_SQL`) with the same selection.
    """
    if connection.dialect.name == "postgresql":
        rows = await transitions.claim_due_fixed(
            connection, worker=worker, now=now, lease=lease, limit=limit
        )
        return _claims(rows)
    due = (
        select(Sending.id)
        .where(
            Sending.status.in_(_CLAIMABLE),
            Sending.next_attempt_at <= now,
            Sending.system.not_in(_held_systems()),
        )
        .order_by(Sending.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = due.scalar_subquery()
    return _claims(await transitions.claim(connection, ids, worker=worker, now=now, lease=lease))


async def claim_probes(
    connection: AsyncConnection,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    probe_interval: timedelta,
) -> list[Claim]:
    """For each down system whose probe is due, claim its earliest due sending as the probe.

    The probe slot is taken with a guarded UPDATE on the system, so only one worker probes.
    """
    ready = await connection.scalars(
        update(System)
        .where(System.circuit == "Down", System.enabled.is_(True), System.next_probe_at <= now)
        .values(next_probe_at=now + probe_interval)
        .returning(System.name)
    )
    claims: list[Claim] = []
    for name in ready.all():
        first = (
            select(Sending.id)
            .where(
                Sending.system == name,
                Sending.status.in_(_CLAIMABLE),
                Sending.next_attempt_at <= now,
            )
            .order_by(Sending.next_attempt_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        ids = first.scalar_subquery()
        taken = await transitions.claim(connection, ids, worker=worker, now=now, lease=lease)
        claims.extend(_claims(taken, probe=True))
    return claims


async def next_due_time(connection: AsyncConnection) -> datetime | None:
    """When something next falls due for this worker: a scheduled sending of a system that is
    not held, an expiring lease, or a down system's probe.  None when nothing is scheduled."""
    due = await connection.scalar(
        select(Sending.next_attempt_at)
        .where(
            Sending.status.in_(_CLAIMABLE),
            Sending.next_attempt_at.is_not(None),
            Sending.system.not_in(_held_systems()),
        )
        .order_by(Sending.next_attempt_at)
        .limit(1)
    )
    lease = await connection.scalar(
        select(Sending.lease_expires_at)
        .where(Sending.status == Status.SENDING.value)
        .order_by(Sending.lease_expires_at)
        .limit(1)
    )
    probe = await connection.scalar(
        select(System.next_probe_at)
        .where(System.circuit == "Down", System.enabled.is_(True))
        .order_by(System.next_probe_at)
        .limit(1)
    )
    times = [t for t in (due, lease, probe) if t is not None]
    return min(times) if times else None
