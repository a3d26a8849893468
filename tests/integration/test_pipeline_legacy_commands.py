"""The legacy commands end to end: POST retryallfailed and POST .../{invoiceId}/cancel.

Sendings reach Failed, Aborted and Sent the real way (a worker delivering to a receiver), then
the commands act on them and a later drain shows what the receiver gets.  Both engines.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from invoice_outbox.auth.principal import Role
from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.models import Sending
from invoice_outbox.state import AppState
from tests.conftest import PRACTICE_A, PRACTICE_B, make_token
from tests.pipeline_helpers import (
    all_sendings,
    attempts_of,
    configure_system,
    envelope,
    gated_receiver,
    invoice_body,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver, ReceivedRequest, Reply
from tests.webhook_signing import ACK_SECRET

RETRY_ALL = "/api/v1/billing/invoices/retryallfailed"


@pytest.fixture
async def system(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> str:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    return "MediSwitch"


def _cancel_url(invoice_id: object, practice: object = PRACTICE_A) -> str:
    return f"/api/v1/{practice}/billing/invoices/{invoice_id}/cancel"


def _by_invoice(answers: dict[str, Reply]) -> Any:
    """Answer by the X-Invoice-Id header (deliveries run concurrently: order is not fixed)."""

    def answer(request: ReceivedRequest) -> Reply:
        return answers.get(request.header("X-Invoice-Id") or "", Reply(200))

    return answer


async def _failed_and_aborted(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> tuple[str, str, str]:
    """Three invoices delivered once: one Failed (503), one Aborted (422), one Sent."""
    failing, rejected, fine = invoice_body(), invoice_body(), invoice_body()
    receiver.respond_with(
        _by_invoice({failing["InvoiceId"]: Reply(503), rejected["InvoiceId"]: Reply(422)})
    )
    for body in (failing, rejected, fine):
        await submit(client, headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 3
    statuses = {str(s.invoice_id): s.status for s in await all_sendings(state)}
    assert statuses == {
        failing["InvoiceId"]: "Failed",
        rejected["InvoiceId"]: "Aborted",
        fine["InvoiceId"]: "Sent",
    }
    return failing["InvoiceId"], rejected["InvoiceId"], fine["InvoiceId"]


@pytest.mark.parametrize("accept", ["application/json", "application/xml"])
async def test_retryallfailed_requeues_failed_and_aborted_and_a_drain_delivers_them(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    accept: str,
) -> None:
    failing, rejected, fine = await _failed_and_aborted(client, practice_headers, receiver, state)
    receiver.respond_with(Reply(200))  # the receiver is fixed

    response = await client.post(RETRY_ALL, headers={**admin_headers, "Accept": accept})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"{accept}; charset=utf-8"
    result = envelope(response)
    assert result["Sucess"] is True
    assert result["ResponseCode"] == 200
    rows = result["Data"]
    assert sorted((r["InvoiceId"], r["Status"]) for r in rows) == sorted(
        [(failing, "Pending"), (rejected, "Pending")]
    )
    assert {r["System"] for r in rows} == {system}
    assert {int(r["SendingAttempts"]) for r in rows} == {1}
    statuses = {str(s.invoice_id): s.status for s in await all_sendings(state)}
    assert statuses == {failing: "Pending", rejected: "Pending", fine: "Sent"}

    async with running_worker(state) as worker:
        assert await worker.drain() == 2
    statuses = {str(s.invoice_id): s.status for s in await all_sendings(state)}
    assert statuses == {failing: "Sent", rejected: "Sent", fine: "Sent"}
    delivered = [r.header("X-Invoice-Id") or "" for r in receiver.requests[3:]]
    assert sorted(delivered) == sorted([failing, rejected])
    # The requeued sendings keep their idempotency keys: a receiver can drop repeats.
    first_keys = {
        r.header("X-Invoice-Id"): r.header("Idempotency-Key") for r in receiver.requests[:3]
    }
    for request in receiver.requests[3:]:
        assert request.header("Idempotency-Key") == first_keys[request.header("X-Invoice-Id")]


async def test_retryallfailed_with_nothing_failed_answers_an_empty_list(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(RETRY_ALL, headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["Data"] == []
    assert response.json()["Sucess"] is True


async def test_retryallfailed_is_for_admins_only(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
) -> None:
    await _failed_and_aborted(client, practice_headers, receiver, state)
    response = await client.post(RETRY_ALL, headers=practice_headers)
    assert response.status_code == 403
    assert response.json() == {"Message": "Authorization has been denied for this request."}
    assert sorted(s.status for s in await all_sendings(state)) == ["Aborted", "Failed", "Sent"]


async def test_retried_sending_gets_a_fresh_attempt_budget(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    clock: FrozenClock,
) -> None:
    await configure_system(
        client,
        admin_headers,
        "MediSwitch",
        receiver.url,
        RetryPolicy={"Schedule": ["0s", "5s"], "MaxAttempts": 2},
    )
    receiver.respond_with(Reply(503))
    await submit(client, practice_headers, invoice_body())
    async with running_worker(state) as worker:
        await worker.drain()
        clock.advance(timedelta(seconds=10))
        await worker.drain()
        [sending] = await all_sendings(state)
        assert (sending.status, sending.attempts) == ("Aborted", 2)

        await client.post(RETRY_ALL, headers=admin_headers)
        assert await worker.drain() == 1
        [sending] = await all_sendings(state)
        # Attempt 3 failed, but this round has a budget of 2 again: Failed, not Aborted.
        assert (sending.status, sending.attempts) == ("Failed", 3)


async def test_cancel_stops_pending_sendings(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url + "a")
    await configure_system(client, admin_headers, "Healthbridge", receiver.url + "b")
    body = invoice_body()
    await submit(client, practice_headers, body)

    response = await client.post(_cancel_url(body["InvoiceId"]), headers=practice_headers)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["Sucess"], result["ResponseCode"], result["Data"]) == (
        True,
        200,
        body["InvoiceId"],
    )
    assert {s.status for s in await all_sendings(state)} == {"Cancelled"}
    async with running_worker(state) as worker:
        assert await worker.drain() == 0
    assert receiver.requests == []
    detail = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}", headers=practice_headers
    )
    assert {s["Status"] for s in detail.json()["Sendings"]} == {"Cancelled"}


async def test_cancel_stops_failed_and_aborted_sendings(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    failing, rejected, _ = await _failed_and_aborted(client, practice_headers, receiver, state)
    receiver.respond_with(Reply(200))
    for invoice_id in (failing, rejected):
        response = await client.post(_cancel_url(invoice_id), headers=admin_headers)
        assert response.status_code == 200, response.text
    clock.advance(timedelta(minutes=1))
    async with running_worker(state) as worker:
        assert await worker.drain() == 0
    assert len(receiver.requests) == 3
    # Cancelled sendings are not "failed" any more: retry-all leaves them alone.
    retried = await client.post(RETRY_ALL, headers=admin_headers)
    assert retried.json()["Data"] == []
    statuses = {str(s.invoice_id): s.status for s in await all_sendings(state)}
    assert statuses[failing] == statuses[rejected] == "Cancelled"


async def test_cancelling_a_sent_invoice_delivers_one_cancellation(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
) -> None:
    body = invoice_body()
    await submit(client, practice_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1

        first = await client.post(_cancel_url(body["InvoiceId"]), headers=practice_headers)
        second = await client.post(_cancel_url(body["InvoiceId"]), headers=practice_headers)
        assert first.status_code == second.status_code == 200
        assert first.json()["Data"] == second.json()["Data"] == body["InvoiceId"]

        assert await worker.drain() == 1
        third = await client.post(_cancel_url(body["InvoiceId"]), headers=practice_headers)
        assert third.status_code == 200
        assert await worker.drain() == 0

    invoice, cancellation = receiver.requests
    assert invoice.header("X-Sending-Type") == "Invoice"
    assert cancellation.header("X-Sending-Type") == "Cancellation"
    assert cancellation.header("X-Invoice-Id") == body["InvoiceId"]
    assert cancellation.header("Idempotency-Key") != invoice.header("Idempotency-Key")
    sent = orjson.loads(cancellation.body)
    assert sent == {
        "InvoiceId": body["InvoiceId"],
        "EncounterId": body["EncounterId"],
        "PracticeId": str(PRACTICE_A),
        "Cancelled": True,
    }
    sendings = {s.sending_type: s for s in await all_sendings(state)}
    assert set(sendings) == {"Invoice", "Cancellation"}
    assert sendings["Invoice"].status == "Sent"  # it was delivered; that stays true
    assert sendings["Cancellation"].status == "Sent"
    detail = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}", headers=practice_headers
    )
    assert sorted((s["SendingType"], s["Status"]) for s in detail.json()["Sendings"]) == [
        ("Cancellation", "Sent"),
        ("Invoice", "Sent"),
    ]


@pytest.mark.parametrize(
    "acceptance",
    [None, {"Mode": "Acknowledgement", "Secret": ACK_SECRET, "Within": 3600}],
    ids=["transport", "acknowledgement"],
)
async def test_cancel_while_in_flight_then_delivered_queues_a_cancellation(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    state: AppState,
    acceptance: dict[str, Any] | None,
) -> None:
    """Also for a system that tells acceptance (its delivered outcome carries a verdict)."""
    body = invoice_body()
    settings: dict[str, Any] = {} if acceptance is None else {"Acceptance": acceptance}
    with gated_receiver() as (receiver, gate):
        await configure_system(client, admin_headers, "MediSwitch", receiver.url, **settings)
        await submit(client, practice_headers, body)
        async with running_worker(state) as worker:
            delivering = asyncio.create_task(worker.drain())
            await asyncio.to_thread(receiver.wait_for_requests, 1)  # the invoice is in flight

            response = await client.post(_cancel_url(body["InvoiceId"]), headers=practice_headers)
            assert response.status_code == 200, response.text
            [in_flight] = await all_sendings(state)
            assert in_flight.status == "Cancelled"

            gate.set()  # ... and the receiver accepts the invoice after all
            assert await delivering == 2  # the invoice, then the cancellation
        requests = receiver.requests
    assert [r.header("X-Sending-Type") for r in requests] == ["Invoice", "Cancellation"]
    sendings = {s.sending_type: s for s in await all_sendings(state)}
    assert sendings["Invoice"].status == "Cancelled"
    assert sendings["Invoice"].lease_owner is None
    assert [(a.number, a.outcome) for a in await attempts_of(state, sendings["Invoice"].id)] == [
        (1, "Sent")
    ]
    assert sendings["Cancellation"].status == "Sent"


async def test_cancellation_of_an_xml_invoice_is_xml(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
) -> None:
    invoice_id, encounter_id = uuid.uuid4(), uuid.uuid4()
    xml = (
        f"<Invoice><InvoiceId>{invoice_id}</InvoiceId><EncounterId>{encounter_id}</EncounterId>"
        "<Document><Claim>1</Claim></Document></Invoice>"
    )
    response = await client.post(
        f"/api/v1/{PRACTICE_A}/billing/invoices",
        content=xml.encode(),
        headers={**practice_headers, "Content-Type": "application/xml"},
    )
    assert response.status_code == 202, response.text
    async with running_worker(state) as worker:
        await worker.drain()
        await client.post(_cancel_url(invoice_id), headers=practice_headers)
        await worker.drain()
    _, cancellation = receiver.requests
    assert (cancellation.header("Content-Type") or "").startswith("application/xml")
    assert (
        cancellation.body
        == (
            f"<InvoiceCancellation><InvoiceId>{invoice_id}</InvoiceId><EncounterId>{encounter_id}"
            f"</EncounterId><PracticeId>{PRACTICE_A}</PracticeId></InvoiceCancellation>"
        ).encode()
    )


async def test_cancel_in_xml_answers_the_guid_envelope(
    client: httpx.AsyncClient, practice_headers: dict[str, str], system: str
) -> None:
    body = invoice_body()
    await submit(client, practice_headers, body)
    response = await client.post(
        _cancel_url(body["InvoiceId"]), headers={**practice_headers, "Accept": "text/xml"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    result = envelope(response)
    assert result["Sucess"] is True
    assert result["Data"] == body["InvoiceId"]
    assert response.content.startswith(b"<RestApiResultOfguid ")


async def test_cancel_unknown_invoice_is_404(
    client: httpx.AsyncClient, practice_headers: dict[str, str], system: str
) -> None:
    unknown = uuid.uuid4()
    response = await client.post(_cancel_url(unknown), headers=practice_headers)
    assert response.status_code == 404
    body = response.json()
    assert list(body) == ["Message"]
    assert str(unknown) in body["Message"]


async def test_cancel_under_another_practice_is_404_and_changes_nothing(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    system: str,
    state: AppState,
) -> None:
    body = invoice_body()
    await submit(client, practice_headers, body)
    response = await client.post(_cancel_url(body["InvoiceId"], PRACTICE_B), headers=admin_headers)
    assert response.status_code == 404
    assert {s.status for s in await all_sendings(state)} == {"Pending"}


async def test_cancel_by_a_practice_b_user_is_403(
    client: httpx.AsyncClient, practice_headers: dict[str, str], system: str, state: AppState
) -> None:
    body = invoice_body()
    await submit(client, practice_headers, body)
    practice_b = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B)}"}
    response = await client.post(_cancel_url(body["InvoiceId"]), headers=practice_b)
    assert response.status_code == 403
    assert response.json() == {"Message": "Authorization has been denied for this request."}
    assert {s.status for s in await all_sendings(state)} == {"Pending"}


@pytest.mark.parametrize(
    ("practice", "invoice", "parameter"),
    [
        (str(PRACTICE_A), "not-a-guid", "invoiceId"),
        ("not-a-guid", str(uuid.UUID(int=7)), "practiceid"),
    ],
)
async def test_cancel_with_a_bad_guid_is_400_naming_the_parameter(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice: str,
    invoice: str,
    parameter: str,
) -> None:
    response = await client.post(_cancel_url(invoice, practice), headers=admin_headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert list(body) == ["Message"]
    assert parameter in body["Message"]
    xml = await client.post(
        _cancel_url(invoice, practice), headers={**admin_headers, "Accept": "application/xml"}
    )
    assert xml.status_code == 400
    assert xml.content.startswith(b"<Error><Message>")
    assert parameter.encode() in xml.content


async def test_cancel_route_is_case_insensitive(
    client: httpx.AsyncClient, practice_headers: dict[str, str], system: str, state: AppState
) -> None:
    body = invoice_body()
    await submit(client, practice_headers, body)
    url = f"/API/V1/{PRACTICE_A}/Billing/Invoices/{body['InvoiceId']}/Cancel/"
    response = await client.post(url, headers=practice_headers)
    assert response.status_code == 200, response.text
    async with state.sessions() as session:
        statuses = (await session.scalars(select(Sending.status))).all()
    assert set(statuses) == {"Cancelled"}
