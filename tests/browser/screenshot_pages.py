"""Screenshots of the finding pages (used by tests/browser/screenshots.py): the aborted list,
one invoice's timeline, and the practice view as a practice user sees it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.models import Attempt
from invoice_outbox.sendings.status import Status
from tests.browser.conftest import sign_in_with_form
from tests.conftest import PRACTICE_A
from tests.factories import sending
from tests.web_support import PRACTICE_NAME, PRACTICE_PASSWORD

_TIMELINE = (
    (0, 30_004, "Retryable", None, "Timed out after 30 s waiting for MediSwitch", "web-1:4102"),
    (5, 212, "Retryable", 503, "MediSwitch answered HTTP 503 Service Unavailable", "web-2:977"),
    (305, 198, "Retryable", 503, "MediSwitch answered HTTP 503 Service Unavailable", "web-1:4102"),
    (2105, 431, "Permanent", 422, "MediSwitch answered HTTP 422 Unprocessable Entity", "web-2:977"),
)


async def seed_timeline(session: AsyncSession, *, now: datetime) -> uuid.UUID:
    """One invoice of practice A: Aborted at MediSwitch after four attempts, Sent to
    PracticeLedger at the first.  Returns its id."""
    invoice_id, encounter_id = uuid.uuid4(), uuid.uuid4()
    start = now - timedelta(hours=3)
    aborted = sending(
        status=Status.ABORTED,
        when=start + timedelta(seconds=2105),
        practice_id=PRACTICE_A,
        system="MediSwitch",
        reason=_TIMELINE[-1][4],
        attempts=len(_TIMELINE),
        overrides={"invoice_id": invoice_id, "encounter_id": encounter_id, "cause": "http-422"},
    )
    sent = sending(
        status=Status.SENT,
        when=start,
        practice_id=PRACTICE_A,
        system="PracticeLedger",
        attempts=1,
        overrides={
            "invoice_id": invoice_id,
            "encounter_id": encounter_id,
            "sent_at": start + timedelta(seconds=1),
        },
    )
    session.add_all([aborted, sent])
    await session.flush()
    for number, (after, took, outcome, code, reason, worker) in enumerate(_TIMELINE, start=1):
        session.add(
            Attempt(
                sending_id=aborted.id,
                number=number,
                started_at=start + timedelta(seconds=after),
                duration_ms=took,
                outcome=outcome,
                code=code,
                reason=reason,
                worker=worker,
            )
        )
    session.add(
        Attempt(
            sending_id=sent.id,
            number=1,
            started_at=start,
            duration_ms=640,
            outcome="Sent",
            code=202,
            reason=None,
            worker="web-1:4102",
        )
    )
    await session.commit()
    return invoice_id


def shoot_finding_pages(
    page: Page, out_dir: Path, suffix: str, invoice_id: uuid.UUID
) -> list[Path]:
    """The aborted list and an invoice's timeline (signed in as the admin), then the practice
    view (signs the page out and in again as practice A's user)."""
    written = []
    for name, path, ready in (
        ("aborted", "/admin/aborted", "table.rows"),
        ("invoice", f"/admin/invoices/{invoice_id}", "tr.attempt"),
    ):
        page.goto(path)
        expect(page.locator(ready).first).to_be_visible()
        # Lists: what the first screen shows (50 rows would make a very long picture).
        page.screenshot(path=out_dir / f"{name}{suffix}.png", full_page=name == "invoice")
        written.append(out_dir / f"{name}{suffix}.png")
    page.get_by_role("button", name="Sign out").click()
    sign_in_with_form(page, PRACTICE_NAME, PRACTICE_PASSWORD)
    expect(page.locator(".invoice-item").first).to_be_visible()
    page.screenshot(path=out_dir / f"practice{suffix}.png")
    written.append(out_dir / f"practice{suffix}.png")
    return written
