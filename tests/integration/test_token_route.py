"""POST /token: the password grant, with local users, and the body size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.auth.principal import Role
from invoice_outbox.auth.users import add_user
from tests.conftest import NOW, PRACTICE_A

ROUTE = "/api/v1/billing/invoices/aborted"


async def _users(session: AsyncSession) -> None:
    await add_user(session, name="alice", password="correct horse", role=Role.ADMIN, now=NOW)
    await add_user(
        session,
        name="bob",
        password="battery staple",
        role=Role.PRACTICE,
        practices=[PRACTICE_A],
        now=NOW,
    )
    await session.commit()


async def test_admin_signs_in_and_calls_the_route(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await _users(session)
    response = await client.post(
        "/token", data={"grant_type": "password", "username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["userName"] == "alice"
    assert body["expires_in"] > 0
    listed = await client.get(ROUTE, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200


async def test_practice_user_token_is_scoped(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await _users(session)
    response = await client.post(
        "/token", data={"grant_type": "password", "username": "bob", "password": "battery staple"}
    )
    token = response.json()["access_token"]
    listed = await client.get(ROUTE, headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 403


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await _users(session)
    wrong = await client.post(
        "/token", data={"grant_type": "password", "username": "alice", "password": "nope nope nope"}
    )
    unknown = await client.post(
        "/token",
        data={"grant_type": "password", "username": "mallory", "password": "nope nope nope"},
    )
    assert wrong.status_code == unknown.status_code == 400
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": "invalid_grant",
            "error_description": "The user name or password is incorrect.",
        }
    )


async def test_other_grant_types_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_oversized_body_is_413(client: httpx.AsyncClient, settings: object) -> None:
    big = "x" * (5 * 1024 * 1024 + 1)
    response = await client.post(
        "/token", content=big, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["Message"]


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit must count as it reads
        for i in range(7):  # fields under the form parser's own 1 MB field limit
            yield f"f{i}=".encode() + b"x" * (900 * 1024) + b"&"

    response = await client.post(
        "/token", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


async def test_an_oversized_dashboard_form_gets_a_page_not_json(client: httpx.AsyncClient) -> None:
    big = "x" * (5 * 1024 * 1024 + 1)
    response = await client.post(
        "/admin/login", content=big, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Too large</h1>" in response.text
    assert "larger than the limit" in response.text
