"""No ping per checkout, yet the service recovers when PostgreSQL drops its connections (a
restart, a failover, an idle timeout): every backend of the test database is terminated, as a
restart does, and the next requests still work."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest
from sqlalchemy import text

from invoice_outbox.db.failures import UNREACHABLE
from invoice_outbox.state import AppState
from tests.databases import POSTGRES_ADMIN_URL
from tests.pipeline_helpers import all_sendings, configure_system, invoice_body, submit
from tests.receivers import HttpReceiver

pytestmark = pytest.mark.postgres_only


async def _open_pooled_connections(state: AppState, n: int) -> None:
    """Check out `n` connections at once and give them back: the pool now holds `n`."""
    connections = [await state.engine.connect() for _ in range(n)]
    for connection in connections:
        await connection.scalar(text("SELECT 1"))
    for connection in connections:
        await connection.close()


def _terminate_backends(database: str) -> int:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_intake_and_lists_work_after_the_database_dropped_every_connection(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    await submit(client, practice_headers, invoice_body())
    await _open_pooled_connections(state, 4)
    database = state.engine.url.database
    assert database is not None
    assert _terminate_backends(database) >= 4  # the pool's, and intake's systems listener

    # Intake meets a dead pooled connection, which invalidates its pool, and tries again.
    body = invoice_body()
    response = await submit(client, practice_headers, body, expect=None)
    assert response.status_code == 202, response.text

    # The other routes' pool learns of the restart from its first failure (at most one 503,
    # "try again"), discards every connection it held, and works from then on.
    codes = []
    for _ in range(4):
        listed = await client.get("/api/v1/billing/invoices/aborted", headers=admin_headers)
        codes.append(listed.status_code)
    assert codes in ([200, 200, 200, 200], [503, 200, 200, 200]), codes
    stored = await all_sendings(state, uuid.UUID(body["InvoiceId"]))
    assert [s.status for s in stored] == ["Pending"]


async def test_a_route_that_cannot_retry_answers_503_not_500(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    await _open_pooled_connections(state, 1)
    database = state.engine.url.database
    assert database is not None
    _terminate_backends(database)
    # The pool's one connection is dead: the first request meets it.
    first = await client.get("/api/v1/billing/systems", headers=admin_headers)
    assert first.status_code == 503, first.text
    assert first.json() == {"Message": UNREACHABLE}  # main's one mapping (db/failures.py)
    assert int(first.headers["Retry-After"]) >= 1
    second = await client.get("/api/v1/billing/systems", headers=admin_headers)
    assert second.status_code == 200, second.text
