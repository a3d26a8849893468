"""GET api/v1/{practiceId}/billing/invoices: a practice's sendings, explained in plain words."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.auth.principal import Role
from invoice_outbox.sendings.causes import describe
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.models import System
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B, make_token
from tests.integration.test_listing_legacy import row

SERVICE_NS = "{http://schemas.datacontract.org/2004/07/InvoiceOutbox.Api}"
#: A reason that must never reach the plain-words fields (it stands for anything a receiver
#: or an admin might have typed).
LEAKY = "Rejected member 12345 for Jane Patient, ID 8001015009087"


def _route(practice: uuid.UUID) -> str:
    return f"/api/v1/{practice}/billing/invoices"


async def _world(session: AsyncSession) -> None:
    at = iter(NOW - timedelta(minutes=50 - i) for i in range(50))
    session.add_all(
        [
            row(
                Status.SENT,
                when=next(at),
                cause=None,
                reason=None,
                sent_at=NOW,
                invoice_id=uuid.UUID(int=1),
            ),
            row(
                Status.PENDING, when=next(at), cause=None, reason=None, invoice_id=uuid.UUID(int=2)
            ),
            row(
                Status.SENDING, when=next(at), cause=None, reason=None, invoice_id=uuid.UUID(int=3)
            ),
            row(
                Status.CANCELLED,
                when=next(at),
                cause=None,
                reason=None,
                invoice_id=uuid.UUID(int=4),
            ),
            row(
                Status.FAILED,
                when=next(at),
                next_attempt_at=NOW + timedelta(minutes=30),
                invoice_id=uuid.UUID(int=5),
            ),
            row(
                Status.ABORTED,
                when=next(at),
                cause="http-422",
                reason=LEAKY,
                invoice_id=uuid.UUID(int=6),
            ),
            row(
                Status.ABORTED,
                when=next(at),
                cause="config",
                reason="MediSwitch is misconfigured",
                invoice_id=uuid.UUID(int=7),
            ),
            row(
                Status.ABORTED,
                when=next(at),
                cause="rejected-member-number",
                reason=LEAKY,
                invoice_id=uuid.UUID(int=8),
            ),
            row(
                Status.ABORTED,
                when=next(at),
                cause="timeout",
                reason="gave up after 8 attempts",
                invoice_id=uuid.UUID(int=9),
            ),
            row(
                Status.ABORTED,
                when=next(at),
                practice=PRACTICE_B,
                reason="B's",
                invoice_id=uuid.UUID(int=10),
            ),
        ]
    )
    await session.commit()


async def _items(
    client: httpx.AsyncClient, headers: dict[str, str], query: str = ""
) -> dict[int, dict[str, Any]]:
    response = await client.get(f"{_route(PRACTICE_A)}?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return {uuid.UUID(i["InvoiceId"]).int: i for i in response.json()["Items"]}


async def test_every_status_is_explained(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _world(session)
    items = await _items(client, practice_headers)
    assert sorted(items) == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # not practice B's
    words = {n: (i["Explanation"], i["NextStep"]) for n, i in items.items()}
    assert words[1] == ("Delivered on 5 February 2026 at 18:06 SAST.", "Nothing to do.")
    assert words[2][0] == "Waiting to be sent."
    assert words[3][0] == "Being sent now."
    assert words[4] == ("The invoice was cancelled, so this will not be sent.", "Nothing to do.")
    assert words[5] == (
        "The system the invoice is sent to is temporarily unavailable.",
        "We will try again at 18:36 SAST on 5 February 2026.",
    )
    assert words[6] == ("The receiver rejected the invoice.", describe("http-422").next_step)
    assert "member number" in words[6][1]
    assert words[7] == (
        "The connection to this system is not set up correctly.",
        # No notice reported this abort: the practice is asked to tell them (item 5).
        "Please tell your administrator: the connection to this system needs fixing before "
        "it can be sent.",
    )
    assert words[8] == (
        "The medical aid rejected the member number.",
        "Correct it in the patient's file and send again.",
    )
    assert "stopped trying" in words[9][1]  # attempts spent: no promise of more


async def test_plain_words_never_carry_what_the_reason_says(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _world(session)
    for item in (await _items(client, practice_headers)).values():
        for field in ("Explanation", "NextStep"):
            assert "12345" not in item[field]
            assert "Jane" not in item[field]


async def test_filters_and_paging_as_on_the_general_list(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _world(session)
    aborted = await _items(client, practice_headers, "status=Aborted")
    assert sorted(aborted) == [6, 7, 8, 9]
    assert sorted(await _items(client, practice_headers, "cause=config,timeout")) == [7, 9]
    first = await client.get(f"{_route(PRACTICE_A)}?limit=4", headers=practice_headers)
    body = first.json()
    assert body["Total"] == 9
    assert [uuid.UUID(i["InvoiceId"]).int for i in body["Items"]] == [1, 2, 3, 4]
    link = first.headers["link"]
    second = await client.get(link[1 : link.index(">")], headers=practice_headers)
    assert [uuid.UUID(i["InvoiceId"]).int for i in second.json()["Items"]] == [5, 6, 7, 8]


async def test_a_practiceid_parameter_cannot_widen_the_path(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _world(session)
    items = await _items(client, practice_headers, f"practiceId={PRACTICE_B}")
    assert 10 not in items
    assert {i["PracticeId"] for i in items.values()} == {str(PRACTICE_A)}


@pytest.mark.parametrize("practice", [PRACTICE_B, uuid.uuid4()])
async def test_other_practices_are_403(
    client: httpx.AsyncClient,
    session: AsyncSession,
    practice_headers: dict[str, str],
    practice: uuid.UUID,
) -> None:
    await _world(session)
    for query in ("", "?status=Aborted", "?limit=1"):
        response = await client.get(_route(practice) + query, headers=practice_headers)
        assert response.status_code == 403
        assert response.json() == {"Message": "Authorization has been denied for this request."}


async def test_admins_and_the_practices_own_users_may_read(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _world(session)
    assert len(await _items(client, admin_headers)) == 9
    b_user = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B)}"}
    response = await client.get(_route(PRACTICE_B), headers=b_user)
    assert [i["Reason"] for i in response.json()["Items"]] == ["B's"]
    assert (await client.get(_route(PRACTICE_A))).status_code == 401
    assert (
        await client.get("/api/v1/not-a-guid/billing/invoices", headers=admin_headers)
    ).status_code == 400


async def test_path_spelling_is_aspnet_lenient(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _world(session)
    response = await client.get(
        f"/API/V1/{PRACTICE_A}/Billing/Invoices/?Status=Sent", headers=practice_headers
    )
    assert response.status_code == 200
    assert [i["Status"] for i in response.json()["Items"]] == ["Sent"]


async def test_xml_variant_parses(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    await _world(session)
    response = await client.get(
        f"{_route(PRACTICE_A)}?status=Failed", headers={**practice_headers, "Accept": "text/xml"}
    )
    root = ElementTree.fromstring(response.content)
    (item,) = root.findall(f"{SERVICE_NS}Items/{SERVICE_NS}Item")
    assert item.findtext(f"{SERVICE_NS}Explanation") == (
        "The system the invoice is sent to is temporarily unavailable."
    )
    assert item.findtext(f"{SERVICE_NS}NextStep") == (
        "We will try again at 18:36 SAST on 5 February 2026."
    )


async def test_an_overdue_failed_sending_is_promised_an_attempt_shortly(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    # The clock is frozen at NOW; a system that is down keeps its sendings overdue.
    session.add(row(Status.FAILED, next_attempt_at=NOW - timedelta(hours=1)))
    await session.commit()
    items = (await client.get(_route(PRACTICE_A), headers=practice_headers)).json()["Items"]
    assert [i["NextStep"] for i in items] == ["We will try again shortly."]


async def test_invoices_waiting_for_a_held_system_say_why(
    client: httpx.AsyncClient, session: AsyncSession, practice_headers: dict[str, str]
) -> None:
    down_since = NOW - timedelta(hours=1)
    session.add_all(
        [
            System(
                name="MediSwitch",
                channel="Http",
                circuit="Down",
                down_since=down_since,
                consecutive_failures=5,
                created_at=NOW,
                updated_at=NOW,
            ),
            System(
                name="PracticeLedger", channel="Http", enabled=False, created_at=NOW, updated_at=NOW
            ),
            row(Status.PENDING, cause=None, reason=None, invoice_id=uuid.UUID(int=21)),
            row(Status.FAILED, next_attempt_at=NOW, invoice_id=uuid.UUID(int=22)),
            row(Status.ABORTED, cause="http-422", invoice_id=uuid.UUID(int=23)),
            row(
                Status.PENDING,
                system="PracticeLedger",
                cause=None,
                reason=None,
                invoice_id=uuid.UUID(int=24),
            ),
        ]
    )
    await session.commit()
    words = {
        n: (i["Explanation"], i["NextStep"])
        for n, i in (await _items(client, practice_headers)).items()
    }
    down = (
        "MediSwitch has not been answering since 17:06 SAST on 5 February 2026, so the invoice "
        "is waiting; this does not use up its attempts.",
        "Nothing to do: it is sent as soon as MediSwitch answers again.",
    )
    assert words[21] == down
    assert words[22] == down
    assert words[23] == ("The receiver rejected the invoice.", describe("http-422").next_step)
    assert words[24] == (
        "PracticeLedger is switched off for now, so the invoice is waiting.",
        "Nothing to do: it is sent when an administrator switches PracticeLedger on again.",
    )
