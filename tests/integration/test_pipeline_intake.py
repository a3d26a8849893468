"""Submitting invoices: POST api/v1/{practiceId}/billing/invoices and the invoice detail route.

Runs on both engines.  Systems are configured through the API, on a real loopback receiver,
so that a corrected document can be checked end to end (what the receiver finally gets).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree
from fastapi import FastAPI

from invoice_outbox.auth.principal import Role
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.models import Sending
from invoice_outbox.state import AppState
from tests.conftest import PRACTICE_A, PRACTICE_B, make_token
from tests.pipeline_helpers import (
    ROWS_NS,
    all_sendings,
    configure_system,
    count,
    envelope,
    gated_receiver,
    invoice_body,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver

SERVICE_NS = "http://schemas.datacontract.org/2004/07/InvoiceOutbox.Api"


@pytest.fixture
async def two_systems(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> tuple[str, str]:
    """MediSwitch and Healthbridge, both serving practice A, both on the receiver."""
    await configure_system(client, admin_headers, "MediSwitch", receiver.url + "mediswitch")
    await configure_system(client, admin_headers, "Healthbridge", receiver.url + "healthbridge")
    return "Healthbridge", "MediSwitch"


def _practice_b_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B)}"}


async def test_json_submission_answers_202_envelope_with_one_pending_row_per_system(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
) -> None:
    body = invoice_body()
    response = await submit(client, practice_headers, body)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    result = response.json()
    assert result["Sucess"] is True
    assert result["ResponseCode"] == 202
    rows = result["Data"]
    assert sorted(row["System"] for row in rows) == sorted(two_systems)
    for row in rows:
        assert row["Status"] == "Pending"
        assert row["InvoiceId"] == body["InvoiceId"]
        assert row["EncounterId"] == body["EncounterId"]
        assert row["PracticeId"] == str(PRACTICE_A)
        assert row["SendingType"] == "Invoice"
        assert row["SendingAttempts"] == 0
        assert row["Reason"] is None
    stored = await all_sendings(state, uuid.UUID(body["InvoiceId"]))
    assert sorted(s.system for s in stored) == sorted(two_systems)
    assert {s.status for s in stored} == {"Pending"}


async def test_resubmitting_the_same_document_creates_nothing(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
) -> None:
    body = invoice_body()
    first = (await submit(client, practice_headers, body)).json()["Data"]
    before = (await count(state, Sending), await count(state, Document))
    keys_before = {s.id: s.idempotency_key for s in await all_sendings(state)}

    second = (await submit(client, practice_headers, body)).json()["Data"]

    assert second == first
    assert (await count(state, Sending), await count(state, Document)) == before
    assert {s.id: s.idempotency_key for s in await all_sendings(state)} == keys_before


async def test_corrected_document_replaces_a_pending_one(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    invoice_id, encounter_id = uuid.uuid4(), uuid.uuid4()
    original = invoice_body(invoice_id, encounter_id, document={"Total": "100.00"})
    corrected = invoice_body(invoice_id, encounter_id, document={"Total": "120.00"})
    await submit(client, practice_headers, original)
    [before] = await all_sendings(state, invoice_id)

    rows = (await submit(client, practice_headers, corrected)).json()["Data"]

    assert [row["Status"] for row in rows] == ["Pending"]
    [after] = await all_sendings(state, invoice_id)
    assert after.id == before.id  # replaced, not a second sending
    assert after.idempotency_key != before.idempotency_key
    assert after.document_id != before.document_id
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [request] = receiver.requests
    assert request.body == b'{"Total":"120.00"}'
    assert request.header("Idempotency-Key") == after.idempotency_key


async def test_corrected_document_after_delivery_is_a_409(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    invoice_id, encounter_id = uuid.uuid4(), uuid.uuid4()
    await submit(
        client, practice_headers, invoice_body(invoice_id, encounter_id, document={"v": 1})
    )
    async with running_worker(state) as worker:
        await worker.drain()
    [sent] = await all_sendings(state, invoice_id)
    assert sent.status == "Sent"

    corrected = invoice_body(invoice_id, encounter_id, document={"v": 2})
    response = await submit(client, practice_headers, corrected, expect=409)

    assert "already delivered" in response.json()["Message"]
    [after] = await all_sendings(state, invoice_id)
    assert (after.status, after.document_id, after.idempotency_key) == (
        "Sent",
        sent.document_id,
        sent.idempotency_key,
    )


async def test_corrected_document_while_in_flight_is_a_409(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    state: AppState,
) -> None:
    invoice_id, encounter_id = uuid.uuid4(), uuid.uuid4()
    with gated_receiver() as (receiver, gate):
        await configure_system(client, admin_headers, "MediSwitch", receiver.url)
        await submit(
            client, practice_headers, invoice_body(invoice_id, encounter_id, document={"v": 1})
        )
        async with running_worker(state) as worker:
            delivering = asyncio.create_task(worker.drain())
            await asyncio.to_thread(receiver.wait_for_requests, 1)

            corrected = invoice_body(invoice_id, encounter_id, document={"v": 2})
            response = await submit(client, practice_headers, corrected, expect=409)

            gate.set()
            assert await delivering == 1
    assert "in progress" in response.json()["Message"]
    [sent] = await all_sendings(state, invoice_id)
    assert sent.status == "Sent"
    assert [r.body for r in receiver.requests] == [b'{"v":1}']


async def test_xml_body_is_accepted_and_xml_is_answered(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    invoice_id, encounter_id = uuid.uuid4(), uuid.uuid4()
    xml = (
        f"<Invoice><InvoiceId>{invoice_id}</InvoiceId><EncounterId>{encounter_id}</EncounterId>"
        "<Document><Claim><Total>100.00</Total></Claim></Document>"
        "<Systems><string>MediSwitch</string></Systems></Invoice>"
    )
    response = await client.post(
        f"/api/v1/{PRACTICE_A}/billing/invoices",
        content=xml.encode(),
        headers={
            **practice_headers,
            "Content-Type": "application/xml",
            "Accept": "application/xml",
        },
    )
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    result = envelope(response)
    assert result["Sucess"] is True
    assert result["ResponseCode"] == 202
    assert [(r["System"], r["Status"], r["InvoiceId"]) for r in result["Data"]] == [
        ("MediSwitch", "Pending", str(invoice_id))
    ]
    root = ElementTree.fromstring(response.content)
    assert root.find(f".//{{{ROWS_NS}}}InvoiceSendingStatusVo") is not None
    # The document is kept as given (the one child of <Document>) and delivered as XML.
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [request] = receiver.requests
    assert request.body == b"<Claim><Total>100.00</Total></Claim>"
    assert (request.header("Content-Type") or "").startswith("application/xml")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            '<!DOCTYPE Invoice [<!ENTITY name "Thandi Mokoena">]>'
            "<Invoice><InvoiceId>{invoice}</InvoiceId><EncounterId>{encounter}</EncounterId>"
            "<Document><Claim>&name;</Claim></Document></Invoice>",
            id="internal-entity",
        ),
        pytest.param(
            '<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:9/invoice.dtd">'
            "<Invoice><InvoiceId>{invoice}</InvoiceId><EncounterId>{encounter}</EncounterId>"
            "<Document><Claim>1</Claim></Document></Invoice>",
            id="external-dtd",
        ),
    ],
)
async def test_xml_with_dtd_or_entity_is_refused_and_creates_nothing(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
    payload: str,
) -> None:
    xml = payload.format(invoice=uuid.uuid4(), encounter=uuid.uuid4())
    response = await client.post(
        f"/api/v1/{PRACTICE_A}/billing/invoices",
        content=xml.encode(),
        headers={**practice_headers, "Content-Type": "application/xml"},
    )
    assert response.status_code == 400
    message = response.json()["Message"]
    assert "DTD" in message
    assert "Thandi" not in message
    assert await count(state, Sending) == 0
    assert await count(state, Document) == 0


async def test_malformed_json_is_a_400_in_the_legacy_shape(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
) -> None:
    response = await client.post(
        f"/api/v1/{PRACTICE_A}/billing/invoices",
        content=b'{"InvoiceId": ',
        headers={**practice_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert list(body) == ["Message"]
    assert "JSON" in body["Message"]
    assert await count(state, Sending) == 0


async def test_malformed_json_error_is_xml_when_xml_is_accepted(
    client: httpx.AsyncClient, practice_headers: dict[str, str], two_systems: tuple[str, str]
) -> None:
    response = await client.post(
        f"/api/v1/{PRACTICE_A}/billing/invoices",
        content=b"not json",
        headers={**practice_headers, "Content-Type": "application/json", "Accept": "text/xml"},
    )
    assert response.status_code == 400
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Error"
    assert "JSON" in (root.findtext("Message") or "")


async def test_an_empty_systems_list_is_refused(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
) -> None:
    body = invoice_body(systems=[])
    response = await submit(client, practice_headers, body, expect=None)
    # Either refuse it (400) or read it as "the practice's systems"; never accept nothing.
    if response.status_code == 202:
        assert len(response.json()["Data"]) == len(two_systems)
    else:
        assert response.status_code == 400
        assert await count(state, Sending) == 0


async def test_unknown_system_is_a_409_naming_it(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
) -> None:
    body = invoice_body(systems=["MediSwitch", "NoSuchSwitch"])
    # A sound request the configuration refuses (now): a conflict, as the intake's others.
    response = await submit(client, practice_headers, body, expect=409)
    assert "NoSuchSwitch" in response.json()["Message"]
    assert await count(state, Sending) == 0  # all or nothing: not even MediSwitch's


async def test_no_systems_configured_is_a_409(
    client: httpx.AsyncClient, practice_headers: dict[str, str], state: AppState
) -> None:
    response = await submit(client, practice_headers, invoice_body(), expect=409)
    message = response.json()["Message"]
    assert "no systems are configured" in message
    assert str(PRACTICE_A) in message
    assert await count(state, Sending) == 0


async def test_system_of_another_practice_is_a_409(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(
        client, admin_headers, "OtherSwitch", receiver.url, practices=[PRACTICE_B]
    )
    response = await submit(
        client, practice_headers, invoice_body(systems=["OtherSwitch"]), expect=409
    )
    assert "OtherSwitch" in response.json()["Message"]
    assert await count(state, Sending) == 0


async def test_practice_b_user_cannot_submit_for_practice_a(
    client: httpx.AsyncClient, two_systems: tuple[str, str], state: AppState
) -> None:
    response = await submit(client, _practice_b_headers(), invoice_body(), expect=403)
    assert response.json() == {"Message": "Authorization has been denied for this request."}
    assert await count(state, Sending) == 0


async def test_unauthenticated_submission_is_a_401(
    client: httpx.AsyncClient, two_systems: tuple[str, str], state: AppState
) -> None:
    response = await submit(client, {}, invoice_body(), expect=401)
    assert response.json() == {"Message": "Authorization has been denied for this request."}
    assert await count(state, Sending) == 0


async def test_invoice_id_of_another_practice_is_a_409(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(
        client, admin_headers, "MediSwitch", receiver.url, practices=[PRACTICE_A, PRACTICE_B]
    )
    body = invoice_body(document={"Practice": "B"})
    await submit(client, _practice_b_headers(), body, practice=PRACTICE_B)
    [theirs] = await all_sendings(state)

    response = await submit(
        client, practice_headers, {**body, "Document": {"Practice": "A"}}, expect=409
    )

    assert "another practice" in response.json()["Message"]
    [still] = await all_sendings(state)
    assert (still.id, still.practice_id, still.document_id, still.idempotency_key) == (
        theirs.id,
        PRACTICE_B,
        theirs.document_id,
        theirs.idempotency_key,
    )


async def test_concurrent_identical_submissions_are_idempotent(
    app: FastAPI,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
) -> None:
    """A client that retries while its first POST is still running (a timeout, a double
    click) must get the same answer twice, as for a sequential resubmission."""
    # Answer the 500 a real client would see instead of re-raising the app's exception.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for _ in range(5):
            body = invoice_body()
            answers = await asyncio.gather(
                *(submit(http, practice_headers, body, expect=None) for _ in range(2))
            )
            codes = sorted(a.status_code for a in answers)
            # Both 202 with the same rows, or (acceptable) one 409 "in progress, try again".
            assert codes in ([202, 202], [202, 409]), [a.text for a in answers]
            rows = [a.json()["Data"] for a in answers if a.status_code == 202]
            assert all(r == rows[0] for r in rows)
    assert await count(state, Sending) == 5 * len(two_systems)


async def test_same_invoice_for_another_encounter_is_a_409(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    two_systems: tuple[str, str],
    state: AppState,
) -> None:
    body = invoice_body()
    await submit(client, practice_headers, body)
    other = {**body, "EncounterId": str(uuid.uuid4())}
    await submit(client, practice_headers, other, expect=409)
    assert {str(s.encounter_id) for s in await all_sendings(state)} == {body["EncounterId"]}


async def test_invoice_detail_lists_sendings(
    client: httpx.AsyncClient, practice_headers: dict[str, str], two_systems: tuple[str, str]
) -> None:
    body = invoice_body()
    await submit(client, practice_headers, body)
    response = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}", headers=practice_headers
    )
    assert response.status_code == 200
    detail: dict[str, Any] = response.json()
    assert detail["InvoiceId"] == body["InvoiceId"]
    assert detail["EncounterId"] == body["EncounterId"]
    assert sorted(s["System"] for s in detail["Sendings"]) == sorted(two_systems)
    for sending in detail["Sendings"]:
        assert sending["Status"] == "Pending"
        assert sending["Attempts"] == []


async def test_invoice_detail_is_404_for_an_unknown_invoice(
    client: httpx.AsyncClient, practice_headers: dict[str, str], two_systems: tuple[str, str]
) -> None:
    unknown = uuid.uuid4()
    response = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{unknown}", headers=practice_headers
    )
    assert response.status_code == 404
    assert str(unknown) in response.json()["Message"]


async def test_invoice_detail_is_404_under_another_practice(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    two_systems: tuple[str, str],
) -> None:
    body = invoice_body()
    await submit(client, practice_headers, body)
    # Practice A's invoice looked up under practice B (by an admin, who may read both).
    response = await client.get(
        f"/api/v1/{PRACTICE_B}/billing/invoices/{body['InvoiceId']}", headers=admin_headers
    )
    assert response.status_code == 404


async def test_practice_b_user_reading_practice_a_invoice_is_403(
    client: httpx.AsyncClient, practice_headers: dict[str, str], two_systems: tuple[str, str]
) -> None:
    body = invoice_body(document={"Patient": "Thandi Mokoena"})
    await submit(client, practice_headers, body)
    response = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}", headers=_practice_b_headers()
    )
    assert response.status_code == 403
    assert response.json() == {"Message": "Authorization has been denied for this request."}
    assert b"Thandi" not in response.content
