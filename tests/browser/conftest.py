"""Browser tests: Playwright driving Debian's chromium against a live server.

Fixtures for every dashboard page's tests:

- `live_server` -> `LiveServer`: the app (with its delivery worker and resend-job runner) served
  by uvicorn on a free loopback port in a thread, on a fresh migrated SQLite database
  (parametrise ``live_engine`` indirectly with ``"postgres"`` for PostgreSQL).  Three users
  exist (tests/web_support.py: ``ADMIN_NAME``, ``PRACTICE_NAME`` of practice A,
  ``OTHER_PRACTICE_NAME`` of practice B).  ``live_server.url`` is the base URL,
  ``live_server.clock`` a real clock the test can move forward (``advance``), and
  ``live_server.seed(fn)`` runs ``async fn(session)`` on the server's loop (e.g.
  ``live_server.seed(lambda s: seed_failures(s, now=live_server.clock.now()))``).
- `browser`: chromium (module scope).  `page`: a fresh page in a fresh context.
- `admin_page` / `practice_page`: a page already signed in (and showing the landing page) as
  the admin / the practice A user.

Chromium is /usr/bin/chromium (``apt-get install chromium``), never ``playwright install``:
without it these tests skip, except under CI=true, where they fail.  The tests are plain
(sync) functions: the sync Playwright API must not share a thread with a running asyncio loop.
Waiting is Playwright's auto-waiting ``expect``; there are no sleeps.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.app import create_app
from invoice_outbox.state import AppState
from tests.conftest import build_settings
from tests.databases import IN_CI, PostgresDatabases, SqliteDatabases, require_postgres
from tests.web_support import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    PRACTICE_NAME,
    PRACTICE_PASSWORD,
    add_web_users,
)

CHROMIUM = Path(os.environ.get("INVOICE_OUTBOX_TEST_CHROMIUM", "/usr/bin/chromium"))
T = TypeVar("T")

# Auto-waiting assertions give up after this long (a loaded CI machine, not a sleep).
expect.set_options(timeout=15_000)


class MovableClock:
    """The real time plus an offset the test moves forward (the worker keeps running)."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


@dataclass
class LiveServer:
    """A running app: its base URL, state, clock, and a way to run code on its loop."""

    url: str
    app: FastAPI
    clock: MovableClock
    loop: asyncio.AbstractEventLoop

    @property
    def state(self) -> AppState:
        runtime: AppState = self.app.state.runtime
        return runtime

    def run(self, coroutine: Awaitable[T], timeout: float = 60) -> T:
        """Run `coroutine` on the server's event loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(_wrap(coroutine), self.loop)
        return future.result(timeout)

    def seed(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``async fn(session)`` with a session of the server's database (fn commits)."""

        async def with_session() -> T:
            async with self.state.sessions() as session:
                return await fn(session)

        return self.run(with_session())


async def _wrap(coroutine: Awaitable[T]) -> T:
    return await coroutine


class _Server(uvicorn.Server):
    """uvicorn's server, telling the test thread when it listens (lifespan done)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install chromium)"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires the browser tests to run")
    pytest.skip(f"{message}; the browser tests need Debian's chromium")


@pytest.fixture(params=["sqlite"])
def live_engine(request: pytest.FixtureRequest) -> str:
    """The live server's engine; parametrise indirectly with "postgres" for PostgreSQL."""
    if request.param == "postgres":
        require_postgres()
    return str(request.param)


@contextmanager
def serve_live(database_url: str, var_dir: Path) -> Iterator[LiveServer]:
    """Serve a fresh app (worker included) on `database_url` until the block ends; the three
    users of tests/web_support.py exist.  Used by `live_server` and the screenshots script."""
    settings = build_settings(database_url, var_dir, poll_seconds=0.5)
    clock = MovableClock()
    app = create_app(settings, clock=clock, run_worker=True)
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", server_header=False
    )
    server = _Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(),), name="live-server", daemon=True
    )
    thread.start()
    assert server.ready.wait(timeout=60), "the live server did not start within 60 s"
    live = LiveServer(url=f"http://127.0.0.1:{port}", app=app, clock=clock, loop=loop)
    try:
        live.seed(lambda session: add_web_users(session, now=clock.now()))
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        assert not thread.is_alive(), "the live server did not stop"
        loop.close()


@pytest.fixture
def live_server(
    live_engine: str,
    request: pytest.FixtureRequest,
    _sqlite_databases: SqliteDatabases,
    tmp_path: Path,
) -> Iterator[LiveServer]:
    if live_engine == "postgres":
        databases: PostgresDatabases = request.getfixturevalue("_postgres_databases")
        database_url = databases.fresh()
    else:
        database_url = _sqlite_databases.fresh()
    with serve_live(database_url, tmp_path) as live:
        yield live


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's chromium, headless (no sandbox when running as root, as in containers)."""
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    _require_chromium()
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def sign_in_with_form(page: Page, name: str, password: str) -> None:
    """Sign in through the form, as a person would, and wait for the landing page."""
    page.goto("/admin/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


@pytest.fixture
def admin_page(page: Page) -> Page:
    """A page signed in as the admin, on the overview."""
    sign_in_with_form(page, ADMIN_NAME, ADMIN_PASSWORD)
    return page


@pytest.fixture
def practice_page(page: Page) -> Page:
    """A page signed in as the user of practice A, on their landing page."""
    sign_in_with_form(page, PRACTICE_NAME, PRACTICE_PASSWORD)
    return page


def cookie_header(page: Page) -> dict[str, Any]:
    """The page's cookies as a header for an HTTP client acting as the same browser."""
    cookies = page.context.cookies()
    return {"Cookie": "; ".join(f"{c['name']}={c['value']}" for c in cookies)}
