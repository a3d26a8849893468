"""Health probes on a real database."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import SecretStr

from invoice_outbox.app import create_app
from invoice_outbox.settings import Settings


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
