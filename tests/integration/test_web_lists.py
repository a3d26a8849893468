"""The aborted and failed lists of the dashboard, on both engines: pages with a cursor,
filters, 400 pages for bad values, who may see them, escaping."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.status import Status
from invoice_outbox.web.paging import PAGE_SIZE
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

_INVOICE_LINK = re.compile(r'href="/admin/invoices/([0-9a-f-]{36})"')
_NEXT = re.compile(r'<a href="([^"]+)" rel="next">Next page</a>')


def invoice_links(html: str) -> list[str]:
    return _INVOICE_LINK.findall(html)


def next_link(html: str) -> str | None:
    found = _NEXT.search(html)
    return found.group(1).replace("&amp;", "&") if found else None


async def _seed_aborted(session: AsyncSession, n: int, **kwargs: object) -> list[uuid.UUID]:
    """`n` Aborted sendings a minute apart (oldest first); returns their invoice ids in order."""
    rows = [
        sending(
            status=Status.ABORTED,
            when=NOW - timedelta(minutes=n - i),
            practice_id=PRACTICE_A if i % 2 == 0 else PRACTICE_B,
            system="MediSwitch" if i % 3 else "PracticeLedger",
            reason=f"MediSwitch answered HTTP 503 (row {i})",
            attempts=8,
            overrides={"cause": "http-503" if i % 3 else "timeout", **kwargs},
        )
        for i in range(n)
    ]
    session.add_all(rows)
    await session.commit()
    return [row.invoice_id for row in rows]


@pytest.fixture
async def admin(client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock) -> str:
    await add_web_users(session, now=clock.now())
    return await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)


async def test_the_aborted_list_is_paged_with_the_api_cursor(
    client: httpx.AsyncClient, session: AsyncSession, admin: str
) -> None:
    invoices = await _seed_aborted(session, PAGE_SIZE + 7)
    first = await client.get("/admin/aborted")
    assert first.status_code == 200
    assert invoice_links(first.text) == [str(i) for i in invoices[:PAGE_SIZE]]
    assert f"<strong>{PAGE_SIZE + 7}</strong> aborted invoices." in first.text
    assert f"Showing 1&ndash;{PAGE_SIZE}" in first.text
    assert 'aria-current="page">Aborted<' in first.text
    following = next_link(first.text)
    assert following is not None
    assert "cursor=" in following
    assert "page=2" in following
    second = await client.get(following)
    assert second.status_code == 200
    assert invoice_links(second.text) == [str(i) for i in invoices[PAGE_SIZE:]]
    assert f"Showing {PAGE_SIZE + 1}&ndash;{PAGE_SIZE + 7}" in second.text
    assert next_link(second.text) is None
    assert 'href="/admin/aborted" rel="prev">Previous page</a>' in second.text
    # Times in the service's zone: the newest row is a minute before NOW (18:06 SAST).
    assert "5 Feb 2026, 18:05 SAST" in second.text


async def test_filters_narrow_the_list(
    client: httpx.AsyncClient, session: AsyncSession, admin: str
) -> None:
    invoices = await _seed_aborted(session, 12)
    session.add(sending(status=Status.FAILED, when=NOW, practice_id=PRACTICE_A))
    await session.commit()
    by_system = await client.get("/admin/aborted", params={"system": "PracticeLedger"})
    assert invoice_links(by_system.text) == [str(invoices[i]) for i in range(0, 12, 3)]
    assert "<strong>4</strong> aborted invoices match the filters." in by_system.text
    assert 'value="PracticeLedger"' in by_system.text  # the form shows what was asked
    by_cause = await client.get("/admin/aborted", params={"cause": "timeout", "system": ""})
    assert invoice_links(by_cause.text) == [str(invoices[i]) for i in range(0, 12, 3)]
    assert '<option value="timeout" selected>' in by_cause.text
    by_practice = await client.get("/admin/aborted", params={"practiceId": str(PRACTICE_B)})
    assert invoice_links(by_practice.text) == [str(invoices[i]) for i in range(1, 12, 2)]
    by_text = await client.get("/admin/aborted", params={"q": "(row 7)"})
    assert invoice_links(by_text.text) == [str(invoices[7])]
    by_invoice = await client.get("/admin/aborted", params={"q": str(invoices[5])})
    assert invoice_links(by_invoice.text) == [str(invoices[5])]
    by_days = await client.get("/admin/aborted", params={"from": "2026-02-06"})
    assert invoice_links(by_days.text) == []
    assert "No aborted invoices match these filters." in by_days.text
    failed = await client.get("/admin/failed")
    assert len(invoice_links(failed.text)) == 1
    assert "Next attempt" in failed.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"practiceId": "not-a-guid"}, "No practice has this name or id."),
        ({"from": "yesterday"}, "From is not a date or date-time"),
        ({"from": "2026-02-05", "to": "2026-02-01"}, "From is not before to."),
        ({"cause": "HTTP 503!"}, "Cause is not a cause"),
        ({"system": "<script>"}, "System is not a system name"),
        ({"q": "x" * 201}, "Search is longer than 200 characters."),
        ({"cursor": "forged"}, "The link to the next page is not a cursor"),
        ({"page": "-1"}, "The page number is not a whole number"),
        ({"to": "9999-12-31"}, "To is not a date or date-time"),
    ],
)
async def test_bad_filter_values_are_a_400_page(
    client: httpx.AsyncClient, admin: str, params: dict[str, str], message: str
) -> None:
    answer = await client.get("/admin/aborted", params=params)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "Please check the filters" in answer.text
    assert message in answer.text
    assert "<script>" not in answer.text


async def test_a_cursor_is_refused_with_other_filters_or_on_the_other_list(
    client: httpx.AsyncClient, session: AsyncSession, admin: str
) -> None:
    await _seed_aborted(session, PAGE_SIZE + 1)
    following = next_link((await client.get("/admin/aborted")).text)
    assert following is not None
    cursor = following.split("cursor=")[1].split("&")[0]
    other_filter = await client.get("/admin/aborted", params={"cursor": cursor, "system": "X"})
    assert other_filter.status_code == 400
    assert "other filters" in other_filter.text
    other_list = await client.get("/admin/failed", params={"cursor": cursor})
    assert other_list.status_code == 400


async def test_practice_users_may_not_see_the_lists(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> None:
    await add_web_users(session, now=clock.now())
    anonymous = await client.get("/admin/aborted?system=MediSwitch")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/admin/login?next=")
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    for path in ("/admin/aborted", "/admin/failed", "/admin/aborted?practiceId=bad"):
        answer = await client.get(path)
        assert answer.status_code == 403, path
        assert "Not available to your account" in answer.text


async def test_reasons_and_names_are_escaped(
    client: httpx.AsyncClient, session: AsyncSession, admin: str
) -> None:
    session.add(
        sending(
            status=Status.ABORTED,
            when=NOW,
            practice_id=PRACTICE_A,
            system="Evil <b>system</b>",
            reason='<script>alert("x")</script> & <img src=x onerror=alert(1)>',
            overrides={"cause": "http-400"},
        )
    )
    await session.commit()
    page = await client.get("/admin/aborted")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img" in page.text
    assert "Evil &lt;b&gt;system&lt;/b&gt;" in page.text


async def test_discarded_invoices_leave_the_aborted_list_for_its_discarded_view(
    client: httpx.AsyncClient, admin: str, session: AsyncSession
) -> None:
    kept = await _seed_aborted(session, 3)
    given_up = await _seed_aborted(
        session, 2, status=Status.DISCARDED.value, discarded_by="bob", discard_reason="dup"
    )

    default = await client.get("/admin/aborted")
    discarded = await client.get("/admin/aborted", params={"show": "discarded"})
    bad = await client.get("/admin/aborted", params={"show": "everything"})

    assert "<strong>3</strong> aborted invoices." in default.text
    assert set(invoice_links(default.text)) == {str(i) for i in kept}
    assert '<option value="discarded">Discarded (given up on)</option>' in default.text
    assert "<h1>Discarded invoices</h1>" in discarded.text
    assert "<strong>2</strong> discarded invoices match the filters." in discarded.text
    assert set(invoice_links(discarded.text)) == {str(i) for i in given_up}
    assert '<option value="discarded" selected>' in discarded.text
    assert bad.status_code == 400
    assert "Show must be one of: Needing a decision, Discarded (given up on)." in bad.text
