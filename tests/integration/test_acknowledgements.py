"""Acknowledgements: a recipient tells its verdict later, signed (Standard Webhooks).

A real receiver takes the delivery; the test then acts as the recipient and calls
``POST api/v1/billing/acknowledgements/{system}`` signed with an independent hmac
implementation (tests/webhook_signing.py).  Overdue verdicts come from moving the clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from invoice_outbox.admin.acceptance_loop import check_acceptance
from invoice_outbox.clock import FrozenClock
from invoice_outbox.state import AppState
from tests.conftest import PRACTICE_A
from tests.pipeline_helpers import (
    configure_system,
    invoice_body,
    long_lived_headers,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver
from tests.webhook_signing import ACK_SECRET, new_secret, signed_headers

ACK_MODE = {"Mode": "Acknowledgement", "Secret": ACK_SECRET, "Within": 3600, "Kind": "switch"}
ROUTE = "/api/v1/billing/acknowledgements/MediSwitch"


async def _detail(client: httpx.AsyncClient, invoice_id: str) -> dict[str, Any]:
    from invoice_outbox.auth.principal import Role

    response = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{invoice_id}",
        headers=long_lived_headers(Role.ADMIN),
    )
    assert response.status_code == 200, response.text
    [sending] = response.json()["Sendings"]
    return dict(sending)


@pytest.fixture
async def delivered(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> dict[str, Any]:
    """An invoice delivered to an Acknowledgement-mode system: Sent, Awaiting."""
    await configure_system(
        client, admin_headers, "MediSwitch", receiver.url + "claims", Acceptance=ACK_MODE
    )
    body = invoice_body()
    await submit(client, admin_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    sending = await _detail(client, body["InvoiceId"])
    assert (sending["Status"], sending["Acceptance"]) == ("Sent", "Awaiting")
    [request] = receiver.requests
    assert request.header("Idempotency-Key") == sending["IdempotencyKey"]
    sending["InvoiceId"] = body["InvoiceId"]
    return sending


async def _ack(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    body: dict[str, Any],
    *,
    secret: str = ACK_SECRET,
    headers: dict[str, str] | None = None,
    route: str = ROUTE,
) -> httpx.Response:
    raw = orjson.dumps(body)
    return await client.post(
        route, content=raw, headers=headers or signed_headers(secret, raw, clock.now())
    )


async def test_accepted_acknowledgement_is_applied_once_and_repeats_change_nothing(
    client: httpx.AsyncClient, clock: FrozenClock, delivered: dict[str, Any]
) -> None:
    body = {
        "IdempotencyKey": delivered["IdempotencyKey"],
        "Accepted": True,
        "Code": "00",
        "Reference": "SW-1",
    }
    response = await _ack(client, clock, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"Applied": True, "Acceptance": "Accepted", "Repeat": False}
    sending = await _detail(client, delivered["InvoiceId"])
    assert (sending["Status"], sending["Acceptance"], sending["AcceptanceCode"]) == (
        "Sent",
        "Accepted",
        "00",
    )
    assert sending["AcceptanceReference"] == "SW-1"
    # The same verdict again (a new message): idempotent.
    again = await _ack(client, clock, body)
    assert again.status_code == 200
    assert again.json() == {"Applied": False, "Acceptance": "Accepted", "Repeat": True}
    # A later contradicting verdict is recorded, not applied.
    contrary = await _ack(client, clock, {**body, "Accepted": False, "Code": "04"})
    assert contrary.status_code == 409, contrary.text
    assert "contradicts" in contrary.json()["Message"]
    sending = await _detail(client, delivered["InvoiceId"])
    assert (sending["Status"], sending["Acceptance"]) == ("Sent", "Accepted")
    assert [(a["Accepted"], a["Applied"], a["Code"]) for a in sending["Acknowledgements"]] == [
        (True, True, "00"),
        (True, False, "00"),
        (False, False, "04"),
    ]
    assert "contradicts" in sending["Acknowledgements"][2]["Note"]


async def test_rejection_aborts_with_the_catalogue_words_and_lists_as_aborted(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    clock: FrozenClock,
    delivered: dict[str, Any],
) -> None:
    body = {
        "IdempotencyKey": delivered["IdempotencyKey"],
        "Accepted": False,
        "Code": "04",
        "Message": "member 123 (Jane Doe) unknown",
    }
    response = await _ack(client, clock, body)
    assert response.status_code == 200, response.text
    sending = await _detail(client, delivered["InvoiceId"])
    assert (sending["Status"], sending["Acceptance"], sending["AcceptanceCode"]) == (
        "Aborted",
        "Rejected",
        "04",
    )
    assert sending["Reason"] == "MediSwitch rejected the invoice: code 04, Invalid member number"
    assert "Jane" not in sending["Reason"]
    assert sending["Acknowledgements"][0]["Message"] == "member 123 (Jane Doe) unknown"
    rows = (await client.get("/api/v1/billing/invoices/aborted", headers=admin_headers)).json()
    assert [(r["InvoiceId"], r["Status"]) for r in rows] == [(delivered["InvoiceId"], "Aborted")]
    groups = (await client.get("/api/v1/billing/causes", headers=admin_headers)).json()["Groups"]
    [group] = groups
    assert (group["Cause"], group["Label"], group["WhoMustAct"], group["ResendAll"]) == (
        "code-k-switch-04",
        "Invalid member number",
        "practice",
        False,
    )


async def test_bad_signature_stale_timestamp_replay_and_unknown_key(
    client: httpx.AsyncClient, clock: FrozenClock, delivered: dict[str, Any]
) -> None:
    body = {"IdempotencyKey": delivered["IdempotencyKey"], "Accepted": True}
    wrong = await _ack(client, clock, body, secret=new_secret())
    assert wrong.status_code == 401
    assert wrong.json() == {"Message": "The webhook-signature does not verify."}
    unsigned = await client.post(ROUTE, content=orjson.dumps(body))
    assert unsigned.status_code == 401
    raw = orjson.dumps(body)
    stale = signed_headers(ACK_SECRET, raw, clock.now() - timedelta(minutes=6))
    old = await _ack(client, clock, body, headers=stale)
    assert old.status_code == 401
    assert "webhook-timestamp" in old.json()["Message"]
    tampered = signed_headers(ACK_SECRET, raw, clock.now())
    changed = await client.post(
        ROUTE, content=orjson.dumps({**body, "Accepted": False}), headers=tampered
    )
    assert changed.status_code == 401
    # Nothing of the above changed the sending.
    assert (await _detail(client, delivered["InvoiceId"]))["Acceptance"] == "Awaiting"

    unknown = await _ack(client, clock, {"IdempotencyKey": "f" * 32, "Accepted": True})
    assert unknown.status_code == 404
    assert unknown.json() == {"Message": "No sending matches this acknowledgement."}
    other_system = await _ack(client, clock, body, route="/api/v1/billing/acknowledgements/Nope")
    assert other_system.status_code == 401

    headers = signed_headers(ACK_SECRET, raw, clock.now())
    first = await client.post(ROUTE, content=raw, headers=headers)
    assert first.status_code == 200, first.text
    replay = await client.post(ROUTE, content=raw, headers=headers)
    assert replay.status_code == 409
    assert "already received" in replay.json()["Message"]
    sending = await _detail(client, delivered["InvoiceId"])
    assert len(sending["Acknowledgements"]) == 1


async def test_no_acknowledgement_by_the_deadline_is_overdue_and_a_late_one_still_counts(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    clock: FrozenClock,
    state: AppState,
    delivered: dict[str, Any],
) -> None:
    clock.advance(timedelta(minutes=59))
    assert await check_acceptance(state) == 0
    assert (await _detail(client, delivered["InvoiceId"]))["Acceptance"] == "Awaiting"
    clock.advance(timedelta(minutes=2))
    assert await check_acceptance(state) == 1
    assert await check_acceptance(state) == 0
    sending = await _detail(client, delivered["InvoiceId"])
    assert (sending["Status"], sending["Acceptance"]) == ("Sent", "Overdue")
    late = await _ack(
        client, clock, {"IdempotencyKey": delivered["IdempotencyKey"], "Accepted": True}
    )
    assert late.status_code == 200, late.text
    assert (await _detail(client, delivered["InvoiceId"]))["Acceptance"] == "Accepted"


async def test_acknowledgement_by_the_recipients_reference(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    clock: FrozenClock,
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    from tests.receivers import Reply

    acceptance = {
        "Mode": "Response",
        "Secret": ACK_SECRET,
        "CodePointer": "/status",
        "ReferencePointer": "/ref",
        "Accepted": ["OK"],
        "Pending": ["QUEUED"],
    }
    await configure_system(client, admin_headers, "MediSwitch", receiver.url, Acceptance=acceptance)
    receiver.script(
        Reply(202, {"Content-Type": "application/json"}, b'{"status":"QUEUED","ref":"Q-5"}')
    )
    body = invoice_body()
    await submit(client, admin_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    assert (await _detail(client, body["InvoiceId"]))["Acceptance"] == "Awaiting"
    response = await _ack(client, clock, {"Reference": "Q-5", "Accepted": False, "Code": "99"})
    assert response.status_code == 200, response.text
    sending = await _detail(client, body["InvoiceId"])
    assert (sending["Status"], sending["Acceptance"], sending["AcceptanceCode"]) == (
        "Aborted",
        "Rejected",
        "99",
    )
    assert "code 99" in sending["Reason"]


async def test_overdue_and_rejected_join_the_admins_notice_and_the_overview(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    state: AppState,
    receiver: HttpReceiver,
    delivered: dict[str, Any],
) -> None:
    from invoice_outbox.admin.notifications import build_summary
    from invoice_outbox.admin.notify_message import render_text
    from invoice_outbox.web import overview_data

    start = clock.now()
    body = invoice_body()
    await submit(client, long_lived(), body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    second = await _detail(client, body["InvoiceId"])
    rejected = await _ack(
        client,
        clock,
        {"IdempotencyKey": second["IdempotencyKey"], "Accepted": False, "Code": "04"},
    )
    assert rejected.status_code == 200, rejected.text
    clock.advance(timedelta(hours=1, minutes=1))
    assert await check_acceptance(state) == 1  # the first one; the second was rejected
    async with state.engine.connect() as connection:
        summary = await build_summary(connection, since=start, until=clock.now())
        verdicts = await overview_data.acceptance_counts(connection)
    assert (summary.aborted_count, summary.overdue_count) == (1, 1)
    text = render_text(summary, state.settings)
    assert "Rejected by the recipient" in text
    assert "Invalid member number at MediSwitch: 1" in text
    assert "no acknowledgement by the deadline:\n  MediSwitch: 1" in text
    assert "1 still without the recipient's verdict past its deadline" in text
    assert verdicts == {"Awaiting": 0, "Accepted": 0, "Rejected": 1, "Overdue": 1}


def long_lived() -> dict[str, str]:
    from invoice_outbox.auth.principal import Role

    return long_lived_headers(Role.ADMIN)
