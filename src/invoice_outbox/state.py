"""What a running process holds: settings, engine, sessions, signing key, document keys, clock,
waker, metrics.

A plain record, built once by an entry point (`app.py` for `serve`, `runner.py` for `worker`)
and handed to whatever needs it.  Nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from invoice_outbox.clock import Clock, SystemClock
from invoice_outbox.db.engine import make_session_factory
from invoice_outbox.metrics import Metrics
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.settings import Settings
from invoice_outbox.worker.health import WorkerHealth
from invoice_outbox.worker.waker import Waker


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
    #: The health of the worker running in this process (None when it runs none).
    worker_health: WorkerHealth | None = None


def build_state(
    settings: Settings,
    engine: AsyncEngine,
    *,
    keyring: Keyring,
    signing_key: bytes = b"",
    clock: Clock | None = None,
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
    )
