"""Health probes on a real database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from invoice_outbox.app import create_app
from invoice_outbox.clock import FrozenClock
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.worker.health import WorkerHealth


async def test_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"Status": "Alive"}


async def test_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["Status"] == "Ready"


async def test_not_ready_before_migrations(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/empty.db",
        var_dir=tmp_path,
        jwt_secret=SecretStr("k" * 40),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["Database"] == "migrations pending"


async def test_openapi_documents_every_route_and_the_values(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    for path in (
        "/api/v1/billing/invoices/aborted",
        "/api/v1/billing/invoices/failed",
        "/api/v1/billing/invoices/sent/sentDate/{sentDate}",
        "/api/v1/billing/invoices/retryallfailed",
        "/api/v1/{practiceid}/billing/invoices/{invoiceId}/cancel",
        "/api/v1/{practiceId}/billing/invoices",
        "/api/v1/billing/systems/{name}",
        "/token",
    ):
        assert path in paths
    aborted = spec["paths"]["/api/v1/billing/invoices/aborted"]["get"]
    described = aborted["responses"]["200"]["description"]
    for value in ("Pending", "Sending", "Sent", "Failed", "Aborted", "Cancelled", "Cancellation"):
        assert value in described
    assert "Admins only" in aborted["description"]


async def test_not_ready_while_the_worker_cannot_work(
    client: httpx.AsyncClient, state: AppState, clock: FrozenClock
) -> None:
    health = WorkerHealth()
    state.worker_health = health
    health.succeeded(clock.now())
    assert (await client.get("/health/ready")).status_code == 200
    health.failed(clock.now(), ConnectionError("the database restarted"))
    assert (await client.get("/health/ready")).status_code == 200  # one failed turn: retrying
    clock.advance(timedelta(seconds=11))
    health.failed(clock.now(), ConnectionError("still away"))
    response = await client.get("/health/ready")
    assert response.status_code == 503
    worker = response.json()["Worker"]
    assert worker.startswith("failing since ")
    assert "2 failed turns in a row, last: ConnectionError" in worker
    health.succeeded(clock.now())
    assert (await client.get("/health/ready")).status_code == 200
    # A worker whose loop stopped turning (stuck) is not ready either.
    clock.advance(timedelta(seconds=3 * state.settings.poll_seconds + 31))
    response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["Worker"].startswith("no turn finished since ")
