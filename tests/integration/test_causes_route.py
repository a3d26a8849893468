"""GET api/v1/billing/causes: failures grouped by cause, with counts and who is affected."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.status import Status
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
from tests.integration.test_listing_legacy import row

ROUTE = "/api/v1/billing/causes"
SERVICE_NS = "{http://schemas.datacontract.org/2004/07/InvoiceOutbox.Api}"
H = timedelta(hours=1)


async def _world(session: AsyncSession) -> None:
    session.add_all(
        [
            # http-503: two Aborted for A on MediSwitch, one Failed for B on PracticeLedger.
            row(when=NOW - 5 * H, reason="MediSwitch answered HTTP 503 (first)"),
            row(when=NOW - 3 * H, reason="MediSwitch answered HTTP 503 (later)"),
            row(
                Status.FAILED,
                when=NOW - 1 * H,
                practice=PRACTICE_B,
                system="PracticeLedger",
                reason="PracticeLedger answered HTTP 503 Service Unavailable (latest)",
            ),
            # timeout: two Failed for A.
            row(Status.FAILED, when=NOW - 4 * H, cause="timeout", reason="Timed out after 30 s"),
            row(Status.FAILED, when=NOW - 2 * H, cause="timeout", reason="Timed out after 10 s"),
            # one smtp-550, one without a cause.
            row(
                when=NOW - 6 * H,
                cause="smtp-550",
                system="Accounts mailbox",
                reason="The mailbox refused the message: SMTP 550",
            ),
            row(when=NOW - 7 * H, cause=None, reason="something odd", practice=PRACTICE_B),
            # Not failures: never counted, whatever their cause column says.
            row(Status.SENT, when=NOW, cause=None, reason=None),
            row(Status.PENDING, when=NOW, cause="http-503", reason="resent after a 503"),
            row(Status.CANCELLED, when=NOW, cause="timeout"),
        ]
    )
    await session.commit()


async def _groups(
    client: httpx.AsyncClient, headers: dict[str, str], query: str = ""
) -> dict[str, dict[str, Any]]:
    response = await client.get(f"{ROUTE}?{query}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["Total"] == sum(g["Count"] for g in body["Groups"])
    return {g["Cause"]: g for g in body["Groups"]}


async def test_groups_with_counts_times_systems_and_practices(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    response = await client.get(ROUTE, headers=admin_headers)
    body = response.json()
    assert [g["Cause"] for g in body["Groups"]] == ["http-503", "timeout", "smtp-550", "unknown"]
    assert body["Total"] == 7
    g503 = body["Groups"][0]
    assert g503 == {
        "Cause": "http-503",
        "Count": 3,
        "Reason": "PracticeLedger answered HTTP 503 Service Unavailable (latest)",
        "Label": "HTTP 503 Service Unavailable",
        "FirstSeen": "2026-02-05T11:06:25Z",
        "LastSeen": "2026-02-05T15:06:25Z",
        "Statuses": {"Failed": 1, "Aborted": 2},
        "Systems": ["MediSwitch", "PracticeLedger"],
        "SystemCount": 2,
        "Practices": sorted([str(PRACTICE_A), str(PRACTICE_B)]),
        "PracticeCount": 2,
        "Retryable": True,
        "Meaning": "The system the invoice is sent to is temporarily unavailable.",
        "Fix": "We will keep trying automatically; nothing to do unless it stays like this for "
        "a day.",
        "WhoMustAct": None,
        "ResendHelps": None,
        "Known": True,
        "ResendAll": True,
    }
    groups = {g["Cause"]: g for g in body["Groups"]}
    assert groups["timeout"]["Count"] == 2
    assert groups["timeout"]["Reason"] == "Timed out after 10 s"
    assert groups["timeout"]["Statuses"] == {"Failed": 2, "Aborted": 0}
    assert groups["smtp-550"]["Label"] == "Mailbox refused the message (SMTP 550)"
    assert groups["smtp-550"]["Systems"] == ["Accounts mailbox"]
    assert groups["unknown"]["Count"] == 1
    assert groups["unknown"]["Label"] == "Unknown cause"
    assert groups["unknown"]["Practices"] == [str(PRACTICE_B)]


@pytest.mark.parametrize(
    ("query", "counts"),
    [
        ("status=Aborted", {"http-503": 2, "smtp-550": 1, "unknown": 1}),
        ("status=failed", {"http-503": 1, "timeout": 2}),
        (f"practiceId={PRACTICE_B}", {"http-503": 1, "unknown": 1}),
        ("system=MediSwitch", {"http-503": 2, "timeout": 2, "unknown": 1}),
        ("cause=timeout,unknown", {"timeout": 2, "unknown": 1}),
        ("from=2026-02-05T12:00:00Z", {"http-503": 2, "timeout": 2}),
        ("to=2026-02-05T10:30:00Z", {"smtp-550": 1, "unknown": 1}),
        ("q=30%20s", {"timeout": 1}),
        ("sendingType=Cancellation", {}),
        (f"practiceId={uuid.uuid4()}", {}),
    ],
)
async def test_filters_narrow_the_groups(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin_headers: dict[str, str],
    query: str,
    counts: dict[str, int],
) -> None:
    await _world(session)
    groups = await _groups(client, admin_headers, query)
    assert {cause: g["Count"] for cause, g in groups.items()} == counts


async def test_statuses_show_only_what_was_asked(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    groups = await _groups(client, admin_headers, "status=Aborted")
    assert groups["http-503"]["Statuses"] == {"Aborted": 2}
    assert groups["http-503"]["Reason"] == "MediSwitch answered HTTP 503 (later)"
    assert groups["http-503"]["LastSeen"] == "2026-02-05T13:06:25Z"


async def test_a_group_id_is_the_cause_filter_of_the_lists(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    groups = await _groups(client, admin_headers)
    for cause, group in groups.items():
        response = await client.get(
            f"/api/v1/billing/sendings?cause={cause}&status=Failed,Aborted&limit=1000",
            headers=admin_headers,
        )
        assert response.json()["Total"] == group["Count"], cause
        aborted = await client.get(
            f"/api/v1/billing/invoices/aborted?cause={cause}", headers=admin_headers
        )
        assert len(aborted.json()) == group["Statuses"]["Aborted"], cause


async def test_practices_are_capped_with_the_full_count(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    practices = sorted(uuid.uuid4() for _ in range(105))
    session.add_all(
        row(practice=p, when=NOW - timedelta(seconds=i)) for i, p in enumerate(practices)
    )
    await session.commit()
    group = (await _groups(client, admin_headers))["http-503"]
    assert group["Count"] == 105
    assert group["PracticeCount"] == 105
    assert group["Practices"] == [str(p) for p in practices[:100]]


async def test_many_distinct_causes(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    # More (status, cause) pairs than one latest-reason statement reads (100).
    codes = list(range(400, 461)) + list(range(500, 560))
    session.add_all(
        row(
            Status.FAILED if code >= 500 else Status.ABORTED,
            cause=f"http-{code}",
            reason=f"answered {code}",
            when=NOW - timedelta(seconds=code),
        )
        for code in codes
    )
    await session.commit()
    groups = await _groups(client, admin_headers)
    assert len(groups) == len(codes)
    for code in codes:
        assert groups[f"http-{code}"]["Reason"] == f"answered {code}"
    assert groups["http-418"]["Label"] == "HTTP 418"


async def test_empty(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.get(ROUTE, headers=admin_headers)
    assert response.json() == {"Groups": [], "Total": 0}


async def test_xml_variant_parses(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    response = await client.get(ROUTE, headers={**admin_headers, "Accept": "application/xml"})
    assert response.status_code == 200
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{SERVICE_NS}CauseGroups"
    assert root.findtext(f"{SERVICE_NS}Total") == "7"
    first = root.find(f"{SERVICE_NS}Groups/{SERVICE_NS}CauseGroup")
    assert first is not None
    assert first.findtext(f"{SERVICE_NS}Cause") == "http-503"
    assert first.findtext(f"{SERVICE_NS}Count") == "3"
    assert first.findtext(f"{SERVICE_NS}Statuses/{SERVICE_NS}Aborted") == "2"
    systems = [s.text for s in first.findall(f"{SERVICE_NS}Systems/{SERVICE_NS}System")]
    assert systems == ["MediSwitch", "PracticeLedger"]
    assert len(first.findall(f"{SERVICE_NS}Practices/{SERVICE_NS}guid")) == 2
    assert first.findtext(f"{SERVICE_NS}FirstSeen") == "2026-02-05T13:06:25.576601+02:00"


async def test_admins_only_and_bad_values(
    client: httpx.AsyncClient, admin_headers: dict[str, str], practice_headers: dict[str, str]
) -> None:
    assert (await client.get(ROUTE)).status_code == 401
    for query in ("", f"?practiceId={PRACTICE_A}"):
        assert (await client.get(ROUTE + query, headers=practice_headers)).status_code == 403
    for query, name in [
        ("status=Sent", "status"),
        ("status=Pending,Failed", "status"),
        ("cause=A B", "cause"),
        ("from=soon", "from"),
    ]:
        response = await client.get(f"{ROUTE}?{query}", headers=admin_headers)
        assert response.status_code == 400
        assert f" {name} " in response.json()["Message"]
    # Paging parameters mean nothing here and are ignored.
    assert (await client.get(f"{ROUTE}?limit=0&cursor=x", headers=admin_headers)).status_code == 200
