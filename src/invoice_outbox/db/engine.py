"""Engines and sessions.  Runtime code is async; only migrations use a synchronous engine.

Every engine hides statement parameters (``hide_parameters=True``) and scrubs row values out of
driver messages (`invoice_outbox.db.failures.scrub_error`), so a database error never carries
invoice content into a log line or a traceback.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.array import ListBinaryDumper
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

from invoice_outbox.db.failures import scrub_error
from invoice_outbox.db.liveness import peer_timeout_args
from invoice_outbox.db.urls import DatabaseUrls, normalise_database_url

SQLITE_BUSY_TIMEOUT_MS = 5000


def _prepare_sqlite(engine: Engine) -> None:
    """WAL so readers never block the worker; busy timeout so writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _ensure_parent(urls: DatabaseUrls) -> None:
    path = urls.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _scrub_errors(engine: Engine) -> None:
    event.listen(engine, "handle_error", scrub_error)


def make_sync_engine(database_url: str) -> Engine:
    """A synchronous engine (migrations, CLI set-up commands)."""
    urls = normalise_database_url(database_url)
    _ensure_parent(urls)
    engine = create_engine(urls.sync_url, pool_pre_ping=not urls.is_sqlite, hide_parameters=True)
    _scrub_errors(engine)
    if urls.is_sqlite:
        _prepare_sqlite(engine)
    return engine


def make_async_engine(
    database_url: str,
    *,
    pool_size: int = 20,
    peer_timeout_seconds: float = 0.0,
    autocommit: bool = False,
) -> AsyncEngine:
    """The runtime engine: aiosqlite for SQLite files, psycopg 3 (async) for PostgreSQL.

    The pool keeps `pool_size` connections open (the worker's concurrent claims, outcome
    writes and requests); bursts may open as many again, which are closed after use.
    PostgreSQL connections give up a vanished peer after `peer_timeout_seconds` (0: never;
    see `invoice_outbox.db.liveness`).

    No ping before each checkout (it was a round trip per request, a fifth of a submission's
    cost).  A connection the database dropped (a restart, an idle timeout) fails on first use
    instead: SQLAlchemy sees the disconnect, discards that connection and every other one
    opened before it (the whole pool after a restart), and the next checkout connects anew.
    The failed statement's caller retries where that is safe (intake, which is idempotent) or
    answers 503 "try again" (`db.failures`: an invalidated connection is `Unavailable`);
    ``tests/integration/test_reconnect.py`` proves it.

    `autocommit` (PostgreSQL): every statement is its own transaction, set once per connection
    (intake's single-statement first pass; switching a pooled connection per use costs more),
    and Python lists are sent as arrays in binary: that statement carries a whole batch as
    arrays, and reading them as text cost PostgreSQL and psycopg more than the inserts did.
    """
    urls = normalise_database_url(database_url)
    _ensure_parent(urls)
    if urls.is_sqlite:
        engine = create_async_engine(urls.async_url, hide_parameters=True)
        _prepare_sqlite(engine.sync_engine)
    else:
        options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
        engine = create_async_engine(
            urls.async_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            hide_parameters=True,
            connect_args=peer_timeout_args(peer_timeout_seconds, database_url),
            **options,
        )
        if autocommit:
            _binary_arrays(engine.sync_engine)
    _scrub_errors(engine.sync_engine)
    return engine


def _binary_arrays(engine: Engine) -> None:
    """Lists go as binary arrays on `engine`'s connections (psycopg's choice for ``%s``)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.adapters.register_dumper(list, ListBinaryDumper)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (callers commit, services never do)."""
    return async_sessionmaker(engine, expire_on_commit=False)
