"""The practice view of the dashboard (``/admin/invoices``), on both engines."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.status import Status
from invoice_outbox.web.paging import PAGE_SIZE
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
from tests.factories import sending
from tests.integration.test_web_lists import invoice_links, next_link
from tests.web_support import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    PRACTICE_NAME,
    PRACTICE_PASSWORD,
    add_web_users,
    sign_in,
)

_BADGE = re.compile(r'<span class="badge status-(\w+)">')


@pytest.fixture
async def world(session: AsyncSession, clock: FrozenClock) -> dict[str, list[str]]:
    """Practice A: an Aborted (member number rejected), a Failed (retried at 19:00 SAST),
    a Sent one; practice B: an Aborted one.  Returns invoice ids by name."""
    await add_web_users(session, now=clock.now())
    rows = {
        "a_aborted": sending(
            status=Status.ABORTED,
            when=NOW - timedelta(hours=3),
            practice_id=PRACTICE_A,
            reason="HealthClaims answered HTTP 422",
            overrides={"cause": "http-422"},
        ),
        "a_failed": sending(
            status=Status.FAILED,
            when=NOW - timedelta(hours=2),
            practice_id=PRACTICE_A,
            reason="MediSwitch answered HTTP 503",
            overrides={"cause": "http-503", "next_attempt_at": NOW + timedelta(minutes=54)},
        ),
        "a_sent": sending(
            status=Status.SENT,
            when=NOW - timedelta(hours=1),
            practice_id=PRACTICE_A,
            overrides={"sent_at": NOW - timedelta(hours=1)},
        ),
        "b_aborted": sending(
            status=Status.ABORTED,
            when=NOW,
            practice_id=PRACTICE_B,
            reason="<i>B's</i> failure",
            overrides={"cause": "timeout"},
        ),
    }
    session.add_all(rows.values())
    await session.commit()
    return {name: [str(row.invoice_id)] for name, row in rows.items()}


async def test_a_practice_user_sees_their_failures_in_plain_words(
    client: httpx.AsyncClient, world: dict[str, list[str]]
) -> None:
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    landing = await client.get("/admin/", follow_redirects=True)
    assert landing.url.path == "/admin/invoices"
    text = landing.text
    assert invoice_links(text) == world["a_aborted"] + world["a_failed"]
    assert _BADGE.findall(text) == ["aborted", "failed"]
    assert "Your practice's invoices" in text
    assert "The system the invoice is sent to is temporarily unavailable." in text
    assert "We will try again at 19:00 SAST on 5 February 2026." in text
    assert "Last change 5 Feb 2026, 15:06 SAST" in text
    assert 'name="practiceId"' not in text  # one practice: no practice filter
    everything = await client.get("/admin/invoices", params={"show": "all"})
    assert (
        invoice_links(everything.text) == world["a_aborted"] + world["a_failed"] + world["a_sent"]
    )
    assert "Delivered on 5 February 2026 at 17:06 SAST." in everything.text
    sent = await client.get("/admin/invoices", params={"show": "sent"})
    assert invoice_links(sent.text) == world["a_sent"]


async def test_a_practice_user_cannot_name_another_practice(
    client: httpx.AsyncClient, world: dict[str, list[str]]
) -> None:
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    answer = await client.get("/admin/invoices", params={"practiceId": str(PRACTICE_B)})
    assert answer.status_code == 403
    assert world["b_aborted"][0] not in answer.text
    foreign = await client.get(f"/admin/invoices/{world['b_aborted'][0]}")
    assert foreign.status_code == 404


async def test_admins_see_every_practice_or_one(
    client: httpx.AsyncClient, world: dict[str, list[str]]
) -> None:
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    every = await client.get("/admin/invoices")
    assert invoice_links(every.text) == world["a_aborted"] + world["a_failed"] + world["b_aborted"]
    assert "&lt;i&gt;B&#39;s&lt;/i&gt; failure" in every.text
    one = await client.get("/admin/invoices", params={"practiceId": str(PRACTICE_B)})
    assert invoice_links(one.text) == world["b_aborted"]
    assert f"Invoices of Practice {str(PRACTICE_B)[:8]}" in one.text


@pytest.mark.parametrize(
    "params", [{"show": "everything"}, {"practiceId": "x"}, {"from": "31-01-2026"}]
)
async def test_bad_values_are_a_400_page(
    client: httpx.AsyncClient, world: dict[str, list[str]], params: dict[str, str]
) -> None:
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    answer = await client.get("/admin/invoices", params=params)
    assert answer.status_code == 400
    assert "Please check the filters" in answer.text


async def test_the_practice_view_is_paged_with_a_cursor(
    client: httpx.AsyncClient, session: AsyncSession, world: dict[str, list[str]]
) -> None:
    session.add_all(
        sending(
            status=Status.FAILED,
            when=NOW - timedelta(days=1, minutes=i),
            practice_id=PRACTICE_A,
            overrides={"cause": "timeout"},
        )
        for i in range(PAGE_SIZE)
    )
    await session.commit()
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    first = await client.get("/admin/invoices")
    assert len(invoice_links(first.text)) == PAGE_SIZE
    assert f"<strong>{PAGE_SIZE + 2}</strong> invoices." in first.text
    following = next_link(first.text)
    assert following is not None
    second = await client.get(following)
    assert invoice_links(second.text) == world["a_aborted"] + world["a_failed"]
    assert next_link(second.text) is None


async def test_a_discarded_invoice_is_shown_under_its_own_choice_in_plain_words(
    client: httpx.AsyncClient, session: AsyncSession, world: dict[str, list[str]]
) -> None:
    given_up = sending(
        status=Status.DISCARDED,
        when=NOW - timedelta(minutes=30),
        practice_id=PRACTICE_A,
        reason="HealthClaims answered HTTP 422",
        overrides={"cause": "http-422", "discarded_by": "pat", "discard_reason": "paid cash"},
    )
    session.add(given_up)
    await session.commit()
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)

    problems = await client.get("/admin/invoices")
    discarded = await client.get("/admin/invoices", params={"show": "discarded"})

    assert str(given_up.invoice_id) not in invoice_links(problems.text)
    assert invoice_links(discarded.text) == [str(given_up.invoice_id)]
    assert _BADGE.findall(discarded.text) == ["discarded"]
    assert "Sending it was then stopped for good." in discarded.text
    assert "ask your administrator to send it again" in discarded.text
