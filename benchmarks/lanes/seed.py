"""Queues for the lanes benchmark: several systems, each with its own receiver URL and lane.

`seed_lanes` configures the systems with ``put_system`` (as the API does) and queues due
sendings for them with the same set-based SQL as `benchmarks.delivery.seed` (a document per
invoice, one Pending sending each, due now), spread round-robin over the systems given.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from benchmarks.database import BenchDatabase
from benchmarks.delivery.seed import PRACTICE, _sql_template
from invoice_outbox.db.engine import make_async_engine, make_session_factory
from invoice_outbox.systems.schemas import SystemIn
from invoice_outbox.systems.service import put_system


@dataclass(frozen=True, slots=True)
class Lane:
    """One system: its name, its receiver URL and its lane settings."""

    name: str
    url: str
    max_in_flight: int = 8
    rate_per_second: float | None = None
    enabled: bool = True


async def _configure(database: BenchDatabase, lanes: list[Lane]) -> None:
    engine = make_async_engine(database.sqlalchemy_url)
    try:
        async with make_session_factory(engine)() as session:
            for lane in lanes:
                spec = SystemIn(
                    Channel="Http",
                    Url=lane.url,
                    Practices=[PRACTICE],
                    Enabled=lane.enabled,
                    TimeoutSeconds=60,
                    MaxInFlight=lane.max_in_flight,
                    RatePerSecond=lane.rate_per_second,
                )
                await put_system(session, lane.name, spec, now=datetime.now(UTC))
            await session.commit()
    finally:
        await engine.dispose()


_QUEUE_SQL = (
    "CREATE TEMP TABLE seed_rows ON COMMIT DROP AS SELECT g AS n, "
    "gen_random_uuid() AS sending_id, gen_random_uuid() AS document_id, "
    "gen_random_uuid() AS invoice_id, gen_random_uuid() AS encounter_id, "
    "(%(systems)s::text[])[1 + (g %% cardinality(%(systems)s::text[]))] AS system "
    "FROM generate_series(%(first)s::int, %(last)s::int) AS g",
    "INSERT INTO documents (id, sha256, content_type, body, created_at) "
    "SELECT document_id, encode(sha256(body), 'hex'), 'application/json', body, %(now)s "
    "FROM (SELECT n, document_id, convert_to(format(%(template)s::text, invoice_id::text, "
    "encounter_id::text, 'INV-' || lpad(n::text, 7, '0')), 'UTF8') AS body "
    "FROM seed_rows) AS d ORDER BY n",
    "INSERT INTO sendings (id, practice_id, encounter_id, invoice_id, system, sending_type, "
    "status, attempts, round_attempts, sending_time, next_attempt_at, idempotency_key, "
    "document_id, created_at, updated_at) "
    "SELECT sending_id, %(practice)s, encounter_id, invoice_id, system, 'Invoice', "
    "'Pending', 0, 0, %(now)s, %(now)s, replace(gen_random_uuid()::text, '-', ''), "
    "document_id, %(now)s, %(now)s FROM seed_rows ORDER BY n",
)


def queue(database: BenchDatabase, systems: list[str], count: int, *, first: int = 1) -> None:
    """`count` due sendings, round-robin over `systems`; numbered from `first`."""
    if count <= 0:
        return
    params: dict[str, Any] = {
        "first": first,
        "last": first + count - 1,
        "now": datetime.now(UTC),
        "template": _sql_template(),
        "practice": PRACTICE,
        "systems": systems,
    }
    with psycopg.connect(database.conninfo) as connection:
        for statement in _QUEUE_SQL:
            connection.execute(statement, params)
        connection.commit()


def analyse(database: BenchDatabase) -> None:
    with psycopg.connect(database.conninfo, autocommit=True) as connection:
        for table in ("documents", "sendings", "attempts", "systems"):
            connection.execute(f"VACUUM (ANALYZE) {table}")
        connection.execute("CHECKPOINT")


def seed_lanes(database: BenchDatabase, lanes: list[Lane], per_system: dict[str, int]) -> None:
    """Configure `lanes`, then queue ``per_system[name]`` due sendings for each."""
    asyncio.run(_configure(database, lanes))
    first = 1
    for name, count in per_system.items():
        queue(database, [name], count, first=first)
        first += count
    analyse(database)


def new_invoice_ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]
