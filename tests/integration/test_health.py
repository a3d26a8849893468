"""Health probes on a real database."""

from __future__ import annotations

import httpx


async def test_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"Status": "Alive"}


async def test_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["Status"] == "Ready"
