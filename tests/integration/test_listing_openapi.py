"""The listing routes are documented: who may call them first, then their parameters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

ROUTES = {
    ("/api/v1/billing/invoices/aborted", "get"): "**Admins only.**",
    ("/api/v1/billing/invoices/failed", "get"): "**Admins only.**",
    ("/api/v1/billing/invoices/sent/sentDate/{sentDate}", "get"): "**Admins:** every practice.",
    ("/api/v1/billing/sendings", "get"): "**Admins:** every practice.",
    ("/api/v1/billing/causes", "get"): "**Admins only.**",
    ("/api/v1/{practiceId}/billing/invoices", "get"): "**Admins, or users of that practice.**",
}
PARAMETERS = {
    "/api/v1/billing/invoices/aborted": {
        "practiceId",
        "system",
        "sendingType",
        "cause",
        "from",
        "to",
        "q",
        "limit",
        "cursor",
    },
    "/api/v1/billing/sendings": {
        "practiceId",
        "system",
        "sendingType",
        "status",
        "cause",
        "from",
        "to",
        "q",
        "limit",
        "cursor",
    },
    "/api/v1/billing/causes": {
        "practiceId",
        "system",
        "sendingType",
        "status",
        "cause",
        "from",
        "to",
        "q",
    },
    "/api/v1/{practiceId}/billing/invoices": {
        "practiceId",
        "system",
        "sendingType",
        "status",
        "cause",
        "from",
        "to",
        "q",
        "limit",
        "cursor",
    },
}


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_descriptions_start_with_who_may_call(spec: dict[str, Any]) -> None:
    for (path, method), opening in ROUTES.items():
        description = spec["paths"][path][method]["description"]
        assert description.startswith(opening), (path, description)


async def test_query_parameters_are_documented(spec: dict[str, Any]) -> None:
    for path, names in PARAMETERS.items():
        documented = {p["name"] for p in spec["paths"][path]["get"]["parameters"]}
        assert documented == names, path
        for parameter in spec["paths"][path]["get"]["parameters"]:
            assert parameter.get("description") or parameter["in"] == "path", parameter


async def test_paging_headers_are_documented(spec: dict[str, Any]) -> None:
    for path in ("/api/v1/billing/invoices/aborted", "/api/v1/billing/sendings"):
        headers = spec["paths"][path]["get"]["responses"]["200"]["headers"]
        assert set(headers) == {"X-Total-Count", "X-Next-Cursor", "Link"}
    described = spec["paths"]["/api/v1/billing/sendings"]["get"]["responses"]["200"]
    for value in ("Pending", "Aborted", "Cancellation", "CauseLabel", "NextCursor"):
        assert value in described["description"]
