"""In a real browser: the aborted list, filtering (also by keyboard only), one invoice's
timeline, a resend with a reason, and the practice user's view and limits."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.models import Attempt
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.models import System
from tests.browser.conftest import LiveServer, sign_in_with_form
from tests.conftest import PRACTICE_A, PRACTICE_B
from tests.factories import sending
from tests.web_support import OTHER_PRACTICE_NAME, OTHER_PRACTICE_PASSWORD


async def seed_aborted(session: AsyncSession, *, now: datetime) -> dict[str, uuid.UUID]:
    """Aborted sendings on two systems and both practices, each with one attempt.  MediSwitch
    is Down with its next probe a day away, so a resent sending waits (stays Pending).
    Returns invoice ids: ``mediswitch_a`` (practice A's newest MediSwitch one), ``other_b``."""
    ids: dict[str, uuid.UUID] = {}
    for i in range(6):
        system = "MediSwitch" if i % 2 == 0 else "PracticeLedger"
        practice = PRACTICE_A if i < 4 else PRACTICE_B
        row = sending(
            status=Status.ABORTED,
            when=now - timedelta(hours=6 - i),
            practice_id=practice,
            system=system,
            reason=f"{system} answered HTTP 503 Service Unavailable",
            attempts=1,
            overrides={"cause": "http-503"},
        )
        session.add(row)
        await session.flush()
        session.add(
            Attempt(
                sending_id=row.id,
                number=1,
                started_at=row.sending_time,
                duration_ms=812,
                outcome="Permanent",
                code=503,
                reason=row.reason,
                worker="worker-1",
            )
        )
        if system == "MediSwitch" and practice == PRACTICE_A:
            ids["mediswitch_a"] = row.invoice_id
        if practice == PRACTICE_B:
            ids["other_b"] = row.invoice_id
    session.add(
        System(
            name="MediSwitch",
            channel="Http",
            settings={"Url": "https://mediswitch.example/x"},
            retry_policy={},
            circuit="Down",
            consecutive_failures=6,
            down_since=now - timedelta(hours=1),
            next_probe_at=now + timedelta(days=1),
            created_at=now,
            updated_at=now,
        )
    )
    await session.commit()
    return ids


@pytest.mark.parametrize(
    "live_engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_filter_open_the_timeline_and_resend_one(admin_page: Page, live_server: LiveServer) -> None:
    ids = live_server.seed(lambda s: seed_aborted(s, now=live_server.clock.now()))
    page = admin_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Aborted").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Aborted invoices")
    rows = page.locator("table.rows tbody tr")
    expect(rows).to_have_count(6)
    page.get_by_label("System").select_option("MediSwitch")  # the configured systems
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"system=MediSwitch"))
    expect(rows).to_have_count(3)
    for cell in rows.locator('td[data-label="System"]').all():
        expect(cell).to_have_text("MediSwitch")
    expect(page.locator("#list-summary")).to_contain_text("3 aborted invoices match")

    page.get_by_title(f"Invoice {ids['mediswitch_a']}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(str(ids["mediswitch_a"]))
    expect(page.locator(".badge[data-status]")).to_have_text("Aborted")
    timeline = page.locator("tr.attempt")
    expect(timeline).to_have_count(1)
    expect(timeline).to_contain_text("Refused; not tried again automatically")
    expect(timeline).to_contain_text("SAST")

    page.get_by_label("Reason for resend").fill("MediSwitch says it is fixed")
    page.get_by_role("button", name="Resend").click()
    expect(page.get_by_role("status")).to_contain_text("Queued again")
    expect(page.locator(".badge[data-status]")).to_have_text("Pending")
    expect(page.get_by_role("button", name="Resend")).to_have_count(0)


def test_an_empty_reason_is_refused_by_the_browser_and_by_the_server(
    admin_page: Page, live_server: LiveServer
) -> None:
    ids = live_server.seed(lambda s: seed_aborted(s, now=live_server.clock.now()))
    page = admin_page
    page.goto(f"/admin/invoices/{ids['mediswitch_a']}")
    page.get_by_role("button", name="Discard").click()  # `required`: the browser stops it
    expect(page.get_by_role("status")).to_have_count(0)
    expect(page.locator(".badge[data-status]")).to_have_text("Aborted")
    # Without the browser's check (as a script could post): the page again, with the error.
    page.locator("#main form input[name=reason]").evaluate_all(
        "inputs => inputs.forEach(i => i.removeAttribute('required'))"
    )
    page.get_by_label("Reason for discard").fill("   ")
    page.get_by_role("button", name="Discard").click()
    expect(page.get_by_role("alert")).to_contain_text("Give a reason")
    expect(page.get_by_label("Reason for discard")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".badge[data-status]")).to_have_text("Aborted")


def test_the_filter_form_works_with_the_keyboard_alone(
    admin_page: Page, live_server: LiveServer
) -> None:
    live_server.seed(lambda s: seed_aborted(s, now=live_server.clock.now()))
    page = admin_page
    page.goto("/admin/aborted")
    page.get_by_label("or words in the reason").focus()
    page.keyboard.type("MediSwitch answered")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Show")).to_be_focused()  # needing a decision, or discarded
    page.keyboard.press("Tab")
    expect(page.get_by_label("System")).to_be_focused()  # a drop-down of the configured ones
    page.keyboard.type("MediSwitch")  # picks the choice that starts so
    # Tab on through the form (each part of a date field is a stop) to the Filter button.
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Filter":
            break
    assert page.evaluate("document.activeElement.textContent.trim()") == "Filter"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"q=MediSwitch\+answered"))
    expect(page.locator("table.rows tbody tr")).to_have_count(3)
    expect(page.get_by_label("System")).to_have_value("MediSwitch")
    # The first invoice link is reachable and opens with Enter.
    first = page.locator("table.rows tbody tr a.id").first
    first.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Invoice")


def test_a_practice_user_sees_plain_words_and_not_other_practices(
    practice_page: Page, live_server: LiveServer
) -> None:
    ids = live_server.seed(lambda s: seed_aborted(s, now=live_server.clock.now()))
    page = practice_page
    expect(page).to_have_url(f"{live_server.url}/admin/invoices")
    page.reload()  # the landing page was shown before the data existed
    expect(page.get_by_role("heading", level=1)).to_have_text("Your practice's invoices")
    items = page.locator(".invoice-item")
    expect(items).to_have_count(4)
    expect(items.first).to_contain_text("temporarily unavailable")
    page.goto(f"/admin/invoices/{ids['other_b']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoice not found")
    expect(page.locator("#main")).not_to_contain_text("PracticeLedger")
    page.goto("/admin/aborted")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not available to your account")


def test_the_other_practice_sees_only_its_own(page: Page, live_server: LiveServer) -> None:
    ids = live_server.seed(lambda s: seed_aborted(s, now=live_server.clock.now()))
    sign_in_with_form(page, OTHER_PRACTICE_NAME, OTHER_PRACTICE_PASSWORD)
    expect(page.locator(".invoice-item")).to_have_count(2)
    page.goto(f"/admin/invoices/{ids['mediswitch_a']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoice not found")
