"""The worklist of issue 13 in a real browser: discard then the counts, select-all-matching
resends with progress and per-invoice results, sorting and pages, CSV, prefix search, errors
beside the field, /docs without a network, the overview on a phone."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.status import Status
from tests.browser.conftest import LiveServer, sign_in_with_form
from tests.conftest import PRACTICE_A, PRACTICE_B
from tests.factories import sending
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD


def _seed(live: LiveServer, count: int, *, cause: str = "http-422") -> list[uuid.UUID]:
    now = live.clock.now()
    rows = [
        sending(
            status=Status.ABORTED,
            when=now - timedelta(minutes=count - i),
            practice_id=PRACTICE_A if i % 2 else PRACTICE_B,
            system="Nowhere",  # no such system: a resend waits (held), nothing is delivered
            reason=f"Nowhere rejected the claim (row {i})",
            attempts=i + 1,
            overrides={"cause": cause, "invoice_number": f"INV-{i:04d}"},
        )
        for i in range(count)
    ]

    async def add(session: AsyncSession) -> list[uuid.UUID]:
        session.add_all(rows)
        await session.commit()
        return [r.invoice_id for r in rows]

    return live.seed(add)


def test_discard_by_ticking_rows_then_lists_and_counts_leave_them_out(
    admin_page: Page, live_server: LiveServer
) -> None:
    invoices = _seed(live_server, 3)
    page = admin_page
    page.goto("/admin/aborted")
    expect(page.locator("#list-summary")).to_contain_text("3 aborted invoices")
    page.get_by_text("Act on several invoices").click()
    page.get_by_label(f"Select invoice {str(invoices[0])[:8]}").check()
    page.get_by_label("Reason (kept in the audit log)").fill("Duplicate claims")
    page.get_by_role("button", name="Discard").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Discarding")
    expect(page.locator("#job-status")).to_contain_text("Finished", timeout=30_000)
    expect(page.locator("#job-outcomes")).to_contain_text("1 discarded since")
    page.goto("/admin/aborted")
    expect(page.locator("#list-summary")).to_contain_text("2 aborted invoices")
    page.goto("/admin/causes/http-422")
    expect(page.locator("#group-count")).to_have_text("2")
    expect(page.locator("#not-fixed-by-resending")).to_contain_text("Resending will not fix")
    page.goto("/admin/aborted?show=discarded")
    expect(page.locator("#list-summary")).to_contain_text("1 discarded invoice")
    page.goto(f"/admin/invoices/{invoices[0]}")
    expect(page.locator("tr.admin-action")).to_contain_text("Discarded in a bulk discard")
    expect(page.locator("tr.admin-action")).to_contain_text("Duplicate claims")


def test_resend_every_matching_row_with_a_dry_run_then_progress_and_results(
    admin_page: Page, live_server: LiveServer
) -> None:
    _seed(live_server, 4, cause="http-503")
    page = admin_page
    page.goto("/admin/aborted?cause=http-503")
    page.get_by_text("Act on several invoices").click()
    page.locator("#bulk-all").check()
    page.get_by_label("Reason (kept in the audit log)").fill("Nowhere is back")
    page.get_by_label("Preview only (dry run)").check()
    page.get_by_role("button", name="Resend").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Dry run: 4 invoices would be sent again"
    )
    expect(page.locator("#members-heading")).to_have_text("What would be sent again")
    expect(page.locator("table.rows tbody tr")).to_have_count(4)
    page.get_by_role("button", name="Resend 4 now").click()
    expect(page.locator("#job-status")).to_contain_text("Finished: 4 of 4 handled", timeout=30_000)
    expect(page.locator('[data-count="Done"]')).to_have_text("4")
    expect(page.locator("#job-outcomes")).to_be_visible()
    expect(page.locator("table.rows tbody tr")).to_have_count(4)


def test_sorting_previous_page_csv_prefix_search_and_field_errors(
    admin_page: Page, live_server: LiveServer
) -> None:
    invoices = _seed(live_server, 30)
    page = admin_page
    page.goto("/admin/aborted?size=25&order=newest")
    first_row = page.locator("table.rows tbody tr").first
    expect(first_row).to_contain_text("INV-0029")
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("table.rows tbody tr")).to_have_count(5)
    page.get_by_role("link", name="Previous page").click()
    expect(page.locator("table.rows tbody tr").first).to_contain_text("INV-0029")
    page.goto("/admin/aborted?sort=attempts&order=newest&size=25")
    expect(page.locator("table.rows tbody tr").first).to_contain_text("INV-0029")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("InvoiceId,InvoiceNumber,Practice")
    assert len(text.splitlines()) == 31
    page.goto("/admin/aborted")
    page.get_by_label(re.compile("Invoice id")).fill(str(invoices[7])[:8])
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.rows tbody tr")).to_have_count(1)
    expect(page.locator("table.rows tbody tr")).to_contain_text("INV-0007")
    page.get_by_label("From (day)").fill("2026-02-05")
    page.get_by_label("To (day, included)").fill("2026-02-01")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#f-from-error")).to_contain_text("From is not before to")
    expect(page.get_by_label(re.compile("Invoice id"))).to_have_value(str(invoices[7])[:8])


def test_api_docs_render_with_the_network_blocked(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(base_url=live_server.url)
    blocked: list[str] = []

    def only_loopback(route: Route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
            return
        # ReDoc's bundle shows a "by Redocly" badge whose image it fetches from its CDN (a
        # decoration: nothing of the page needs it); every asset the docs need is local.
        if route.request.resource_type != "image":
            blocked.append(route.request.url)
        route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("invoice-outbox")
    page.goto("/redoc")
    expect(page.locator("redoc, [role=navigation], .api-content").first).to_be_visible()
    assert blocked == []
    context.close()


def test_the_overview_on_a_phone_shows_recent_days(
    browser: Browser, live_server: LiveServer
) -> None:
    _seed(live_server, 5)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in_with_form(page, ADMIN_NAME, ADMIN_PASSWORD)
    box = page.locator("#failures-chart")
    expect(box.locator("svg")).to_be_visible()
    scrolled = box.evaluate("e => e.scrollLeft + e.clientWidth >= e.scrollWidth - 2")
    assert scrolled
    assert 'href="/admin/invoices?show=problems' in box.inner_html()  # bars lead to the list
    assert ">5</text>" in box.inner_html()  # today's total, on its bar
    context.close()
