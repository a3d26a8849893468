"""Acceptance in the answer (Response mode): a real receiver answers with a verdict in a JSON
or XML body; the worker records Accepted, Awaiting or Rejected beside the transport status, and
the legacy aborted list shows a rejection as Aborted with a Reason naming it.

Runs on both engines; the clock is frozen.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from invoice_outbox.sendings.models import Sending
from invoice_outbox.state import AppState
from tests.conftest import PRACTICE_A
from tests.pipeline_helpers import configure_system, invoice_body, running_worker, submit
from tests.receivers import HttpReceiver, Reply

PATIENT_WORDS = "Member 8812 (Thandi Mokoena) is not on scheme"
JSON_ACCEPTANCE = {
    "Mode": "Response",
    "Kind": "switch",
    "CodePointer": "/result/code",
    "MessagePointer": "/result/message",
    "ReferencePointer": "/claimRef",
    "Accepted": ["00"],
    "Rejected": ["04", "05"],
    "Pending": ["P1"],
    "Within": 3600,
}
XML_ACCEPTANCE = {
    "Mode": "Response",
    "CodePath": "/ClaimResponse/Status/@code",
    "MessagePath": "/ClaimResponse/Status",
    "ReferencePath": "//Reference",
    "Accepted": ["A"],
}


def _json(status: int, code: str, message: str = "", reference: str = "") -> Reply:
    body = {"result": {"code": code, "message": message}, "claimRef": reference}
    return Reply(status, {"Content-Type": "application/json"}, orjson.dumps(body))


async def _deliver_one(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
    acceptance: dict[str, Any],
    reply: Reply,
) -> dict[str, Any]:
    await configure_system(
        client, admin_headers, "MediSwitch", receiver.url + "claims", Acceptance=acceptance
    )
    receiver.script(reply)
    body = invoice_body()
    await submit(client, admin_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    response = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}", headers=admin_headers
    )
    assert response.status_code == 200, response.text
    [sending] = response.json()["Sendings"]
    sending["InvoiceId"] = body["InvoiceId"]
    return dict(sending)


async def test_json_verdict_accepted_is_sent_and_accepted(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    sending = await _deliver_one(
        client, admin_headers, state, receiver, JSON_ACCEPTANCE, _json(200, "00", "ok", "R-77")
    )
    assert (sending["Status"], sending["Acceptance"], sending["AcceptanceCode"]) == (
        "Sent",
        "Accepted",
        "00",
    )
    assert sending["AcceptanceReference"] == "R-77"
    assert sending["AcceptanceAt"] is not None
    [attempt] = sending["Attempts"]
    assert (attempt["Outcome"], attempt["RecipientCode"], attempt["RecipientMessage"]) == (
        "Sent",
        "00",
        "ok",
    )


async def test_json_verdict_pending_awaits_an_acknowledgement_until_its_deadline(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    sending = await _deliver_one(
        client, admin_headers, state, receiver, JSON_ACCEPTANCE, _json(202, "P1")
    )
    assert (sending["Status"], sending["Acceptance"]) == ("Sent", "Awaiting")
    due = sending["AcceptanceDueAt"]
    assert due is not None
    assert due > sending["SentAt"]


@pytest.mark.parametrize("status", [200, 422])
async def test_json_rejection_is_aborted_with_the_catalogue_words_and_the_raw_words_kept(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reply = _json(status, "04", PATIENT_WORDS + "\x00\x1b[31m", "R-9")
    sending = await _deliver_one(client, admin_headers, state, receiver, JSON_ACCEPTANCE, reply)
    assert (sending["Status"], sending["Acceptance"], sending["AcceptanceCode"]) == (
        "Aborted",
        "Rejected",
        "04",
    )
    assert sending["Reason"] == "MediSwitch rejected the invoice: code 04, Invalid member number"
    assert sending["Cause"] == "code-k-switch-04"
    [attempt] = sending["Attempts"]
    assert (attempt["Outcome"], attempt["Code"], attempt["RecipientCode"]) == (
        "Rejected",
        status,
        "04",
    )
    # The recipient's own words: kept for admins, cleaned of control characters, never logged.
    assert attempt["RecipientMessage"] == PATIENT_WORDS + " [31m"
    assert "Thandi" not in caplog.text
    practice = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{sending['InvoiceId']}", headers=practice_headers
    )
    assert "Thandi" not in practice.text
    assert "RecipientMessage" not in practice.json()["Sendings"][0]["Attempts"][0]
    # Legacy: the aborted list shows it, its Reason naming the rejection.
    rows = (await client.get("/api/v1/billing/invoices/aborted", headers=admin_headers)).json()
    assert [(r["InvoiceId"], r["Status"], r["Reason"]) for r in rows] == [
        (sending["InvoiceId"], "Aborted", sending["Reason"])
    ]
    # The practice view says what to correct, in the catalogue's words.
    view = (
        await client.get(f"/api/v1/{PRACTICE_A}/billing/invoices", headers=practice_headers)
    ).json()
    [item] = view["Items"]
    assert item["MustCorrect"] is True
    assert item["WhoMustAct"] == "practice"
    assert item["Explanation"] == "The medical aid does not know the patient's membership number."
    assert item["NextStep"].startswith("Check the membership number")


async def test_unknown_code_is_shown_as_unknown_with_the_raw_code(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    sending = await _deliver_one(
        client, admin_headers, state, receiver, JSON_ACCEPTANCE, _json(200, "X7")
    )
    assert (sending["Status"], sending["Acceptance"], sending["AcceptanceCode"]) == (
        "Aborted",
        "Rejected",
        "X7",
    )
    assert "code X7" in sending["Reason"]
    assert "does not explain" in sending["Reason"]
    groups = (await client.get("/api/v1/billing/causes", headers=admin_headers)).json()["Groups"]
    [group] = groups
    assert (group["Cause"], group["Known"], group["Label"]) == (
        "code-s-mediswitch-x7",
        False,
        "Unknown rejection code (mediswitch-x7)",
    )


async def test_xml_verdict_by_xpath_ignoring_namespaces(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    body = (
        b'<ClaimResponse xmlns="urn:switch"><Status code="A">Claim accepted</Status>'
        b"<Meta><Reference>SW-1</Reference></Meta></ClaimResponse>"
    )
    reply = Reply(200, {"Content-Type": "application/xml"}, body)
    sending = await _deliver_one(client, admin_headers, state, receiver, XML_ACCEPTANCE, reply)
    assert (sending["Status"], sending["Acceptance"], sending["AcceptanceCode"]) == (
        "Sent",
        "Accepted",
        "A",
    )
    assert sending["AcceptanceReference"] == "SW-1"
    assert sending["Attempts"][0]["RecipientMessage"] == "Claim accepted"


async def test_xml_rejection_and_an_answer_without_a_verdict(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    reply = Reply(
        200,
        {"Content-Type": "text/xml"},
        b'<ClaimResponse><Status code="R12">Refused</Status></ClaimResponse>',
    )
    sending = await _deliver_one(client, admin_headers, state, receiver, XML_ACCEPTANCE, reply)
    assert (sending["Status"], sending["Acceptance"], sending["AcceptanceCode"]) == (
        "Aborted",
        "Rejected",
        "R12",
    )
    receiver.script(Reply(200, {"Content-Type": "text/html"}, b"<html>hello</html>"))
    body = invoice_body()
    await submit(client, admin_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    async with state.sessions() as session:
        row = await session.scalar(
            select(Sending).where(Sending.invoice_id == uuid.UUID(body["InvoiceId"]))
        )
        assert row is not None
        assert (row.status, row.acceptance, row.cause) == ("Aborted", None, "no-verdict")
        assert "no verdict" in (row.reason or "")


async def test_transport_systems_record_no_acceptance(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    await configure_system(client, admin_headers, "Ledger", receiver.url)
    await submit(client, admin_headers, invoice_body())
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    async with state.sessions() as session:
        values = (await session.execute(select(Sending.status, Sending.acceptance))).all()
        assert [tuple(v) for v in values] == [("Sent", None)]
        assert await session.scalar(select(func.count()).select_from(Sending)) == 1


async def test_response_mode_needs_where_the_code_is(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> None:
    response = await client.put(
        "/api/v1/billing/systems/MediSwitch",
        json={"Channel": "Http", "Url": receiver.url, "Acceptance": {"Mode": "Response"}},
        headers=admin_headers,
    )
    assert response.status_code == 400
    assert "CodePointer" in response.json()["Message"]


async def test_acceptance_is_configured_in_xml_too_and_the_secret_never_answered(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> None:
    from tests.webhook_signing import ACK_SECRET

    body = (
        "<System><Channel>Http</Channel><Url>" + receiver.url + "</Url><Practices/>"
        "<Acceptance><Mode>Response</Mode><Secret>" + ACK_SECRET + "</Secret>"
        "<CodePath>/R/@code</CodePath><Accepted><string>A</string><string>AA</string></Accepted>"
        "<Pending><string>P</string></Pending></Acceptance></System>"
    )
    response = await client.put(
        "/api/v1/billing/systems/XmlSwitch",
        content=body,
        headers={**admin_headers, "Content-Type": "application/xml"},
    )
    assert response.status_code == 201, response.text
    view = (await client.get("/api/v1/billing/systems/XmlSwitch", headers=admin_headers)).json()
    acceptance = view["Acceptance"]
    assert (acceptance["Mode"], acceptance["Accepted"], acceptance["Pending"]) == (
        "Response",
        ["A", "AA"],
        ["P"],
    )
    assert acceptance["HasSecret"] is True
    assert ACK_SECRET.removeprefix("whsec_") not in str(view)
