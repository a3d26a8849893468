"""Composition root of the background work: the delivery worker, the resend-job,
notification and acceptance (overdue) loops, and the LISTEN connection that wakes workers on
PostgreSQL.

Used by `app.py` (a worker inside `serve`) and by the `worker` command; nothing else imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from invoice_outbox import schema  # noqa: F401  (every table known before the first flush)
from invoice_outbox.admin.acceptance_loop import run_acceptance_checks
from invoice_outbox.admin.notify_loop import run_notifications
from invoice_outbox.admin.resend_loop import run_resend_jobs
from invoice_outbox.clock import SystemClock
from invoice_outbox.db.liveness import peer_timeout_args
from invoice_outbox.db.urls import normalise_database_url
from invoice_outbox.db.waker import listen
from invoice_outbox.runtime import tune_garbage_collector
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.keystore import open_keyring
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState, build_state
from invoice_outbox.worker.health import WorkerHealth
from invoice_outbox.worker.loop import Worker


async def worker_state(
    settings: Settings, engine: AsyncEngine, *, keyring: Keyring | None = None
) -> AppState:
    """The state a worker process runs on without the API (so it signs no tokens).

    `keyring` is one already verified against the database (the CLI's start-up check); without
    it the settings' keys are loaded and verified here, failing like the app's start-up when
    they cannot open every stored document."""
    if keyring is None:
        keyring = await open_keyring(engine, settings, now=SystemClock().now())
    return build_state(settings, engine, keyring=keyring)


def libpq_conninfo(database_url: str) -> str | None:
    """The plain libpq URL for LISTEN, or None for SQLite."""
    urls = normalise_database_url(database_url)
    return (
        None
        if urls.is_sqlite
        else urls.sync_url.replace("postgresql+psycopg://", "postgresql://", 1)
    )


@contextlib.asynccontextmanager
async def run_background_worker(
    state: AppState, *, enabled: bool, concurrency: int | None = None
) -> AsyncIterator[Worker | None]:
    """Run a worker (and its LISTEN connection on PostgreSQL) until the block exits."""
    if not enabled:
        yield None
        return
    state.worker_health = WorkerHealth()
    worker = Worker(
        engine=state.engine,
        settings=state.settings,
        clock=state.clock,
        keyring=state.keyring,
        waker=state.waker,
        metrics=state.metrics.delivery,
        max_in_flight=concurrency,
        health=state.worker_health,
    )
    services_stop = asyncio.Event()
    tasks = [
        asyncio.create_task(worker.run(), name="worker"),
        asyncio.create_task(run_resend_jobs(state, services_stop), name="resend-jobs"),
        asyncio.create_task(run_notifications(state, services_stop), name="notifications"),
        asyncio.create_task(run_acceptance_checks(state, services_stop), name="acceptance"),
    ]
    conninfo = libpq_conninfo(state.settings.database_url)
    if conninfo is not None:
        liveness = peer_timeout_args(state.settings.database_peer_timeout_seconds, conninfo)
        tasks.append(
            asyncio.create_task(listen(conninfo, state.waker, connect_args=liveness), name="listen")
        )
    try:
        yield worker
    finally:
        worker.stop()
        services_stop.set()
        await asyncio.gather(*tasks[:4])
        for task in tasks[4:]:
            task.cancel()
        await asyncio.gather(*tasks[4:], return_exceptions=True)


async def run_worker_until_signalled(state: AppState, *, concurrency: int | None) -> None:
    """The `invoice-outbox worker` command: run until SIGTERM or SIGINT, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with run_background_worker(state, enabled=True, concurrency=concurrency):
        tune_garbage_collector()
        await stop.wait()
