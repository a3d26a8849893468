"""One lock-out for every password check (POST /token and the dashboard's sign-in), and a limit
that holds under concurrent attempts, on both engines."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from invoice_outbox.admin.models import AuditEntry
from invoice_outbox.admin.sign_in import LOCKED
from invoice_outbox.app import create_app
from invoice_outbox.auth import passwords, users
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from tests.conftest import NOW
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD, add_web_users, post_login

WRONG_GRANT = {
    "error": "invalid_grant",
    "error_description": "The user name or password is incorrect.",
}
LOCKED_GRANT = {"error": "invalid_grant", "error_description": LOCKED}


def _grant(name: str, password: str) -> dict[str, str]:
    return {"grant_type": "password", "username": name, "password": password}


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification the service runs (one entry each), whatever thread runs it."""
    seen: list[str] = []
    lock = threading.Lock()
    real = passwords.verify_password

    def counting(stored_hash: str | None, password: str) -> bool:
        with lock:
            seen.append(password)
        return real(stored_hash, password)

    monkeypatch.setattr(users, "verify_password", counting)
    return seen


async def _lockout_audits(state: AppState) -> list[AuditEntry]:
    async with state.sessions() as session:
        statement = select(AuditEntry).where(AuditEntry.action == "session.lockout")
        return list((await session.scalars(statement)).all())


async def test_the_token_route_locks_out_and_audits(
    client: httpx.AsyncClient,
    state: AppState,
    verifications: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with state.sessions() as session:
        await add_web_users(session, now=NOW)
    caplog.set_level(logging.INFO)
    for _ in range(5):
        wrong = await client.post("/token", data=_grant(ADMIN_NAME, "guess guess"))
        assert (wrong.status_code, wrong.json()) == (400, WRONG_GRANT)
    locked = await client.post("/token", data=_grant(ADMIN_NAME, ADMIN_PASSWORD))
    assert (locked.status_code, locked.json()) == (400, LOCKED_GRANT)
    assert locked.headers["content-type"] == "application/json;charset=UTF-8"
    assert len(verifications) == 5  # the locked attempt was refused without a check
    (entry,) = await _lockout_audits(state)
    assert entry.target == ADMIN_NAME
    assert entry.details["Via"] == "token"
    assert any(getattr(r, "action", None) == "auth.lockout" for r in caplog.records)
    # The dashboard is locked for that name too.
    page = await post_login(client, ADMIN_NAME, ADMIN_PASSWORD)
    assert page.status_code == 429


async def test_a_name_locked_out_of_the_dashboard_gets_no_token(
    client: httpx.AsyncClient, state: AppState
) -> None:
    async with state.sessions() as session:
        await add_web_users(session, now=NOW)
    for _ in range(5):
        assert (await post_login(client, ADMIN_NAME, "guess guess")).status_code == 401
    locked = await client.post("/token", data=_grant(ADMIN_NAME, ADMIN_PASSWORD))
    assert (locked.status_code, locked.json()) == (400, LOCKED_GRANT)
    (entry,) = await _lockout_audits(state)
    assert entry.details["Via"] == "dashboard"


class _Served(uvicorn.Server):
    """uvicorn serving on this loop; `ready` is set once it listens (lifespan done)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@asynccontextmanager
async def _serve(app: FastAPI) -> AsyncIterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = _Served(uvicorn.Config(app, log_config=None, lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        await task  # it stopped before listening: show why
        raise AssertionError("the server stopped before it listened")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


async def test_thirty_concurrent_wrong_passwords_check_at_most_the_threshold(
    settings: Settings, verifications: list[str]
) -> None:
    threshold = settings.login_max_failures
    app = create_app(settings)
    async with _serve(app) as url:
        state: AppState = app.state.runtime
        async with state.sessions() as session:
            await add_web_users(session, now=state.clock.now())
        limits = httpx.Limits(max_connections=30)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
            answers = await asyncio.gather(
                *(http.post("/token", data=_grant(ADMIN_NAME, f"guess {i}")) for i in range(30))
            )
            assert {a.status_code for a in answers} == {400}
            bodies = [a.json() for a in answers]
            assert all(b in (WRONG_GRANT, LOCKED_GRANT) for b in bodies)
            assert 1 <= len(verifications) <= threshold
            assert bodies.count(WRONG_GRANT) == len(verifications)
            checked = len(verifications)
            right = await http.post("/token", data=_grant(ADMIN_NAME, ADMIN_PASSWORD))
            assert (right.status_code, right.json()) == (400, LOCKED_GRANT)
            assert len(verifications) == checked
