"""PostgreSQL: a session that goes silent inside a transaction (its host cut off or crashed) is
ended by the server after INVOICE_OUTBOX_DATABASE_PEER_TIMEOUT_SECONDS, and the row locks it held
are freed, so other workers can take its sendings over."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from invoice_outbox.db.engine import make_async_engine

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only]

LOCK = text("SELECT version_num FROM alembic_version FOR UPDATE NOWAIT")


async def _can_lock(engine: AsyncEngine) -> bool:
    """Whether another session can lock the row now (as a worker taking over would)."""
    try:
        async with engine.begin() as connection:
            await connection.execute(LOCK)
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.errors.LockNotAvailable):
            return False
        raise
    return True


async def test_a_session_silent_inside_a_transaction_is_ended_and_its_locks_freed(
    database_url: str,
) -> None:
    silent = make_async_engine(database_url, peer_timeout_seconds=1)
    other = make_async_engine(database_url)
    try:
        async with silent.connect() as vanished:
            await vanished.execute(LOCK)  # a row locked, the transaction left open: then silence
            deadline = time.monotonic() + 60
            while not await _can_lock(other):
                assert time.monotonic() < deadline, "the lock was never freed"
                await asyncio.sleep(0.05)
            with pytest.raises(DBAPIError) as ended:
                await vanished.execute(text("SELECT 1"))
            assert isinstance(ended.value.orig, psycopg.errors.IdleInTransactionSessionTimeout)
    finally:
        await silent.dispose()
        await other.dispose()
