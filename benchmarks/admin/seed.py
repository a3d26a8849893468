"""The admin benchmark's data: `benchmarks.dataset` rows, real cause slugs, held systems.

`benchmarks.dataset.load_sendings` gives 40 practices, six systems, about 4 % Failed among the
non-aborted rows and an exact number of Aborted rows, each failure with one of seven dataset
causes.  Here the causes the worker would really store (``http-503``, ``smtp-552``, ...) replace
the dataset's descriptive words, so that the cause routes see slugs they know; and the six
systems are configured *disabled*, so that a worker holds their sendings instead of trying to
deliver them (the resend phase measures the resend job, not deliveries).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg

from benchmarks.database import BenchDatabase, without_indexes
from benchmarks.dataset import SYSTEMS, LoadPlan, load_sendings
from invoice_outbox.db.engine import make_async_engine, make_session_factory
from invoice_outbox.systems.schemas import SystemIn
from invoice_outbox.systems.service import put_system

#: Dataset cause -> the slug a channel stores for such a failure (three are kept as they are:
#: ``rejected`` and ``timeout`` are real slugs, ``tls`` exercises the "unknown slug" path).
CAUSE_SLUGS = {
    "unavailable": "http-503",
    "mailbox": "smtp-552",
    "bad-request": "http-400",
    "auth": "http-401",
}
#: A documentation-only address (RFC 5737): never contacted, the systems are disabled.
UNUSED_URL = "http://192.0.2.1/never-called"


def load(database: BenchDatabase, rows: int, aborted: int, seed: int = 20261201) -> float:
    """Load `rows` sendings (exactly `aborted` Aborted), remap causes; return seconds taken."""
    with without_indexes(database.conninfo):
        seconds = load_sendings(database.conninfo, LoadPlan(rows=rows, aborted=aborted, seed=seed))
    with psycopg.connect(database.conninfo) as connection:
        for old, new in CAUSE_SLUGS.items():
            connection.execute("UPDATE sendings SET cause = %s WHERE cause = %s", (new, old))
    with psycopg.connect(database.conninfo, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) sendings")
    return seconds


async def _hold_systems(database: BenchDatabase) -> None:
    engine = make_async_engine(database.sqlalchemy_url)
    try:
        sessions = make_session_factory(engine)
        async with sessions() as session:
            for name in SYSTEMS:
                spec = SystemIn(Channel="Http", Url=UNUSED_URL, Enabled=False, TimeoutSeconds=30)
                await put_system(session, name, spec, now=datetime.now(UTC))
            await session.commit()
    finally:
        await engine.dispose()


def hold_systems(database: BenchDatabase) -> None:
    """Configure every dataset system, disabled (a worker then holds their sendings)."""
    asyncio.run(_hold_systems(database))
    with psycopg.connect(database.conninfo) as connection:
        row = connection.execute("SELECT count(*) FROM systems WHERE enabled").fetchone()
        assert row is not None
        if int(row[0]) != 0:
            raise RuntimeError("a system is still enabled")


def counts(conninfo: str) -> dict[str, int]:
    """Sendings per status."""
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute("SELECT status, count(*) FROM sendings GROUP BY status")
        return {str(status): int(n) for status, n in rows}


def busiest_practice(conninfo: str) -> uuid.UUID:
    """The practice with the most Aborted sendings (its filtered list is the longest)."""
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(
            "SELECT practice_id FROM sendings WHERE status = 'Aborted' "
            "GROUP BY practice_id ORDER BY count(*) DESC, practice_id LIMIT 1"
        ).fetchone()
        assert row is not None
        return uuid.UUID(str(row[0]))


def cause_counts(conninfo: str) -> dict[str, int]:
    """Failed + Aborted sendings per cause."""
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute(
            "SELECT coalesce(cause, 'unknown'), count(*) FROM sendings "
            "WHERE status IN ('Failed', 'Aborted') GROUP BY 1 ORDER BY 2 DESC"
        )
        return {str(cause): int(n) for cause, n in rows}
