"""Screenshots of the dashboard's main pages for docs/screenshots/ (and the README).

    .venv/bin/python -m tests.browser.screenshots      # writes docs/screenshots/*.png

The same code runs in the suite (tests/browser/test_screenshots.py) into a temporary
directory, so the script cannot rot.  Pages are shown with `seed_showcase`'s data: two weeks
of failures on four systems, one system down, one degraded.
"""

from __future__ import annotations

import random
import sys
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin.models import ResendJob
from invoice_outbox.admin.resends import Selection, create_job
from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.models import System
from tests.browser.conftest import LiveServer, launch_chromium, serve_live, sign_in_with_form
from tests.browser.screenshot_pages import seed_timeline, shoot_finding_pages
from tests.conftest import PRACTICE_A, PRACTICE_B
from tests.databases import SqliteDatabases
from tests.factories import sending
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: (name, viewport width, height) of every picture taken of each page.
VIEWPORTS = (("", 1280, 900), ("-phone", 390, 844))

_SYSTEMS = {
    "MediSwitch": ("http-503", "timeout", "http-502"),
    "PracticeLedger": ("timeout", "connection-refused"),
    "HealthClaims": ("http-400", "http-422"),
    "Accounts mailbox": ("smtp-auth",),
}


async def seed_showcase(session: AsyncSession, *, now: datetime) -> None:
    """Deterministic, plausible data: failures over 14 days, sent and pending invoices."""
    rng = random.Random(5)  # repeatable pictures
    weights = {"MediSwitch": 6, "PracticeLedger": 3, "HealthClaims": 2, "Accounts mailbox": 1}
    for days_ago in range(14):
        surge = 4 if days_ago in (2, 3) else 1  # the MediSwitch outage of two days ago
        for system, causes in _SYSTEMS.items():
            factor = surge if system == "MediSwitch" else 1
            for _ in range(rng.randint(0, weights[system] * factor)):
                status = Status.ABORTED if rng.random() < 0.5 else Status.FAILED
                session.add(
                    sending(
                        status=status,
                        when=now - timedelta(days=days_ago, minutes=rng.randint(1, 600)),
                        practice_id=rng.choice((PRACTICE_A, PRACTICE_B)),
                        system=system,
                        reason=f"{system} did not take the invoice",
                        attempts=rng.randint(1, 8),
                        overrides={"cause": rng.choice(causes)},
                    )
                )
    for status, count in ((Status.SENT, 412), (Status.PENDING, 7), (Status.CANCELLED, 3)):
        for i in range(count):
            session.add(
                sending(status=status, when=now - timedelta(hours=i), practice_id=PRACTICE_A)
            )
    for name, circuit, failures, reason in (
        ("MediSwitch", "Down", 14, "MediSwitch answered HTTP 503 Service Unavailable"),
        ("PracticeLedger", "Degraded", 2, "Timed out after 30 s waiting for PracticeLedger"),
    ):
        session.add(
            System(
                name=name,
                channel="Http",
                settings={"Url": f"https://{name.lower()}.example/invoices"},
                retry_policy={},
                circuit=circuit,
                consecutive_failures=failures,
                down_since=now - timedelta(minutes=47) if circuit == "Down" else None,
                last_failure_reason=reason,
                created_at=now,
                updated_at=now,
            )
        )
    await session.commit()


async def seed_running_job(session: AsyncSession, *, now: datetime) -> uuid.UUID:
    """A resend of the http-503 group, 40 % done, held by another process (so it stays
    Running while the pictures are taken)."""
    admin = Principal(subject=ADMIN_NAME, role=Role.ADMIN, practices=frozenset())
    job = await create_job(
        session,
        principal=admin,
        selection=Selection(cause="http-503"),
        force=False,
        dry_run=False,
        reason="MediSwitch is back up after the outage",
        now=now,
    )
    await session.execute(
        update(ResendJob)
        .where(ResendJob.id == job.id)
        .values(
            done=job.total * 2 // 5,
            lease_owner="another-host",
            lease_expires_at=now + timedelta(days=1),
        )
    )
    await session.commit()
    return job.id


def shoot_fixing_pages(page: Page, out_dir: Path, suffix: str, job_id: uuid.UUID) -> list[Path]:
    """Causes, one cause group, a running job's progress, the audit log, the systems."""
    shots = [
        ("causes", "/admin/causes", "#causes-chart svg"),
        ("cause", "/admin/causes/http-503", "#resend-form"),
        ("job", f"/admin/jobs/{job_id}", "#job-status"),
        ("audit", "/admin/audit", "table.audit"),
        ("systems", "/admin/systems", ".system.down"),
    ]
    written = []
    for name, path, ready in shots:
        page.goto(path)
        expect(page.locator(ready)).to_be_visible()
        page.screenshot(path=out_dir / f"{name}{suffix}.png", full_page=True)
        written.append(out_dir / f"{name}{suffix}.png")
    return written


def take_screenshots(browser: Browser, live: LiveServer, out_dir: Path) -> list[Path]:
    """Sign-in page and overview, on a laptop and a phone; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    job_id = live.seed(lambda s: seed_running_job(s, now=live.clock.now()))
    invoice_id = live.seed(lambda s: seed_timeline(s, now=live.clock.now()))
    for suffix, width, height in VIEWPORTS:
        context = browser.new_context(
            base_url=live.url, viewport={"width": width, "height": height}
        )
        page = context.new_page()
        page.goto("/admin/login")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.screenshot(path=out_dir / f"login{suffix}.png")
        written.append(out_dir / f"login{suffix}.png")
        sign_in_with_form(page, ADMIN_NAME, ADMIN_PASSWORD)
        expect(page.locator("#failures-chart svg")).to_be_visible()
        page.screenshot(path=out_dir / f"overview{suffix}.png", full_page=True)
        written.append(out_dir / f"overview{suffix}.png")
        written += shoot_fixing_pages(page, out_dir, suffix, job_id)
        written += shoot_finding_pages(page, out_dir, suffix, invoice_id)  # signs out
        context.close()
    return written


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        database_url = SqliteDatabases(Path(scratch)).fresh()
        with serve_live(database_url, Path(scratch)) as live, sync_playwright() as playwright:
            live.seed(lambda s: seed_showcase(s, now=live.clock.now()))
            browser = launch_chromium(playwright)
            try:
                for path in take_screenshots(browser, live, DOCS):
                    print(path.relative_to(DOCS.parents[1]))
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
