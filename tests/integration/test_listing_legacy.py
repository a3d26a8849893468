"""The legacy lists with opt-in filters and paging, on both engines.

Without parameters they answer exactly as before (bytes); with filters they stay the bare
legacy list; with `limit`/`cursor` the paging travels in headers.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from defusedxml import ElementTree
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.auth.principal import Role
from invoice_outbox.sendings.status import SendingType, Status
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B, make_token
from tests.factories import sending
from tests.integration.test_aborted_route import EXPECTED_JSON, EXPECTED_XML, KNOWN

ABORTED = "/api/v1/billing/invoices/aborted"
FAILED = "/api/v1/billing/invoices/failed"
NS = (
    "{http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.ValueObjects}"
)
XML = {"Accept": "application/xml"}


def row(
    status: Status = Status.ABORTED,
    *,
    when: datetime = NOW,
    practice: uuid.UUID = PRACTICE_A,
    system: str = "MediSwitch",
    cause: str | None = "http-503",
    reason: str | None = "MediSwitch answered HTTP 503 Service Unavailable",
    sending_type: SendingType = SendingType.INVOICE,
    **overrides: Any,
) -> Any:
    return sending(
        status=status,
        when=when,
        practice_id=practice,
        system=system,
        reason=reason,
        overrides={"cause": cause, "sending_type": sending_type.value, **overrides},
    )


async def _mixed(session: AsyncSession) -> dict[str, Any]:
    """A small world with one distinguishing trait per row; returns rows by name."""
    rows = {
        "a503": row(when=NOW - timedelta(hours=5), reason="a503"),
        "b503": row(when=NOW - timedelta(hours=4), practice=PRACTICE_B, reason="b503"),
        "ledger": row(
            when=NOW - timedelta(hours=3),
            system="PracticeLedger",
            cause="timeout",
            reason="Timed out after 30 s waiting for PracticeLedger",
        ),
        "cancel": row(
            when=NOW - timedelta(hours=2),
            sending_type=SendingType.CANCELLATION,
            cause="http-422",
            reason="cancel rejected: HTTP 422",
        ),
        "old": row(when=NOW - timedelta(days=3), cause="smtp-550", reason="old"),
        "failed": row(Status.FAILED, when=NOW - timedelta(hours=1), reason="failed one"),
        "sent": row(Status.SENT, cause=None, reason="never listed"),
    }
    session.add_all(rows.values())
    await session.commit()
    return rows


async def _reasons(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[str]:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return [r["Reason"] for r in response.json()]


# Unchanged without parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix", ["", "?", "?foo=bar", "?practiceId=&system=&limit=&cursor=", "?Status=Sent&$top=1"]
)
async def test_without_parameters_the_bytes_are_the_legacy_ones(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str], suffix: str
) -> None:
    known = sending(
        status=Status.ABORTED,
        when=NOW,
        practice_id=PRACTICE_A,
        attempts=8,
        reason='Switch said <503> & "busy"',
        overrides=KNOWN,
    )
    session.add(known)
    session.add(row(Status.FAILED, when=NOW, reason="not aborted"))
    await session.commit()
    as_json = await client.get(ABORTED + suffix, headers=admin_headers)
    as_xml = await client.get(ABORTED + suffix, headers={**admin_headers, "Accept": "text/xml"})
    assert as_json.content == EXPECTED_JSON
    assert as_xml.content == EXPECTED_XML
    for response in (as_json, as_xml):
        assert "x-total-count" not in response.headers
        assert "link" not in response.headers


# Filters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"practiceId={PRACTICE_B}", ["b503"]),
        (
            f"PRACTICEID={PRACTICE_A}",
            [
                "old",
                "a503",
                "Timed out after 30 s waiting for PracticeLedger",
                "cancel rejected: HTTP 422",
            ],
        ),
        ("system=PracticeLedger", ["Timed out after 30 s waiting for PracticeLedger"]),
        ("sendingType=Cancellation", ["cancel rejected: HTTP 422"]),
        ("cause=http-503", ["a503", "b503"]),
        ("cause=HTTP-503,smtp-550", ["old", "a503", "b503"]),
        (
            "cause=timeout&cause=http-422",
            ["Timed out after 30 s waiting for PracticeLedger", "cancel rejected: HTTP 422"],
        ),
        (
            "from=2026-02-05",
            [
                "a503",
                "b503",
                "Timed out after 30 s waiting for PracticeLedger",
                "cancel rejected: HTTP 422",
            ],
        ),
        ("to=2026-02-04", ["old"]),
        ("q=OLD", ["old"]),
        ("q=TIMED OUT", ["Timed out after 30 s waiting for PracticeLedger"]),
        (f"practiceId={PRACTICE_A}&cause=http-503", ["a503"]),
        (
            f"practiceId={PRACTICE_A}&from=2026-02-05&system=MediSwitch&sendingType=Invoice",
            ["a503"],
        ),
        ("cause=no-such-cause", []),
        ("system=Nowhere", []),
    ],
)
async def test_filters_alone_and_combined(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin_headers: dict[str, str],
    query: str,
    expected: list[str],
) -> None:
    await _mixed(session)
    assert await _reasons(client, f"{ABORTED}?{query}", admin_headers) == expected


async def test_the_failed_list_takes_the_same_filters(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _mixed(session)
    session.add(row(Status.FAILED, practice=PRACTICE_B, reason="b failed", cause="timeout"))
    await session.commit()
    assert await _reasons(client, f"{FAILED}?cause=http-503", admin_headers) == ["failed one"]
    assert await _reasons(client, f"{FAILED}?practiceId={PRACTICE_B}", admin_headers) == [
        "b failed"
    ]


async def test_q_treats_like_wildcards_literally(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    session.add_all(
        [
            row(reason="50% done"),
            row(reason="500 error"),
            row(reason="a_b"),
            row(reason="axb"),
            row(reason="back\\slash"),
        ]
    )
    await session.commit()
    assert await _reasons(client, f"{ABORTED}?q=50%25", admin_headers) == ["50% done"]
    assert await _reasons(client, f"{ABORTED}?q=a_b", admin_headers) == ["a_b"]
    assert await _reasons(client, f"{ABORTED}?q=k%5Cs", admin_headers) == ["back\\slash"]


async def test_date_bounds_are_service_zone_days(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    # 5 February in Johannesburg (UTC+2) is 4 Feb 22:00 UTC up to 5 Feb 22:00 UTC.
    for moment, name in [
        (datetime(2026, 2, 4, 21, 59, 59, 999999, tzinfo=UTC), "4th late"),
        (datetime(2026, 2, 4, 22, tzinfo=UTC), "5th first"),
        (datetime(2026, 2, 5, 21, 59, 59, 999999, tzinfo=UTC), "5th last"),
        (datetime(2026, 2, 5, 22, tzinfo=UTC), "6th first"),
    ]:
        session.add(row(when=moment, reason=name))
    await session.commit()
    day = await _reasons(client, f"{ABORTED}?from=2026-02-05&to=2026-02-05", admin_headers)
    assert day == ["5th first", "5th last"]
    plus = quote("+")
    exact = f"from=2026-02-05T00:00:00{plus}02:00&to=2026-02-05T23:59:59.999999{plus}02:00"
    assert await _reasons(client, f"{ABORTED}?{exact}", admin_headers) == ["5th first"]
    raw_plus = "from=2026-02-05T00:00:00+02:00"  # unencoded: arrives as a space, still read
    assert (await _reasons(client, f"{ABORTED}?{raw_plus}", admin_headers))[0] == "5th first"
    naive = "from=2026-02-05T23:59:59.999999"  # the service's zone
    assert await _reasons(client, f"{ABORTED}?{naive}", admin_headers) == ["5th last", "6th first"]


# Paging ------------------------------------------------------------------------------------------


async def _walk(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], *, between: Any = None
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Follow Link headers to the end; returns the rows, the totals seen, and the page count."""
    rows: list[dict[str, Any]] = []
    totals: list[str] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        pages += 1
        rows.extend(response.json())
        totals.append(response.headers["x-total-count"])
        link = response.headers.get("link")
        if link is None:
            assert "x-next-cursor" not in response.headers
            next_url = None
        else:
            assert link.endswith('>; rel="next"')
            next_url = link[1 : link.index(">")]
            assert f"cursor={response.headers['x-next-cursor']}" in next_url
        if between is not None and next_url is not None:
            await between(pages)
        assert pages < 100
    return rows, totals, pages


async def test_paging_walks_every_row_once_in_order_with_a_stable_total(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    # Ties on SendingTime are ordered by id, so every position is exact.
    rows = [row(when=NOW - timedelta(minutes=i // 3), reason=f"r{i}") for i in range(23)]
    session.add_all(rows)
    await session.commit()
    expected = [r.reason for r in sorted(rows, key=lambda r: (r.sending_time, r.id))]
    added: list[str] = []

    async def add_rows(page: int) -> None:
        behind = row(when=NOW - timedelta(days=30), reason=f"behind{page}")
        ahead = row(when=NOW + timedelta(days=30), reason=f"ahead{page}")
        session.add_all([behind, ahead])
        await session.commit()
        added.extend([f"behind{page}", f"ahead{page}"])

    served, totals, pages = await _walk(
        client, f"{ABORTED}?limit=5", admin_headers, between=add_rows
    )
    assert [r["Reason"] for r in served] == expected
    assert totals == ["23"] * 5
    assert pages == 5
    # A new walk sees what was added meanwhile, still in order.
    again, totals, _ = await _walk(client, f"{ABORTED}?limit=1000", admin_headers)
    assert totals == [str(23 + len(added))]
    assert len(again) == 23 + len(added)
    reasons = [r["Reason"] for r in again]
    half = len(added) // 2
    assert set(reasons[:half]) == {a for a in added if a.startswith("behind")}
    assert reasons[half:-half] == expected
    assert set(reasons[-half:]) == {a for a in added if a.startswith("ahead")}


async def test_a_whole_page_is_byte_for_byte_the_unpaged_list(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _mixed(session)
    for headers in (admin_headers, {**admin_headers, **XML}):
        unpaged = await client.get(f"{ABORTED}?cause=http-503", headers=headers)
        paged = await client.get(f"{ABORTED}?cause=http-503&limit=1000", headers=headers)
        assert paged.content == unpaged.content
        assert paged.headers["content-type"] == unpaged.headers["content-type"]
        assert paged.headers["x-total-count"] == "2"
        assert "link" not in paged.headers


async def test_xml_pages_parse_and_carry_the_same_rows_as_json(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _mixed(session)
    headers = {**admin_headers, **XML}
    first = await client.get(f"{ABORTED}?limit=2", headers=headers)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/xml; charset=utf-8"
    items = ElementTree.fromstring(first.content).findall(f"{NS}InvoiceSendingStatusVo")
    assert [i.findtext(f"{NS}Reason") for i in items] == ["old", "a503"]
    second = await client.get(first.headers["link"][1:].split(">")[0], headers=headers)
    items = ElementTree.fromstring(second.content).findall(f"{NS}InvoiceSendingStatusVo")
    assert [i.findtext(f"{NS}Reason") for i in items] == [
        "b503",
        "Timed out after 30 s waiting for PracticeLedger",
    ]
    assert first.headers["x-total-count"] == second.headers["x-total-count"] == "5"


async def test_an_empty_page_is_the_empty_legacy_list(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    as_json = await client.get(f"{ABORTED}?limit=10", headers=admin_headers)
    assert as_json.content == b"[]"
    assert as_json.headers["x-total-count"] == "0"
    as_xml = await client.get(f"{ABORTED}?limit=10", headers={**admin_headers, **XML})
    assert as_xml.content.endswith(b"/>")
    assert ElementTree.fromstring(as_xml.content).tag == f"{NS}ArrayOfInvoiceSendingStatusVo"


async def test_a_cursor_alone_pages_with_the_default_size(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    session.add_all(row(when=NOW + timedelta(seconds=i), reason=f"r{i}") for i in range(103))
    await session.commit()
    first = await client.get(f"{ABORTED}?limit=1", headers=admin_headers)
    cursor = first.headers["x-next-cursor"]
    rest = await client.get(f"{ABORTED}?cursor={cursor}", headers=admin_headers)
    assert [r["Reason"] for r in rest.json()] == [f"r{i}" for i in range(1, 101)]
    assert rest.headers["x-total-count"] == "103"
    assert "x-next-cursor" in rest.headers


# Bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("practiceId=not-a-guid", "practiceId"),
        ("sendingType=Letter", "sendingType"),
        ("cause=HTTP 503!", "cause"),
        ("from=2026-02-31", "from"),
        ("to=tomorrow", "to"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("limit=abc", "limit"),
        ("cursor=garbage", "cursor"),
        ("cursor=" + "A" * 87, "cursor"),
        ("system=%3Cscript%3E", "system"),
        ("q=%00", "q"),
    ],
)
async def test_bad_values_are_a_legacy_400_naming_the_parameter(
    client: httpx.AsyncClient, admin_headers: dict[str, str], query: str, name: str
) -> None:
    for route in (ABORTED, FAILED):
        response = await client.get(f"{route}?{query}", headers=admin_headers)
        assert response.status_code == 400
        message = response.json()["Message"]
        assert message.startswith("The request is invalid: ")
        assert f" {name} " in message
        as_xml = await client.get(f"{route}?{query}", headers={**admin_headers, **XML})
        assert as_xml.status_code == 400
        root = ElementTree.fromstring(as_xml.content)
        assert root.tag == "Error"
        assert f" {name} " in (root.findtext("Message") or "")


async def test_a_cursor_is_refused_with_other_filters_or_on_another_list(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    later = NOW + timedelta(seconds=1)
    session.add_all(
        [
            row(reason="x"),
            row(when=later, reason="y"),
            row(Status.FAILED),
            row(Status.FAILED, when=later),
        ]
    )
    await session.commit()
    cursor = (await client.get(f"{ABORTED}?limit=1", headers=admin_headers)).headers[
        "x-next-cursor"
    ]
    for url in (f"{ABORTED}?cursor={cursor}&cause=timeout", f"{FAILED}?cursor={cursor}"):
        response = await client.get(url, headers=admin_headers)
        assert response.status_code == 400
        assert "cursor" in response.json()["Message"]
    tampered = cursor[:10] + ("B" if cursor[10] != "B" else "C") + cursor[11:]
    response = await client.get(f"{ABORTED}?cursor={tampered}", headers=admin_headers)
    assert response.status_code == 400
    ok = await client.get(f"{ABORTED}?cursor={cursor}&limit=7", headers=admin_headers)
    assert [r["Reason"] for r in ok.json()] == ["y"]  # a new limit is fine


WEIRD = [
    "%00",
    "%27%3B--",
    "%25",
    "_",
    "%5C",
    "%F0%9F%92%A5",
    "%ED%A0%80",
    "x" * 5000,
    "%FF%FE",
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59-14:00",
    "99999999999999999999",
    "-0",
    "AQ",
    "AQAGShXQ" * 11,
    "null",
    "[]",
    "%0d%0aX-Injected:1",
]


async def test_no_input_makes_a_500(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _mixed(session)
    names = ["practiceId", "system", "sendingType", "cause", "from", "to", "q", "limit", "cursor"]
    for name in names:
        for value in WEIRD:
            for paging in ("", "&limit=1"):
                url = f"{ABORTED}?{name}={value}{paging}"
                response = await client.get(url, headers=admin_headers)
                assert response.status_code in (200, 400), (name, value, response.text)
                assert "x-injected" not in response.headers
                assert "\n" not in response.headers.get("link", "")


# Who may call ------------------------------------------------------------------------------------


async def test_practice_users_still_cannot_read_the_admin_lists(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _mixed(session)
    for query in ("", f"?practiceId={PRACTICE_A}", f"?practiceId={PRACTICE_A}&limit=5"):
        for route in (ABORTED, FAILED):
            response = await client.get(route + query, headers=practice_headers)
            assert response.status_code == 403
    assert (await client.get(f"{ABORTED}?limit=5")).status_code == 401


# The sent list -----------------------------------------------------------------------------------

SENT = "/api/v1/billing/invoices/sent/sentDate/2026-02-05"


async def _sent_world(session: AsyncSession) -> None:
    for i, (practice, system) in enumerate(
        [
            (PRACTICE_A, "MediSwitch"),
            (PRACTICE_B, "MediSwitch"),
            (PRACTICE_A, "PracticeLedger"),
            (PRACTICE_B, "PracticeLedger"),
            (PRACTICE_A, "MediSwitch"),
        ]
    ):
        at = NOW - timedelta(minutes=10 - i)
        session.add(
            row(
                Status.SENT,
                when=at,
                practice=practice,
                system=system,
                cause=None,
                reason=None,
                sent_at=at,
                invoice_id=uuid.UUID(int=i + 1),
            )
        )
    await session.commit()


def _invoices(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [uuid.UUID(r["InvoiceId"]).int for r in response.json()]


async def test_sent_list_filters_and_pages(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _sent_world(session)
    unfiltered = await client.get(SENT, headers=admin_headers)
    assert _invoices(unfiltered) == [1, 2, 3, 4, 5]
    assert "x-total-count" not in unfiltered.headers
    filtered = await client.get(f"{SENT}?system=MediSwitch", headers=admin_headers)
    assert _invoices(filtered) == [1, 2, 5]
    both = await client.get(
        f"{SENT}?system=MediSwitch&practiceId={PRACTICE_A}", headers=admin_headers
    )
    assert _invoices(both) == [1, 5]
    rows, totals, pages = await _walk(client, f"{SENT}?limit=2", admin_headers)
    assert [uuid.UUID(r["InvoiceId"]).int for r in rows] == [1, 2, 3, 4, 5]
    assert totals == ["5", "5", "5"]
    assert pages == 3
    # Parameters the sent list does not take are ignored, as ASP.NET ignores them.
    assert _invoices(await client.get(f"{SENT}?cause=timeout", headers=admin_headers)) == [
        1,
        2,
        3,
        4,
        5,
    ]


async def test_sent_list_practice_users_see_only_their_practice(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _sent_world(session)
    assert _invoices(await client.get(SENT, headers=practice_headers)) == [1, 3, 5]
    paged = await client.get(f"{SENT}?limit=2", headers=practice_headers)
    assert _invoices(paged) == [1, 3]
    assert paged.headers["x-total-count"] == "3"
    for query in (
        f"practiceId={PRACTICE_B}",
        f"PracticeId={PRACTICE_A},{PRACTICE_B}",
        f"practiceid={PRACTICE_B}&limit=5",
    ):
        response = await client.get(f"{SENT}?{query}", headers=practice_headers)
        assert response.status_code == 403, query
    own = await client.get(
        f"{SENT}?practiceId={PRACTICE_A}&system=MediSwitch", headers=practice_headers
    )
    assert _invoices(own) == [1, 5]


async def test_a_cursor_of_one_practice_user_is_useless_to_another(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _sent_world(session)
    cursor = (await client.get(f"{SENT}?limit=1", headers=practice_headers)).headers[
        "x-next-cursor"
    ]
    other = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B)}"}
    response = await client.get(f"{SENT}?cursor={cursor}", headers=other)
    assert response.status_code == 400
    assert json.loads(response.content)["Message"].startswith("The request is invalid: cursor")
