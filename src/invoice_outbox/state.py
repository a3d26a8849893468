"""What a running process holds: settings, engine, sessions, signing key, document keys, clock,
waker, metrics, the systems directory and intake's turns at the database.

A plain record, built once by an entry point (`app.py` for `serve`, `runner.py` for `worker`)
and handed to whatever needs it.  Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from invoice_outbox.clock import Clock, SystemClock
from invoice_outbox.db.engine import make_session_factory
from invoice_outbox.db.waker import Waker
from invoice_outbox.metrics import Metrics
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.settings import Settings
from invoice_outbox.systems.directory import SystemsDirectory
from invoice_outbox.worker.health import WorkerHealth


@dataclass(slots=True)
class AppState:
    """Built once per process; read by every request, loop and command."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    signing_key: bytes
    keyring: Keyring
    clock: Clock
    waker: Waker
    metrics: Metrics
    #: The systems as intake sees them (cached; see `systems.directory`).
    systems: SystemsDirectory
    #: Intake's turns at the database (`Settings.intake_concurrency`).
    intake_slots: asyncio.Semaphore
    #: PostgreSQL: connections in autocommit for intake's one-statement first pass (None:
    #: intake switches a connection of `engine` for it).
    intake_engine: AsyncEngine | None = None
    #: The health of the worker running in this process (None when it runs none).
    worker_health: WorkerHealth | None = None


#: SQLite has one writer at a time and a pool of 5 connections: more intakes at once would
#: only open and close connections (each with its PRAGMAs) to wait for the same lock.
SQLITE_INTAKE_SLOTS = 4


def _intake_slots(settings: Settings, engine: AsyncEngine) -> int:
    if engine.dialect.name == "sqlite":
        return min(settings.intake_concurrency, SQLITE_INTAKE_SLOTS)
    return settings.intake_concurrency


def build_state(
    settings: Settings,
    engine: AsyncEngine,
    *,
    keyring: Keyring,
    signing_key: bytes = b"",
    clock: Clock | None = None,
    intake_engine: AsyncEngine | None = None,
) -> AppState:
    """The state of one process.  A worker without the API signs no tokens (empty key).

    `keyring` comes from `sendings.keystore.open_keyring` (verified against the database)."""
    return AppState(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        signing_key=signing_key,
        keyring=keyring,
        clock=clock or SystemClock(),
        waker=Waker(),
        metrics=Metrics(),
        systems=SystemsDirectory(),
        intake_slots=asyncio.Semaphore(_intake_slots(settings, engine)),
        intake_engine=intake_engine,
    )
