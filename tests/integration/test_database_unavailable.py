"""A database that cannot be reached: 503 with Retry-After (never a 500), and recovery without a
restart of the app.

PostgreSQL: a private server of the test's own (tests/private_postgres.py) is stopped under a
running app and started again.  SQLite: a database file that cannot be opened.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from defusedxml import ElementTree
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc

from invoice_outbox.app import create_app
from invoice_outbox.clock import FrozenClock
from invoice_outbox.db.failures import UNREACHABLE, as_unavailable
from invoice_outbox.migrate import upgrade
from tests.conftest import PRACTICE_A, build_settings
from tests.pipeline_helpers import configure_system, invoice_body, submit
from tests.private_postgres import PostgresServer, postgres_server
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD, add_web_users, sign_in

JSON = {"Accept": "application/json"}
XML = {"Accept": "application/xml"}
LISTS = (
    "/api/v1/billing/invoices/aborted",
    "/api/v1/billing/invoices/failed",
    "/api/v1/billing/invoices/aborted?limit=10",
    "/api/v1/billing/invoices/sent/sentDate/2026-02-05",
    "/api/v1/billing/sendings",
)


@pytest.fixture(scope="module")
def private_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
async def served(
    private_server: PostgresServer, tmp_path: Path, clock: FrozenClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    url = private_server.create_database(f"outbox_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    app = create_app(build_settings(url, tmp_path), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


def _error_message(response: httpx.Response) -> str:
    if response.headers["content-type"].startswith("application/xml"):
        root = ElementTree.fromstring(response.content)
        assert root.tag == "Error"
        message = root.findtext("Message")
        assert message is not None
        return message
    body = response.json()
    assert list(body) == ["Message"]
    return str(body["Message"])


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert "database is unavailable" in _error_message(response)


async def test_lists_submit_cancel_and_pages_answer_503_while_down_then_recover(
    served: tuple[FastAPI, httpx.AsyncClient],
    private_server: PostgresServer,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
) -> None:
    app, client = served
    await configure_system(client, admin_headers, "MediSwitch", "http://127.0.0.1:9/invoices")
    submitted = invoice_body()
    await submit(client, practice_headers, submitted)
    async with app.state.runtime.sessions() as session:
        await add_web_users(session, now=app.state.runtime.clock.now())
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    cancel = f"/api/v1/{PRACTICE_A}/billing/invoices/{submitted['InvoiceId']}/cancel"

    private_server.stop()
    try:
        for accept in (JSON, XML):
            for path in LISTS:
                _assert_unavailable(await client.get(path, headers={**admin_headers, **accept}))
            _assert_unavailable(
                await submit(client, {**practice_headers, **accept}, invoice_body(), expect=None)
            )
            _assert_unavailable(await client.post(cancel, headers={**practice_headers, **accept}))
        for page in ("/admin/", "/admin/aborted", "/admin/audit"):
            answer = await client.get(page)
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith("text/html")
            assert int(answer.headers["Retry-After"]) >= 1
            assert "The database is unavailable" in answer.text
    finally:
        private_server.start()

    for path in LISTS:
        assert (await client.get(path, headers=admin_headers)).status_code == 200
    await submit(client, practice_headers, invoice_body())
    assert (await client.post(cancel, headers=practice_headers)).status_code == 200
    home = await client.get("/admin/")
    assert home.status_code == 200
    assert "text/html" in home.headers["content-type"]


async def test_a_sqlite_file_that_cannot_be_opened_answers_503(
    tmp_path: Path, clock: FrozenClock, admin_headers: dict[str, str]
) -> None:
    unopenable = tmp_path / "a-directory-not-a-file"
    unopenable.mkdir()
    app = create_app(build_settings(f"sqlite:///{unopenable}", tmp_path), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for accept in (JSON, XML):
                response = await client.get(LISTS[0], headers={**admin_headers, **accept})
                _assert_unavailable(response)


def _wrapped(error: Exception, *, invalidated: bool = False) -> sa_exc.StatementError:
    return sa_exc.DBAPIError.instance(
        "SELECT 1", None, error, Exception, connection_invalidated=invalidated
    )


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (psycopg.OperationalError("connection failed: Connection refused"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (sqlite3.OperationalError("unable to open database file"), True),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.IntegrityError("UNIQUE constraint failed: documents.sha256"), False),
        (psycopg.errors.UniqueViolation("duplicate key value"), False),
    ],
)
def test_connection_level_errors_are_unavailable(error: Exception, unavailable: bool) -> None:
    assert (as_unavailable(_wrapped(error)) is not None) is unavailable
    assert (as_unavailable(error) is not None) is unavailable


def test_an_invalidated_connection_is_unavailable_whatever_the_error() -> None:
    found = as_unavailable(_wrapped(psycopg.errors.UniqueViolation("x"), invalidated=True))
    assert found is not None
    assert found.message == UNREACHABLE
