"""GET api/v1/billing/sendings: every status, filtered and paged, scoped to the caller."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.auth.principal import Role
from invoice_outbox.sendings.status import SendingType, Status
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B, make_token
from tests.integration.test_listing_legacy import row

ROUTE = "/api/v1/billing/sendings"
SERVICE_NS = "{http://schemas.datacontract.org/2004/07/InvoiceOutbox.Api}"
PRACTICE_C = uuid.UUID("00000000-0000-4000-8000-00000000000c")
ITEM_KEYS = [
    "SendingId",
    "PracticeId",
    "InvoiceId",
    "InvoiceNumber",
    "EncounterId",
    "System",
    "SendingType",
    "Status",
    "Reason",
    "Cause",
    "CauseLabel",
    "SendingAttempts",
    "SendingTime",
    "NextAttemptAt",
    "SentAt",
    "Acceptance",
    "AcceptanceCode",
    "WaitsFor",
    "Held",
    "HeldReason",
    "HeldSince",
]


async def _world(session: AsyncSession) -> None:
    """One sending per status for practice A (in status order), a few for B and C."""
    for i, status in enumerate(Status):
        cause = {"Failed": "timeout", "Aborted": "http-422", "Pending": "http-503"}.get(status)
        session.add(
            row(
                status,
                when=NOW - timedelta(minutes=60 - i),
                cause=cause,
                reason=f"A {status.value}",
                next_attempt_at=NOW + timedelta(minutes=5) if status == "Failed" else None,
                sent_at=NOW if status == "Sent" else None,
            )
        )
    session.add(
        row(
            Status.ABORTED,
            practice=PRACTICE_B,
            when=NOW - timedelta(minutes=30),
            reason="B aborted",
            system="PracticeLedger",
        )
    )
    session.add(
        row(
            Status.FAILED,
            practice=PRACTICE_C,
            when=NOW - timedelta(minutes=20),
            reason="C failed",
            cause=None,
        )
    )
    await session.commit()


async def _items(
    client: httpx.AsyncClient, query: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    response = await client.get(f"{ROUTE}?{query}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["Items", "Total", "NextCursor"]
    items: list[dict[str, Any]] = body["Items"]
    return items


async def test_the_shape_of_a_page(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    response = await client.get(f"{ROUTE}?limit=3", headers=admin_headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["Total"] == 8
    assert response.headers["x-total-count"] == "8"
    assert body["NextCursor"] == response.headers["x-next-cursor"]
    first = body["Items"][0]
    assert list(first) == ITEM_KEYS
    assert first["Status"] == "Pending"
    assert first["Cause"] == "http-503"  # a resent sending keeps its last failure's cause
    assert first["CauseLabel"] == "HTTP 503 Service Unavailable"
    assert first["SendingTime"] == "2026-02-05T15:06:25Z"
    assert uuid.UUID(first["SendingId"])
    # A Transport system tells no verdict; nothing waits for this sending.
    assert (first["Acceptance"], first["AcceptanceCode"], first["WaitsFor"]) == (None, None, None)


async def test_all_statuses_in_sending_time_order_across_pages(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(f"{ROUTE}?{query}", headers=admin_headers)
        body = response.json()
        assert body["Total"] == 8
        seen.extend(item["Reason"] for item in body["Items"])
        cursor = body["NextCursor"]
        if cursor is None:
            break
    assert seen == [
        "A Pending",
        "A Sending",
        "A Sent",
        "A Failed",
        "A Aborted",
        "A Cancelled",
        "B aborted",
        "C failed",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=Failed", ["A Failed", "C failed"]),
        ("status=failed&status=ABORTED", ["A Failed", "A Aborted", "B aborted", "C failed"]),
        ("status=Sent,Cancelled", ["A Sent", "A Cancelled"]),
        ("cause=unknown", ["C failed"]),  # a failure without a cause, never a Sent row
        ("cause=http-422,http-503&status=Aborted", ["A Aborted", "B aborted"]),
        ("cause=http-422", ["A Aborted"]),
        (f"practiceId={PRACTICE_B},{PRACTICE_C}", ["B aborted", "C failed"]),
        ("system=PracticeLedger", ["B aborted"]),
        ("sendingType=Cancellation", []),
        ("q=a%20s", ["A Sending", "A Sent"]),
        ("from=2026-02-05T15:11:00Z&to=2026-02-05T15:40:00Z", ["A Cancelled", "B aborted"]),
    ],
)
async def test_filters(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin_headers: dict[str, str],
    query: str,
    expected: list[str],
) -> None:
    await _world(session)
    assert [i["Reason"] for i in await _items(client, query, admin_headers)] == expected


async def test_items_say_when_the_next_attempt_is(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    (failed,) = await _items(client, f"status=Failed&practiceId={PRACTICE_A}", admin_headers)
    assert failed["NextAttemptAt"] == "2026-02-05T16:11:25Z"
    assert failed["Cause"] == "timeout"
    assert failed["CauseLabel"] == "Timed out"
    (sent,) = await _items(client, "status=Sent", admin_headers)
    assert sent["Cause"] is None
    assert sent["CauseLabel"] is None
    assert sent["SentAt"] == "2026-02-05T16:06:25Z"


async def test_practice_users_see_only_their_practices(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _world(session)
    mine = await _items(client, "", practice_headers)
    assert {i["PracticeId"] for i in mine} == {str(PRACTICE_A)}
    assert len(mine) == 6
    # Text that only another practice's rows contain finds nothing.
    assert await _items(client, "q=B%20aborted", practice_headers) == []
    assert await _items(client, "system=PracticeLedger", practice_headers) == []
    for query in (
        f"practiceId={PRACTICE_B}",
        f"practiceid={PRACTICE_B}",
        f"practiceId={PRACTICE_A},{PRACTICE_B}",
        f"PRACTICEID={PRACTICE_C}&limit=1",
        f"practiceId={uuid.uuid4()}",
    ):
        response = await client.get(f"{ROUTE}?{query}", headers=practice_headers)
        assert response.status_code == 403, query
        assert "Items" not in response.text


async def test_a_user_of_several_practices_may_narrow_to_one(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await _world(session)
    headers = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B, PRACTICE_C)}"}
    both = await _items(client, "", headers)
    assert [i["Reason"] for i in both] == ["B aborted", "C failed"]
    one = await _items(client, f"practiceId={PRACTICE_C}", headers)
    assert [i["Reason"] for i in one] == ["C failed"]


async def test_an_admin_cursor_does_not_open_other_practices_to_a_practice_user(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
) -> None:
    await _world(session)
    cursor = (await client.get(f"{ROUTE}?limit=1", headers=admin_headers)).json()["NextCursor"]
    response = await client.get(f"{ROUTE}?cursor={cursor}", headers=practice_headers)
    assert response.status_code == 400
    assert "cursor" in response.json()["Message"]


async def test_rows_added_during_a_walk_do_not_change_it(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    first = (await client.get(f"{ROUTE}?limit=4", headers=admin_headers)).json()
    session.add_all(
        [
            row(Status.SENT, when=NOW - timedelta(days=1), reason="behind", cause=None),
            row(Status.FAILED, when=NOW + timedelta(days=1), reason="ahead"),
        ]
    )
    await session.commit()
    second = (
        await client.get(f"{ROUTE}?limit=4&cursor={first['NextCursor']}", headers=admin_headers)
    ).json()
    assert second["Total"] == first["Total"] == 8
    assert [i["Reason"] for i in first["Items"] + second["Items"]] == [
        "A Pending",
        "A Sending",
        "A Sent",
        "A Failed",
        "A Aborted",
        "A Cancelled",
        "B aborted",
        "C failed",
    ]
    assert second["NextCursor"] is None
    assert (await client.get(ROUTE, headers=admin_headers)).json()["Total"] == 10


async def test_xml_variant_parses(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    response = await client.get(
        f"{ROUTE}?status=Failed&limit=1", headers={**admin_headers, "Accept": "text/xml"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{SERVICE_NS}SendingPage"
    assert root.findtext(f"{SERVICE_NS}Total") == "2"
    assert root.findtext(f"{SERVICE_NS}NextCursor") == response.headers["x-next-cursor"]
    (item,) = root.findall(f"{SERVICE_NS}Items/{SERVICE_NS}Item")
    assert item.findtext(f"{SERVICE_NS}Reason") == "A Failed"
    assert item.findtext(f"{SERVICE_NS}Cause") == "timeout"
    assert item.findtext(f"{SERVICE_NS}NextAttemptAt") == "2026-02-05T18:11:25.576601+02:00"
    nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
    assert item.find(f"{SERVICE_NS}SentAt").get(nil) == "true"  # type: ignore[union-attr]


async def test_bad_values_and_callers(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for query, name in [
        ("status=Lost", "status"),
        ("limit=1001", "limit"),
        ("cursor=x", "cursor"),
        ("sendingType=Fax", "sendingType"),
    ]:
        response = await client.get(f"{ROUTE}?{query}", headers=admin_headers)
        assert response.status_code == 400
        assert f" {name} " in response.json()["Message"]
    assert (await client.get(ROUTE)).status_code == 401


async def test_default_page_is_a_hundred(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    session.add_all(
        row(
            Status.SENT,
            when=NOW + timedelta(seconds=i),
            cause=None,
            reason=f"s{i}",
            sending_type=SendingType.INVOICE,
        )
        for i in range(101)
    )
    await session.commit()
    body = (await client.get(ROUTE, headers=admin_headers)).json()
    assert len(body["Items"]) == 100
    assert body["Total"] == 101
    assert body["NextCursor"] is not None
