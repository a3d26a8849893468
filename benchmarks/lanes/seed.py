"""Queues for the lanes benchmark: several systems, each with its own receiver URL and lane.

`seed_lanes` configures the systems with ``put_system`` (as the API does) and queues due
sendings for them the way `benchmarks.delivery.seed` does (`copy_sendings`: a document per
invoice sealed under ``BENCH_KEYS``, one Pending sending each, due now), spread round-robin
over the systems given.  Workers and the API get ``BENCH_KEYS`` to open them.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from benchmarks.database import BenchDatabase
from benchmarks.delivery.seed import PRACTICE, copy_sendings
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


def queue(database: BenchDatabase, systems: list[str], count: int, *, first: int = 1) -> None:
    """`count` due sendings, round-robin over `systems`; numbered from `first`."""
    if count <= 0:
        return
    with psycopg.connect(database.conninfo) as connection:
        copy_sendings(connection, first, first + count - 1, systems)
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
