"""The dashboard shows the recipients' verdicts: the practice view's "To correct" list with
the fix, the timeline's verdict and (for admins only) the recipient's own words, and the
overview's verdict counts.  Both engines."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.models import Attempt
from invoice_outbox.sendings.status import Status
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
from tests.factories import sending
from tests.web_support import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    PRACTICE_NAME,
    PRACTICE_PASSWORD,
    add_web_users,
    sign_in,
)

WORDS = "Scheme says member Jane Doe 8812 unknown"


@pytest.fixture
async def world(session: AsyncSession, clock: FrozenClock) -> dict[str, str]:
    await add_web_users(session, now=clock.now())
    rejected = sending(
        status=Status.ABORTED,
        when=NOW - timedelta(hours=2),
        practice_id=PRACTICE_A,
        reason="MediSwitch rejected the invoice: code 04, Invalid member number",
        overrides={"cause": "code-k-switch-04", "acceptance": "Rejected", "acceptance_code": "04"},
    )
    vendor = sending(
        status=Status.ABORTED,
        when=NOW - timedelta(hours=1),
        practice_id=PRACTICE_A,
        reason="MediSwitch rejected the invoice: code 96, Claim format not accepted",
        overrides={"cause": "code-k-switch-96", "acceptance": "Rejected", "acceptance_code": "96"},
    )
    overdue = sending(
        status=Status.SENT,
        when=NOW - timedelta(hours=1),
        practice_id=PRACTICE_A,
        overrides={"sent_at": NOW - timedelta(hours=1), "acceptance": "Overdue"},
    )
    other = sending(
        status=Status.ABORTED,
        when=NOW,
        practice_id=PRACTICE_B,
        reason="MediSwitch rejected the invoice: code 04, Invalid member number",
        overrides={"cause": "code-k-switch-04", "acceptance": "Rejected", "acceptance_code": "04"},
    )
    session.add_all([rejected, vendor, overdue, other])
    await session.flush()
    session.add(
        Attempt(
            sending_id=rejected.id,
            number=1,
            started_at=NOW - timedelta(hours=2),
            duration_ms=40,
            outcome="Rejected",
            code=200,
            reason=rejected.reason,
            worker="w",
            recipient_code="04",
            recipient_message=WORDS,
        )
    )
    await session.commit()
    return {
        "rejected": str(rejected.invoice_id),
        "vendor": str(vendor.invoice_id),
        "overdue": str(overdue.invoice_id),
        "other": str(other.invoice_id),
    }


async def test_practice_sees_what_to_correct_with_the_fix_and_never_the_recipients_words(
    client: httpx.AsyncClient, world: dict[str, str]
) -> None:
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    page = await client.get("/admin/invoices")
    assert page.status_code == 200
    text = page.text
    section = text.split('id="must-correct"')[1].split("</section>")[0]
    assert world["rejected"] in section
    assert world["vendor"] not in section  # the software vendor must act, not the practice
    assert world["other"] not in text  # another practice's
    assert "Check the membership number on the patient" in section
    timeline = await client.get(f"/admin/invoices/{world['rejected']}")
    assert timeline.status_code == 200
    assert 'data-acceptance="Rejected"' in timeline.text
    assert "Who must act</dt><dd>practice" in timeline.text
    assert "Jane Doe" not in timeline.text
    overdue = await client.get(f"/admin/invoices/{world['overdue']}")
    assert "past the deadline" in overdue.text


async def test_admin_sees_the_recipients_words_and_the_verdict_counts(
    client: httpx.AsyncClient, world: dict[str, str]
) -> None:
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    timeline = await client.get(f"/admin/invoices/{world['rejected']}")
    assert WORDS in timeline.text
    overview = await client.get("/admin/")
    assert 'data-acceptance="Rejected">3<' in overview.text
    assert 'data-acceptance="Overdue">1<' in overview.text
    cause = await client.get("/admin/causes/code-k-switch-04")
    assert 'id="no-resend-all"' in cause.text
    assert 'id="resend-form"' not in cause.text
    assert "Invalid member number" in cause.text
    helps = await client.get("/admin/causes/code-k-switch-96")
    assert "software vendor" in helps.text
