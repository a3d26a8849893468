"""In a real browser: sign in, the overview, wrong passwords, lock-out, sign out, CSRF,
cookie flags, and a keyboard-only sign-in."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from invoice_outbox.web.csrf import EXPIRED_MESSAGE
from invoice_outbox.web.login import LOCKED, WRONG
from tests.browser.conftest import LiveServer, cookie_header, sign_in_with_form
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD, seed_failures


@pytest.mark.parametrize(
    "live_engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_an_admin_signs_in_and_sees_the_overview(page: Page, live_server: LiveServer) -> None:
    counts = live_server.seed(lambda s: seed_failures(s, now=live_server.clock.now()))
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2F$"))
    sign_in_with_form(page, ADMIN_NAME, ADMIN_PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(page.locator('[data-status="Aborted"]')).to_have_text(str(counts["Aborted"]))
    expect(page.locator('[data-status="Failed"]')).to_have_text(str(counts["Failed"]))
    chart = page.locator("#failures-chart svg[role=img]")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("aria-label", re.compile(r"MediSwitch 9.*PracticeLedger 7"))
    expect(chart.locator("rect > title").first).to_contain_text("invoices")
    expect(page.get_by_role("link", name=re.compile("^Overview$"))).to_have_attribute(
        "aria-current", "page"
    )
    down = page.locator(".system.down")
    expect(down).to_contain_text("MediSwitch")
    expect(down).to_contain_text("SAST")
    expect(page.locator("ol.causes a").first).to_have_attribute("href", "/admin/causes/http-503")


def test_a_wrong_password_gets_a_plain_answer(page: Page) -> None:
    page.goto("/admin/login")
    page.get_by_label("User name").fill(ADMIN_NAME)
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(WRONG)
    expect(page.get_by_label("User name")).to_have_value(ADMIN_NAME)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_repeated_failures_lock_the_name_until_time_passes(
    page: Page, live_server: LiveServer
) -> None:
    def attempt(password: str) -> None:
        page.goto("/admin/login")
        page.get_by_label("User name").fill(ADMIN_NAME)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    for _ in range(5):
        attempt("guess")
        expect(page.get_by_role("alert")).to_have_text(WRONG)
    attempt(ADMIN_PASSWORD)
    expect(page.get_by_role("alert")).to_have_text(LOCKED)
    live_server.clock.advance(timedelta(minutes=15, seconds=1))
    attempt(ADMIN_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")


def test_sign_out_ends_the_session(admin_page: Page) -> None:
    admin_page.get_by_role("button", name="Sign out").click()
    expect(admin_page.get_by_role("heading", level=1)).to_have_text("Sign in")
    admin_page.goto("/admin/")
    expect(admin_page).to_have_url(re.compile(r"/admin/login\?next="))


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(
    admin_page: Page, live_server: LiveServer
) -> None:
    headers = cookie_header(admin_page)
    with httpx.Client(base_url=live_server.url, headers=headers) as http:
        assert http.get("/admin/").status_code == 200  # the cookie signs this client in
        for data in ({}, {"csrf_token": "wrong"}):
            refused = http.post("/admin/logout", data=data)
            assert refused.status_code == 403
            assert EXPIRED_MESSAGE in refused.text
        refused = http.post("/admin/logout", headers={"X-CSRF-Token": "wrong"})
        assert refused.status_code == 403
        assert http.get("/admin/").status_code == 200  # still signed in: nothing changed
    admin_page.reload()
    expect(admin_page.get_by_role("heading", level=1)).to_have_text("Overview")


def test_the_session_cookie_is_httponly_and_samesite(admin_page: Page) -> None:
    cookies = {c["name"]: c for c in admin_page.context.cookies()}
    session = cookies["io_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["path"] == "/admin"
    assert session["secure"] is False  # plain http here; https is covered by an HTTP test
    assert session["expires"] == -1  # a browser-session cookie
    assert admin_page.evaluate("document.cookie") == ""  # invisible to scripts


def test_the_sign_in_form_works_with_the_keyboard_alone(page: Page) -> None:
    page.goto("/admin/login")
    name = page.get_by_label("User name")
    expect(name).to_be_focused()
    page.keyboard.type(ADMIN_NAME)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    # The first Tab stop of a signed-in page is the skip link, and it leads to the content.
    page.locator("body").focus()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_a_practice_user_sees_only_their_navigation(practice_page: Page) -> None:
    nav = practice_page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["My invoices"])
    practice_page.goto("/admin/")
    expect(practice_page).to_have_url(re.compile(r"/admin/invoices$"))
