"""Claiming due sendings under a lease, lane by lane.

A claim moves due sendings to Sending under this worker's lease; rows are locked ``FOR UPDATE
SKIP LOCKED`` (PostgreSQL; on SQLite the single write lock makes the round atomic anyway), so
two workers never hold the same sending.  Claiming increments ``attempts``: the attempt number
belongs to the claim, and an attempt whose worker died is recorded (visibly) when another
worker takes it over (`invoice_outbox.worker.sweeps`).

`claim_lanes` is one round of the fair scheduler (`invoice_outbox.worker.lanes`): systems that
are disabled, Down or paused are not claimed from at all (their sendings are *held*); every
other system with due work gets up to its free slots, round-robin, within the worker's cap.
PostgreSQL: one fixed statement (`invoice_outbox.worker.lane_sql.CLAIM_LANES_SQL`); SQLite:
the same selection in a few small statements.  The tests check both give the same results.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import CLAIMABLE, Status
from invoice_outbox.systems.models import System
from invoice_outbox.worker import lanes as lane_math
from invoice_outbox.worker.lane_sql import CLAIM_LANES_SQL

#: A claimed sending's document as stored, still sealed: (key id, nonce, sealed body, content
#: type); `invoice_outbox.worker.attempts` opens it with the worker's keyring.
StoredDocument = tuple[str, bytes, bytes, str]


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


@dataclass(slots=True)
class LaneRound:
    """What one claim round took: the claims, their documents, and how each lane stood."""

    claims: list[Claim] = field(default_factory=list)
    documents: dict[uuid.UUID, StoredDocument] = field(default_factory=dict)
    lanes: list[lane_math.LaneRoom] = field(default_factory=list)
    #: The ``updated_at`` of each system claimed from (a changed one means a new configuration).
    versions: dict[str, datetime] = field(default_factory=dict)


_CLAIMABLE = [s.value for s in CLAIMABLE]


def claim_from_row(row: Any, *, probe: bool = False) -> Claim:
    """A claim from a row holding the columns of `transitions.CLAIM_COLUMNS` by name."""
    return Claim(
        sending_id=row.id,
        system=row.system,
        practice_id=row.practice_id,
        invoice_id=row.invoice_id,
        sending_type=row.sending_type,
        idempotency_key=row.idempotency_key,
        document_id=row.document_id,
        attempt=row.attempts,
        round_attempts=row.round_attempts,
        probe=probe,
    )


def _due(now: datetime) -> Any:
    return and_(Sending.status.in_(_CLAIMABLE), Sending.next_attempt_at <= now)


def deliverable(now: datetime) -> Any:
    """The systems a lane claim takes from: enabled, not Down, not paused."""
    return and_(
        System.enabled.is_(True),
        System.circuit != "Down",
        or_(System.paused_until.is_(None), System.paused_until <= now),
    )


async def claim_lanes(
    connection: AsyncConnection, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> LaneRound:
    """Claim up to `limit` due sendings fairly over the lanes (see the module docstring)."""
    if limit <= 0:
        return LaneRound()
    params = {"worker": worker, "now": now, "expires": now + lease, "limit": limit}
    if connection.dialect.name == "postgresql":
        result = _round_from_rows(await connection.execute(CLAIM_LANES_SQL, params))
        # A claim that waited on a row lock sees the row as the other transaction left it (a
        # correction's new document id) but joins documents as of its own start, before that
        # document existed: read those again, in a statement that sees it.
        unread = [
            c
            for c in result.claims
            if c.document_id is not None and c.sending_id not in result.documents
        ]
        if unread:
            result.documents.update(await load_documents(connection, unread))
        return result
    return await _claim_lanes_portable(connection, worker=worker, now=now, lease=lease, limit=limit)


def _round_from_rows(rows: Iterable[Any]) -> LaneRound:
    result = LaneRound()
    rooms: list[Any] = []
    for row in rows:
        if row.kind == 2:
            rooms.append(row)
            continue
        result.claims.append(claim_from_row(row))
        result.versions[row.system] = row.system_version
        if row.body is not None:
            result.documents[row.id] = (
                row.key_id,
                bytes(row.nonce),
                bytes(row.body),
                row.content_type,
            )
    taken = _count(c.system for c in result.claims)
    result.lanes = [
        lane_math.LaneRoom(
            name=r.system,
            free=int(r.free),
            picked=int(r.picked),
            claimed=taken.get(r.system, 0),
            reopens_at=r.reopens_at,
        )
        for r in rooms
    ]
    return result


def _count(names: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


async def _claim_lanes_portable(
    connection: AsyncConnection, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> LaneRound:
    """`CLAIM_LANES_SQL` as small statements (SQLite: one writer, so no locks are needed)."""
    lanes = (
        await connection.execute(
            select(
                System.name,
                System.max_in_flight,
                System.rate_per_second,
                System.next_slot_at,
                System.updated_at,
            )
            .where(
                deliverable(now),
                exists().where(Sending.system == System.name, _due(now)),
            )
            .order_by(System.name)
        )
    ).all()
    if not lanes:
        return LaneRound()
    in_flight = dict(
        (
            await connection.execute(
                select(Sending.system, func.count())
                .where(
                    Sending.status == Status.SENDING.value,
                    Sending.system.in_([lane.name for lane in lanes]),
                )
                .group_by(Sending.system)
            )
        ).all()
    )
    free: dict[str, int] = {}
    candidates: dict[str, list[Any]] = {}
    for lane in lanes:
        room = lane.max_in_flight - int(in_flight.get(lane.name, 0))
        if lane.rate_per_second is not None:
            room = min(room, lane_math.tokens(lane.rate_per_second, lane.next_slot_at, now))
        free[lane.name] = room
        if room > 0:
            candidates[lane.name] = list(
                (
                    await connection.execute(
                        select(Sending.id, Sending.system, Sending.document_id)
                        .where(Sending.system == lane.name, _due(now))
                        .order_by(Sending.next_attempt_at)
                        .limit(room)
                    )
                ).all()
            )
    chosen = lane_math.fair_pick(candidates, limit)
    result = LaneRound()
    if chosen:
        ids = select(Sending.id).where(Sending.id.in_([c.id for c in chosen])).scalar_subquery()
        rows = await transitions.claim(connection, ids, worker=worker, now=now, lease=lease)
        result.claims = [claim_from_row(row) for row in rows]
        result.documents = await load_documents(connection, result.claims)
    taken = _count(c.system for c in result.claims)
    for lane in lanes:
        reopens = None
        if lane.rate_per_second is not None:
            slot = lane.next_slot_at
            if taken.get(lane.name):
                slot = lane_math.next_slot(lane.rate_per_second, slot, now, taken[lane.name])
                await connection.execute(
                    update(System).where(System.name == lane.name).values(next_slot_at=slot)
                )
            base = now if slot is None or slot < now else slot
            reopens = lane_math.reopens_at(lane.rate_per_second, base)
        result.lanes.append(
            lane_math.LaneRoom(
                name=lane.name,
                free=free[lane.name],
                picked=len(candidates.get(lane.name, ())),
                claimed=taken.get(lane.name, 0),
                reopens_at=reopens,
            )
        )
        if taken.get(lane.name):
            result.versions[lane.name] = lane.updated_at
    return result


async def load_documents(
    connection: AsyncConnection, claims: Sequence[Claim]
) -> dict[uuid.UUID, StoredDocument]:
    """The documents of `claims`, by sending id (a purged document is simply absent; sendings
    of one invoice to several systems share one document)."""
    wanted = {c.document_id for c in claims if c.document_id is not None}
    if not wanted:
        return {}
    rows = await connection.execute(
        select(
            Document.id, Document.key_id, Document.nonce, Document.body, Document.content_type
        ).where(Document.id.in_(list(wanted)))
    )
    found: dict[uuid.UUID, StoredDocument] = {
        row.id: (row.key_id, row.nonce, row.body, row.content_type) for row in rows
    }
    return {
        c.sending_id: found[c.document_id]
        for c in claims
        if c.document_id is not None and c.document_id in found
    }
