"""A worker survives its database restarting under it, and says so while it cannot work.

The test starts a PostgreSQL server of its own (initdb and pg_ctl, on a free port, in a temp
dir, as the ``postgres`` OS user when run as root), runs `serve`'s composition (API, worker,
LISTEN) on it, restarts the server with ``pg_ctl restart -m fast`` while the worker is idle
(polling every 0.2 s), and checks that an invoice submitted afterwards is delivered.  Then it
stops the server, checks the worker logs the failure at error level, starts it again, and
checks delivery and readiness come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from invoice_outbox.app import create_app
from invoice_outbox.auth.principal import Role
from invoice_outbox.clock import SystemClock
from invoice_outbox.migrate import upgrade
from invoice_outbox.state import AppState
from tests.conftest import PRACTICE_A, build_settings, make_token
from tests.databases import IN_CI
from tests.pipeline_helpers import configure_system, invoice_body, submit
from tests.receivers import HttpReceiver

pytestmark = pytest.mark.postgres
BINARIES = ("initdb", "pg_ctl")


def _bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if all((candidate / name).exists() for name in BINARIES):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateServer:
    """A throwaway PostgreSQL server; `run` runs its tools as the server's OS user."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(root, account.pw_uid, account.pw_gid)

    def run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", *args)

    @property
    def admin(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        if IN_CI:
            pytest.fail("initdb/pg_ctl not found; CI=true requires this test to run")
        pytest.skip("initdb and pg_ctl (PostgreSQL server binaries) are not installed")
    root = Path(tempfile.mkdtemp(prefix="io-pg-restart-"))
    private = PrivateServer(bin_dir, root)
    try:
        private.run("initdb", "-D", str(private.data), "-A", "trust", "-U", "postgres", "-N")
        private.pg_ctl("start")
        with psycopg.connect(private.admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE outbox")
        upgrade(private.url("outbox"))
        yield private
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            private.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def serving(server: PrivateServer, tmp_path: Path) -> AsyncIterator[FastAPI]:
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
    server: PrivateServer, tmp_path: Path, receiver: HttpReceiver
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
            await asyncio.to_thread(server.pg_ctl, "restart", "-m", "fast")
            await submit(client, practice, invoice_body())
            await receiver.wait_for_requests(2, within=30)

            # Down for longer: the worker says so at error level, and comes back.
            errors = ErrorSeen()
            logger = logging.getLogger("invoice_outbox.worker.loop")
            logger.addHandler(errors)
            try:
                await asyncio.to_thread(server.pg_ctl, "stop", "-m", "fast")
                await asyncio.wait_for(errors.seen.wait(), 15)
                assert state.worker_health is not None
                assert state.worker_health.errors_in_a_row >= 1
                await asyncio.to_thread(server.pg_ctl, "start")
            finally:
                logger.removeHandler(errors)
            await submit(client, practice, invoice_body())
            await receiver.wait_for_requests(3, within=60)
            ready = await client.get("/health/ready")
            assert ready.status_code == 200, ready.text
            metrics = (await client.get("/metrics")).text
            assert "invoice_outbox_worker_errors_total" in metrics
    assert len({r.header("Idempotency-Key") for r in receiver.requests}) == 3
