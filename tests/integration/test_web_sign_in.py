"""The dashboard's sign-in: sessions, cookie flags, CSRF, lock-out, logout.  Both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import func, select
from starlette.responses import PlainTextResponse, Response

from invoice_outbox.admin.models import AuditEntry
from invoice_outbox.auth.models import LoginFailure, WebSession
from invoice_outbox.clock import FrozenClock
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.web.csrf import EXPIRED_MESSAGE, CsrfChecked, CsrfForm
from invoice_outbox.web.login import LOCKED, WRONG
from invoice_outbox.web.sessions import COOKIE_NAME, AdminPage
from tests.conftest import build_settings
from tests.web_support import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    PRACTICE_NAME,
    PRACTICE_PASSWORD,
    add_web_users,
    login_form_token,
    post_login,
    sign_in,
)

probe = APIRouter(include_in_schema=False)


@probe.get("/admin/test-admin-only")
async def admin_only(principal: AdminPage) -> Response:
    return PlainTextResponse(f"hello {principal.subject}")


@probe.post("/admin/test-form")
async def form_post(principal: AdminPage, form: CsrfForm) -> Response:
    return PlainTextResponse(f"changed {form.get('what')}")


@probe.post("/admin/test-fetch", dependencies=[CsrfChecked])
async def fetch_post(principal: AdminPage) -> Response:
    return PlainTextResponse("changed by fetch")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return build_settings(database_url, tmp_path, login_max_failures_per_client=12)


@pytest.fixture
async def web_app(app: FastAPI, state: AppState, clock: FrozenClock) -> FastAPI:
    app.include_router(probe)
    async with state.sessions() as session:
        await add_web_users(session, now=clock.now())
    return app


@pytest.fixture
async def web(web_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=web_app, client=("192.0.2.10", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _set_cookie(response: httpx.Response, name: str) -> SimpleCookie:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            return cookie
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


async def _count(state: AppState, model: type[object]) -> int:
    async with state.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_pages_send_strangers_to_sign_in_and_back(web: httpx.AsyncClient) -> None:
    answer = await web.get("/admin/?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/login?next=%2Fadmin%2F%3Fx%3D1"
    signed = await post_login(web, ADMIN_NAME, ADMIN_PASSWORD, next_path="/admin/?x=1")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/admin/?x=1"
    overview = await web.get("/admin/")
    assert overview.status_code == 200
    assert "<h1>Overview</h1>" in overview.text
    assert overview.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in overview.headers["content-security-policy"]


async def test_session_cookie_flags_over_http_and_https(web_app: FastAPI) -> None:
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        transport = httpx.ASGITransport(app=web_app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as http:
            answer = await post_login(http, ADMIN_NAME, ADMIN_PASSWORD)
            assert answer.status_code == 303
            morsel = _set_cookie(answer, COOKIE_NAME)[COOKIE_NAME]
            assert morsel["httponly"] is True
            assert morsel["samesite"].lower() == "lax"
            assert morsel["path"] == "/admin"
            assert bool(morsel["secure"]) is secure
            assert not morsel["max-age"], "a browser-session cookie; the server ends it when idle"


async def test_wrong_password_and_unknown_user_get_the_same_plain_answer(
    web: httpx.AsyncClient, state: AppState
) -> None:
    wrong = await post_login(web, ADMIN_NAME, "not the password")
    unknown = await post_login(web, "nobody-here", "not the password")
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert WRONG.replace("'", "&#39;") in answer.text
        assert COOKIE_NAME not in answer.headers.get("set-cookie", "")
    assert await _count(state, WebSession) == 0
    assert await _count(state, LoginFailure) == 2
    assert (await web.get("/admin/")).status_code == 303


async def test_lockout_after_five_failures_then_a_growing_pause(
    web: httpx.AsyncClient, web_app: FastAPI, state: AppState, clock: FrozenClock
) -> None:
    for _ in range(5):
        assert (await post_login(web, ADMIN_NAME, "guess")).status_code == 401
    # Locked: even the right password is refused, in words that do not say whether it was right.
    locked = await post_login(web, ADMIN_NAME, ADMIN_PASSWORD)
    assert locked.status_code == 429
    assert LOCKED in locked.text
    # A name that does not exist is locked just the same (nothing tells them apart).
    async with _client_from(web_app, "198.51.100.7") as elsewhere:
        for _ in range(5):
            assert (await post_login(elsewhere, "ghost", "guess")).status_code == 401
        ghost = await post_login(elsewhere, "ghost", "guess")
        assert ghost.status_code == 429
        assert LOCKED in ghost.text
    clock.advance(timedelta(minutes=14))
    assert (await post_login(web, ADMIN_NAME, ADMIN_PASSWORD)).status_code == 429
    # After the pause one more try is allowed; a wrong one starts another pause at once.
    for _ in range(5):
        clock.advance(timedelta(minutes=15, seconds=1))
        assert (await post_login(web, ADMIN_NAME, "guess")).status_code == 401
        assert (await post_login(web, ADMIN_NAME, ADMIN_PASSWORD)).status_code == 429
    # Ten failures: the pause has doubled to 30 minutes.
    clock.advance(timedelta(minutes=29))
    assert (await post_login(web, ADMIN_NAME, ADMIN_PASSWORD)).status_code == 429
    clock.advance(timedelta(minutes=1, seconds=1))
    assert (await post_login(web, ADMIN_NAME, ADMIN_PASSWORD)).status_code == 303
    async with state.sessions() as session:
        targets = (
            await session.scalars(
                select(AuditEntry.target).where(AuditEntry.action == "session.lockout")
            )
        ).all()
        actions = set((await session.scalars(select(AuditEntry.action))).all())
    # Every failure that (re)started a pause is recorded; an unknown name is not written down.
    assert sorted(t or "" for t in targets) == ["", *[ADMIN_NAME] * 6]
    assert "session.sign_in" in actions


async def test_a_correct_sign_in_forgets_the_names_failures(
    web: httpx.AsyncClient, clock: FrozenClock
) -> None:
    for _ in range(4):
        await post_login(web, ADMIN_NAME, "guess")
    assert (await post_login(web, ADMIN_NAME, ADMIN_PASSWORD)).status_code == 303
    web.cookies.clear()  # another browser: the name's failures were forgotten
    for _ in range(4):
        assert (await post_login(web, ADMIN_NAME, "guess")).status_code == 401


async def test_one_client_guessing_many_names_is_locked(web: httpx.AsyncClient) -> None:
    for i in range(12):
        assert (await post_login(web, f"name-{i}", "guess")).status_code == 401
    assert (await post_login(web, PRACTICE_NAME, PRACTICE_PASSWORD)).status_code == 429


async def test_lockouts_survive_a_restart(
    settings: Settings, web: httpx.AsyncClient, clock: FrozenClock
) -> None:
    for _ in range(5):
        await post_login(web, ADMIN_NAME, "guess")
    from invoice_outbox.app import create_app

    second = create_app(settings, clock=clock)
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert (await post_login(http, ADMIN_NAME, ADMIN_PASSWORD)).status_code == 429


async def test_sign_in_form_without_its_token_is_refused(
    web: httpx.AsyncClient, web_app: FastAPI, state: AppState
) -> None:
    await web.get("/admin/login")
    for token in (None, "forged"):
        data = {"username": ADMIN_NAME, "password": ADMIN_PASSWORD}
        if token is not None:
            data["csrf_token"] = token
        answer = await web.post("/admin/login", data=data)
        assert answer.status_code == 403
        assert EXPIRED_MESSAGE in answer.text
    # A token from another browser (its own cookie) does not fit this browser's cookie.
    async with _client_from(web_app, "198.51.100.8") as other:
        theirs = login_form_token((await other.get("/admin/login")).text)
    answer = await web.post(
        "/admin/login",
        data={"username": ADMIN_NAME, "password": ADMIN_PASSWORD, "csrf_token": theirs},
    )
    assert answer.status_code == 403
    assert await _count(state, WebSession) == 0


async def test_form_posts_need_the_sessions_csrf_token(
    web: httpx.AsyncClient, state: AppState
) -> None:
    token = await sign_in(web, ADMIN_NAME, ADMIN_PASSWORD)
    for data in ({"what": "x"}, {"what": "x", "csrf_token": "wrong"}, {"csrf_token": ""}):
        refused = await web.post("/admin/test-form", data=data)
        assert refused.status_code == 403
        assert EXPIRED_MESSAGE in refused.text
        assert "changed" not in refused.text
    refused = await web.post("/admin/test-fetch", headers={"X-CSRF-Token": "wrong"})
    assert refused.status_code == 403
    accepted = await web.post("/admin/test-form", data={"what": "x", "csrf_token": token})
    assert accepted.text == "changed x"
    by_header = await web.post("/admin/test-fetch", headers={"X-CSRF-Token": token})
    assert by_header.text == "changed by fetch"


async def test_logout_needs_the_token_and_ends_the_session(
    web: httpx.AsyncClient, state: AppState
) -> None:
    token = await sign_in(web, ADMIN_NAME, ADMIN_PASSWORD)
    cookie = web.cookies.get(COOKIE_NAME)
    refused = await web.post("/admin/logout", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert (await web.get("/admin/")).status_code == 200
    out = await web.post("/admin/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/admin/login"
    assert (await web.get("/admin/")).status_code == 303
    assert await _count(state, WebSession) == 0
    # The old cookie, replayed, signs no one in: the session is gone on the server.
    web.cookies.set(COOKIE_NAME, cookie or "", domain="testserver.local", path="/admin")
    replay = await web.get("/admin/", headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
    assert replay.status_code == 303


async def test_sessions_end_after_the_idle_time(
    web: httpx.AsyncClient, clock: FrozenClock, settings: Settings
) -> None:
    await sign_in(web, ADMIN_NAME, ADMIN_PASSWORD)
    idle = timedelta(seconds=settings.session_idle_seconds)
    clock.advance(idle - timedelta(minutes=1))
    assert (await web.get("/admin/")).status_code == 200  # activity moves the idle clock
    clock.advance(idle - timedelta(minutes=1))
    assert (await web.get("/admin/")).status_code == 200
    clock.advance(idle)
    assert (await web.get("/admin/")).status_code == 303


async def test_a_forged_or_tampered_cookie_signs_no_one_in(web: httpx.AsyncClient) -> None:
    await sign_in(web, ADMIN_NAME, ADMIN_PASSWORD)
    real = web.cookies.get(COOKIE_NAME) or ""
    value, _, mac = real.rpartition(".")
    for forged in (value, f"{value}x.{mac}", "abc.def", ""):
        web.cookies.clear()
        answer = await web.get("/admin/", headers={"Cookie": f"{COOKIE_NAME}={forged}"})
        assert answer.status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/api/v1/billing/causes",
        "javascript:alert(1)",
        "/admin/login",
        " /admin/",
    ],
)
async def test_next_never_leaves_the_dashboard(web: httpx.AsyncClient, target: str) -> None:
    answer = await post_login(web, ADMIN_NAME, ADMIN_PASSWORD, next_path=target)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/"


async def test_practice_users_land_on_their_view_and_not_on_admin_pages(
    web: httpx.AsyncClient,
) -> None:
    await sign_in(web, PRACTICE_NAME, PRACTICE_PASSWORD)
    landing = await web.get("/admin/")
    assert landing.status_code == 303
    assert landing.headers["location"] == "/admin/invoices"
    refused = await web.get("/admin/test-admin-only")
    assert refused.status_code == 403
    assert "for administrators" in refused.text
    assert refused.headers["content-type"].startswith("text/html")


async def test_admins_pass_admin_pages(web: httpx.AsyncClient) -> None:
    await sign_in(web, ADMIN_NAME, ADMIN_PASSWORD)
    assert (await web.get("/admin/test-admin-only")).text == f"hello {ADMIN_NAME}"


async def test_errors_under_admin_are_pages_and_the_api_keeps_its_shape(
    web: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    missing = await web.get("/admin/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Page not found" in missing.text
    wrong_method = await web.delete("/admin/login")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("text/html")
    api = await web.get("/api/v1/billing/nothing-here", headers=admin_headers)
    assert api.status_code == 404
    assert api.json()["Message"].startswith("No HTTP resource was found")
    assert (await web.get("/admin/static/app.css")).status_code == 200
    docs = (await web.get("/openapi.json")).json()
    assert not [p for p in docs["paths"] if p.startswith("/admin")]


async def test_garbage_forms_are_4xx_pages(web: httpx.AsyncClient) -> None:
    page = await web.get("/admin/login")
    token = login_form_token(page.text)
    for data in ({"csrf_token": token}, {"csrf_token": token, "username": "a" * 5000}):
        answer = await web.post("/admin/login", data=data)
        assert 400 <= answer.status_code < 500
    broken = await web.post(
        "/admin/login",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert 400 <= broken.status_code < 500
