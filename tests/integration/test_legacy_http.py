"""Legacy HTTP behaviour: who may call, error shapes, ASP.NET-style path matching."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from invoice_outbox.auth.principal import Role
from tests.conftest import NOW, PRACTICE_A, make_token

ROUTE = "/api/v1/billing/invoices/aborted"
DENIED = "Authorization has been denied for this request."
EXPIRED = make_token(Role.ADMIN, now=NOW - timedelta(days=2), lifetime=timedelta(hours=1))


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-token",
        "Basic YWRtaW46YWRtaW4=",
        f"Bearer {EXPIRED}",
        f"Bearer {make_token(Role.ADMIN)}x",  # tampered signature
    ],
)
async def test_unauthenticated_gets_401_in_legacy_shape(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get(ROUTE, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"Message": DENIED}
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_401_in_xml_when_asked(client: httpx.AsyncClient) -> None:
    response = await client.get(ROUTE, headers={"Accept": "application/xml"})
    assert response.status_code == 401
    assert response.content == f"<Error><Message>{DENIED}</Message></Error>".encode()
    assert response.headers["content-type"] == "application/xml; charset=utf-8"


async def test_practice_user_gets_403(
    client: httpx.AsyncClient, practice_headers: dict[str, str]
) -> None:
    response = await client.get(ROUTE, headers=practice_headers)
    assert response.status_code == 403
    assert response.json() == {"Message": DENIED}


@pytest.mark.parametrize(
    "path",
    [
        "/API/V1/Billing/Invoices/Aborted",
        "/api/v1/billing/invoices/aborted/",
        "/Api/v1/billing/INVOICES/aborted/",
    ],
)
async def test_paths_match_like_aspnet(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=admin_headers)
    assert response.status_code == 200
    assert response.content == b"[]"


async def test_unknown_route_is_404_in_legacy_shape(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.get("/api/v1/billing/invoices/lost", headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["Message"].startswith("No HTTP resource was found")


async def test_wrong_method_is_405_in_legacy_shape(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.delete(ROUTE, headers=admin_headers)
    assert response.status_code == 405
    assert "does not support http method 'DELETE'" in response.json()["Message"]


async def test_practice_token_for_a_practice_still_403(client: httpx.AsyncClient) -> None:
    token = make_token(Role.PRACTICE, PRACTICE_A)
    response = await client.get(
        ROUTE, headers={"Authorization": f"Bearer {token}", "Accept": "text/xml"}
    )
    assert response.status_code == 403
    assert response.content == f"<Error><Message>{DENIED}</Message></Error>".encode()
