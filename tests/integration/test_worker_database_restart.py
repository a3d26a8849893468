"""A worker survives its database restarting under it, and says so while it cannot work.

The test starts a PostgreSQL server of its own (`tests.private_postgres`), runs `serve`'s
composition (API, worker, LISTEN) on it, restarts the server (a fast stop: every session is
cut, then a start) while the worker is idle
(polling every 0.2 s), and checks that an invoice submitted afterwards is delivered.  Then it
stops the server, checks the worker logs the failure at error level, starts it again, and
checks delivery and readiness come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from invoice_outbox.app import create_app
from invoice_outbox.auth.principal import Role
from invoice_outbox.clock import SystemClock
from invoice_outbox.migrate import upgrade
from invoice_outbox.state import AppState
from tests.conftest import PRACTICE_A, build_settings, make_token
from tests.pipeline_helpers import configure_system, invoice_body, submit
from tests.private_postgres import PostgresServer, postgres_server
from tests.receivers import HttpReceiver

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with postgres_server() as private:
        upgrade(private.create_database("outbox"))
        yield private


@contextlib.asynccontextmanager
async def serving(server: PostgresServer, tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = build_settings(server.url("outbox"), tmp_path, poll_seconds=0.2)
    app = create_app(settings, clock=SystemClock(), run_worker=True)
    async with app.router.lifespan_context(app):
        yield app


class ErrorSeen(logging.Handler):
    """Sets `seen` when the worker logs a failed turn at error level."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) == "worker.error":
            self.seen.set()


async def test_a_worker_keeps_delivering_after_its_database_restarts(
    server: PostgresServer, tmp_path: Path, receiver: HttpReceiver
) -> None:
    now = SystemClock().now()  # this app runs on the real clock
    admin = {"Authorization": f"Bearer {make_token(Role.ADMIN, now=now)}"}
    practice = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_A, now=now)}"}
    async with serving(server, tmp_path) as app:
        state: AppState = app.state.runtime
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await configure_system(client, admin, "MediSwitch", receiver.url)
            await submit(client, practice, invoice_body())
            await receiver.wait_for_requests(1, within=15)

            # Idle, polling every 0.2 s: the server restarts under it.
            await asyncio.to_thread(server.restart)
            await submit(client, practice, invoice_body())
            await receiver.wait_for_requests(2, within=30)

            # Down for longer: the worker says so at error level, and comes back.
            errors = ErrorSeen()
            logger = logging.getLogger("invoice_outbox.worker.loop")
            logger.addHandler(errors)
            try:
                await asyncio.to_thread(server.stop)
                await asyncio.wait_for(errors.seen.wait(), 15)
                assert state.worker_health is not None
                assert state.worker_health.errors_in_a_row >= 1
                await asyncio.to_thread(server.start)
            finally:
                logger.removeHandler(errors)
            await submit(client, practice, invoice_body())
            await receiver.wait_for_requests(3, within=60)
            ready = await client.get("/health/ready")
            assert ready.status_code == 200, ready.text
            metrics = (await client.get("/metrics")).text
            assert "invoice_outbox_worker_errors_total" in metrics
    assert len({r.header("Idempotency-Key") for r in receiver.requests}) == 3
