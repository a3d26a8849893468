"""Corrections after acceptance: a corrected document for an accepted claim is a reversal
(a Cancellation naming the claim) and then the new claim, in that order, never a second live
claim at the same recipient.  Real receiver, real worker, both engines."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.documents import Document
from invoice_outbox.state import AppState
from tests.conftest import PRACTICE_A
from tests.pipeline_helpers import configure_system, invoice_body, running_worker, submit
from tests.receivers import HttpReceiver, Reply
from tests.webhook_signing import ACK_SECRET, signed_headers

ACK_MODE = {"Mode": "Acknowledgement", "Secret": ACK_SECRET, "Within": 3600}
RESPONSE_MODE = {"Mode": "Response", "CodePointer": "/code", "Accepted": ["00"]}


async def _sendings(
    client: httpx.AsyncClient, headers: dict[str, str], invoice_id: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{invoice_id}", headers=headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["Sendings"])


async def _ack(client: httpx.AsyncClient, clock: FrozenClock, key: str) -> None:
    body = orjson.dumps({"IdempotencyKey": key, "Accepted": True})
    response = await client.post(
        "/api/v1/billing/acknowledgements/MediSwitch",
        content=body,
        headers=signed_headers(ACK_SECRET, body, clock.now()),
    )
    assert response.status_code == 200, response.text


async def test_acknowledged_claim_is_reversed_then_replaced_in_order(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    clock: FrozenClock,
    receiver: HttpReceiver,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url, Acceptance=ACK_MODE)
    body = invoice_body(document={"Lines": [{"Code": "0190", "Amount": "520.00"}]})
    await submit(client, admin_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [original] = await _sendings(client, admin_headers, body["InvoiceId"])
    await _ack(client, clock, original["IdempotencyKey"])

    corrected = {**body, "Document": {"Lines": [{"Code": "0190", "Amount": "480.00"}]}}
    answer = await submit(client, admin_headers, corrected)
    [row] = answer.json()["Data"]
    assert (row["Status"], row["SendingType"]) == ("Pending", "Invoice")
    by_kind = {
        (s["SendingType"], s["Revision"]): s
        for s in await _sendings(client, admin_headers, body["InvoiceId"])
    }
    assert set(by_kind) == {("Invoice", 0), ("Cancellation", 0), ("Invoice", 1)}
    reversal, new_claim = by_kind[("Cancellation", 0)], by_kind[("Invoice", 1)]
    assert by_kind[("Invoice", 0)]["Acceptance"] == "Accepted"  # the record stays
    assert new_claim["WaitsFor"] == reversal["SendingId"]
    assert new_claim["NextAttemptAt"] is None
    # Submitting the same correction again creates nothing more.
    await submit(client, admin_headers, corrected)
    assert len(await _sendings(client, admin_headers, body["InvoiceId"])) == 3

    async with running_worker(state) as worker:
        assert await worker.drain() == 1  # the reversal only: the new claim waits for its verdict
    assert [r.header("X-Sending-Type") for r in receiver.requests] == ["Invoice", "Cancellation"]
    reversal_document = orjson.loads(receiver.requests[1].body)
    assert reversal_document["Reverses"] == original["IdempotencyKey"]
    async with running_worker(state) as worker:
        assert await worker.drain() == 0

    await _ack(client, clock, receiver.requests[1].header("Idempotency-Key") or "")
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    assert [r.header("X-Sending-Type") for r in receiver.requests] == [
        "Invoice",
        "Cancellation",
        "Invoice",
    ]
    assert orjson.loads(receiver.requests[2].body) == corrected["Document"]
    # The reversal and the correction are sealed at rest as every document is.
    async with state.sessions() as session:
        stored = (
            await session.execute(
                select(Document.key_id, Document.nonce, Document.body).where(
                    Document.invoice_id == uuid.UUID(body["InvoiceId"])
                )
            )
        ).all()
    assert len(stored) == 3  # the claim, its reversal, the correction
    for key_id, nonce, sealed in stored:
        assert key_id is not None
        assert nonce is not None
        assert not any(text in sealed for text in (b"Reverses", b"480.00", b"520.00"))
    final = {
        (s["SendingType"], s["Revision"]): s
        for s in await _sendings(client, admin_headers, body["InvoiceId"])
    }
    assert final[("Invoice", 1)]["Status"] == "Sent"
    assert final[("Invoice", 1)]["IdempotencyKey"] != original["IdempotencyKey"]


async def test_response_mode_reversal_accepted_at_once_releases_the_new_claim(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    accepted = Reply(200, {"Content-Type": "application/json"}, b'{"code": "00"}')
    receiver.script(accepted, accepted, accepted)
    await configure_system(
        client, admin_headers, "MediSwitch", receiver.url, Acceptance=RESPONSE_MODE
    )
    body = invoice_body()
    await submit(client, admin_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    await submit(client, admin_headers, {**body, "Document": {"Lines": [{"Code": "0191"}]}})
    async with running_worker(state) as worker:
        assert await worker.drain() == 2
    assert [r.header("X-Sending-Type") for r in receiver.requests] == [
        "Invoice",
        "Cancellation",
        "Invoice",
    ]


async def test_a_transport_system_still_refuses_a_correction_after_delivery(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    await configure_system(client, admin_headers, "Ledger", receiver.url)
    body = invoice_body()
    await submit(client, admin_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    refused = await submit(client, admin_headers, {**body, "Document": {"Other": True}}, expect=409)
    assert "already delivered" in refused.text
