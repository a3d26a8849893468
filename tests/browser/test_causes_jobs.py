"""In a real browser: a cause group resent with a reason, its progress bar reaching the end,
the audit log naming the job, and the systems page showing a system that is down."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin.models import ResendJob
from invoice_outbox.admin.resends import Selection, create_job
from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.sendings.models import Sending
from tests.browser.conftest import LiveServer
from tests.web_support import ADMIN_NAME, seed_failures


def statuses_of(live_server: LiveServer, cause: str) -> dict[str, int]:
    async def read(session: AsyncSession) -> dict[str, int]:
        rows = await session.execute(
            select(Sending.status, func.count())
            .where(Sending.cause == cause)
            .group_by(Sending.status)
        )
        return {status: int(n) for status, n in rows}

    return live_server.seed(read)


@pytest.mark.parametrize(
    "live_engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_an_admin_resends_a_cause_group_and_sees_it_finish(
    admin_page: Page, live_server: LiveServer
) -> None:
    live_server.seed(lambda s: seed_failures(s, now=live_server.clock.now()))
    page = admin_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Causes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Failures by cause")
    expect(page.locator('tr[data-cause="http-503"] [data-count]')).to_have_text("9")
    page.locator("table.groups").get_by_role("link", name="HTTP 503 Service Unavailable").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("HTTP 503 Service Unavailable")
    page.get_by_label("Reason (kept in the audit log)").fill("MediSwitch is back up")
    page.get_by_role("button", name="Resend all 9").click()

    expect(page).to_have_url(re.compile(r"/admin/jobs/[0-9a-f-]{36}$"))
    progress = page.get_by_role("progressbar")
    expect(progress).to_have_attribute("data-poll-status", "Done")
    expect(progress).to_have_attribute("value", "9")
    expect(page.get_by_role("status")).to_have_text("Finished: 9 of 9 handled.")
    # Queued again, due now; MediSwitch is down, so they wait for it instead of being tried.
    assert statuses_of(live_server, "http-503") == {"Pending": 9}

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    rows = page.locator("tr[data-action]")
    expect(rows.first).to_have_attribute("data-action", "resend_job.finish")
    expect(page.locator('tr[data-action="resend_job.start"]')).to_contain_text(
        "MediSwitch is back up"
    )
    expect(page.locator('tr[data-action="resend_job.start"]')).to_contain_text(ADMIN_NAME)


def test_the_progress_bar_follows_a_running_job(admin_page: Page, live_server: LiveServer) -> None:
    """The job is held elsewhere (an unexpired lease) while the page opens, so the page polls;
    moving the clock past the lease lets this server's runner take it over and finish it."""
    live_server.seed(lambda s: seed_failures(s, now=live_server.clock.now()))

    async def start(session: AsyncSession) -> uuid.UUID:
        now = live_server.clock.now()
        admin = Principal(subject=ADMIN_NAME, role=Role.ADMIN, practices=frozenset())
        job = await create_job(
            session,
            principal=admin,
            selection=Selection(cause="timeout"),
            force=False,
            dry_run=False,
            reason="PracticeLedger answers again",
            now=now,
        )
        await session.execute(
            update(ResendJob)
            .where(ResendJob.id == job.id)
            .values(lease_owner="another-host", lease_expires_at=now + timedelta(hours=1))
        )
        await session.commit()
        return job.id

    job_id = live_server.seed(start)
    page = admin_page
    page.goto(f"/admin/jobs/{job_id}")
    progress = page.get_by_role("progressbar")
    expect(progress).to_have_attribute("data-poll-url", f"/admin/jobs/{job_id}.json")
    expect(page.get_by_role("status")).to_have_text("0 of 6 handled\u2026")
    live_server.clock.advance(timedelta(hours=2))
    expect(page.get_by_role("status")).to_have_text("Finished: 6 of 6 handled.")
    expect(progress).to_have_attribute("value", "6")
    expect(progress).to_have_attribute("max", "6")


def test_the_systems_page_shows_a_system_that_is_down(
    admin_page: Page, live_server: LiveServer
) -> None:
    live_server.seed(lambda s: seed_failures(s, now=live_server.clock.now()))
    page = admin_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Systems").click()
    down = page.locator('[data-system="MediSwitch"]')
    expect(down.locator(".badge.down")).to_have_text("Down")
    expect(down).to_contain_text(re.compile(r"Down since \d+ \w+ \d{4}, \d\d:\d\d SAST"))
    expect(down).to_contain_text("MediSwitch answered HTTP 503 Service Unavailable")
    page.keyboard.press("Tab")  # the skip link comes first: the page is keyboard-usable
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
