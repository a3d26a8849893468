"""Delivery end to end: API intake → Worker.drain() → a real HTTP receiver → status routes.

Runs on both engines.  The clock is frozen; retries come due only when the test moves it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from invoice_outbox.auth.principal import Role
from invoice_outbox.clock import FrozenClock
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.systems.retry import DEFAULT_SCHEDULE
from tests.conftest import PRACTICE_A, PRACTICE_B
from tests.pipeline_helpers import (
    all_sendings,
    attempts_of,
    configure_system,
    invoice_body,
    long_lived_headers,
    pipeline_settings,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver, Reply

PATIENT = "Thandi Mokoena"
DOCUMENT = {"Patient": PATIENT, "Lines": [{"Tariff": "0190", "Amount": "520.00"}]}
JOHANNESBURG = ZoneInfo("Africa/Johannesburg")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A high threshold keeps the circuit out of the retry-schedule tests (see test_pipeline_outage).
    return pipeline_settings(database_url, tmp_path, circuit_failure_threshold=100)


@pytest.fixture
async def system(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> str:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url + "invoices")
    return "MediSwitch"


async def _detail(
    client: httpx.AsyncClient, headers: dict[str, str], invoice_id: str
) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{invoice_id}", headers=headers
    )
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail


async def _list(client: httpx.AsyncClient, headers: dict[str, str], route: str) -> list[Any]:
    response = await client.get(f"/api/v1/billing/invoices/{route}", headers=headers)
    assert response.status_code == 200, response.text
    rows: list[Any] = response.json()
    return rows


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_submitted_invoice_is_delivered_and_listed_as_sent(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    # 22:30 UTC is 00:30 the next day in Johannesburg: the calendar day must be the local one.
    clock.advance(timedelta(hours=6, minutes=24))
    now = clock.now()
    assert (now.date().isoformat(), now.astimezone(JOHANNESBURG).date().isoformat()) == (
        "2026-02-05",
        "2026-02-06",
    )
    body = invoice_body(document=DOCUMENT)
    await submit(client, practice_headers, body)

    async with running_worker(state) as worker:
        assert await worker.drain() == 1
        assert await worker.drain() == 0  # nothing is delivered twice

    [request] = receiver.requests
    assert request.method == "POST"
    assert request.target == "/invoices"
    assert request.body == orjson.dumps(DOCUMENT)
    assert request.header("Content-Type") == "application/json; charset=utf-8"
    assert request.header("X-Invoice-Id") == body["InvoiceId"]
    assert request.header("X-Sending-Type") == "Invoice"
    assert request.header("X-Attempt") == "1"
    detail = await _detail(client, practice_headers, body["InvoiceId"])
    [sending] = detail["Sendings"]
    assert request.header("Idempotency-Key") == sending["IdempotencyKey"]
    assert sending["Status"] == "Sent"
    assert sending["SendingAttempts"] == 1
    assert sending["Reason"] is None
    assert _parse(sending["SentAt"]) == now.replace(microsecond=0)
    [attempt] = sending["Attempts"]
    assert (attempt["Number"], attempt["Outcome"], attempt["Code"], attempt["Reason"]) == (
        1,
        "Sent",
        200,
        None,
    )
    assert attempt["Worker"] == "worker-1"

    local_day = now.astimezone(JOHANNESBURG).date().isoformat()
    rows = await _list(client, admin_headers, f"sent/sentDate/{local_day}")
    assert [(r["InvoiceId"], r["Status"], r["System"], r["SendingAttempts"]) for r in rows] == [
        (body["InvoiceId"], "Sent", system, 1)
    ]
    assert await _list(client, admin_headers, f"sent/sentDate/{now.date().isoformat()}") == []
    # Practice users see their own practices' deliveries only.
    assert len(await _list(client, practice_headers, f"sent/sentDate/{local_day}")) == 1
    others = long_lived_headers(Role.PRACTICE, PRACTICE_B)
    assert await _list(client, others, f"sent/sentDate/{local_day}") == []


async def test_503_then_200_retries_after_5_seconds_with_the_same_idempotency_key(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    receiver.script(Reply(503))
    body = invoice_body(document=DOCUMENT)
    await submit(client, practice_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1

        [failed] = await all_sendings(state)
        assert failed.status == "Failed"
        assert failed.reason is not None
        assert "HTTP 503" in failed.reason
        assert failed.next_attempt_at is not None
        delay = failed.next_attempt_at - clock.now()
        assert timedelta(seconds=4.5) <= delay <= timedelta(seconds=5.5)  # 5 s, jitter 10 %
        rows = await _list(client, admin_headers, "failed")
        assert [(r["InvoiceId"], r["Status"], r["SendingAttempts"]) for r in rows] == [
            (body["InvoiceId"], "Failed", 1)
        ]
        assert "HTTP 503" in rows[0]["Reason"]

        clock.advance(timedelta(seconds=4))
        assert await worker.drain() == 0  # not due yet
        clock.advance(timedelta(seconds=2))
        assert await worker.drain() == 1

    first, second = receiver.requests
    assert first.header("Idempotency-Key") == second.header("Idempotency-Key")
    assert first.header("Idempotency-Key") == failed.idempotency_key
    assert (first.header("X-Attempt"), second.header("X-Attempt")) == ("1", "2")
    assert first.body == second.body == orjson.dumps(DOCUMENT)
    [sent] = await all_sendings(state)
    assert (sent.status, sent.attempts, sent.reason) == ("Sent", 2, None)
    assert await _list(client, admin_headers, "failed") == []
    detail = await _detail(client, admin_headers, body["InvoiceId"])
    outcomes = [(a["Number"], a["Outcome"], a["Code"]) for a in detail["Sendings"][0]["Attempts"]]
    assert outcomes == [(1, "Retryable", 503), (2, "Sent", 200)]


async def test_422_aborts_at_once_with_an_actionable_reason_free_of_patient_data(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    # The receiver echoes the patient's name in its answer: it must not reach any reason.
    receiver.respond_with(
        Reply(
            422,
            {"Content-Type": "application/json"},
            f'{{"error": "{PATIENT}: unknown member"}}'.encode(),
        )
    )
    body = invoice_body(document=DOCUMENT)
    await submit(client, practice_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
        clock.advance(timedelta(days=2))
        assert await worker.drain() == 0  # aborted: no automatic attempt, ever

    [aborted] = await all_sendings(state)
    assert (aborted.status, aborted.attempts, aborted.next_attempt_at) == ("Aborted", 1, None)
    rows = await _list(client, admin_headers, "aborted")
    assert [(r["InvoiceId"], r["Status"], r["System"]) for r in rows] == [
        (body["InvoiceId"], "Aborted", system)
    ]
    reason = rows[0]["Reason"]
    assert system in reason
    assert "422" in reason
    detail = await _detail(client, admin_headers, body["InvoiceId"])
    [attempt] = detail["Sendings"][0]["Attempts"]
    assert (attempt["Outcome"], attempt["Code"]) == ("Permanent", 422)
    texts = [reason, aborted.reason or "", attempt["Reason"] or "", str(detail)]
    for text in texts:
        assert PATIENT not in text
        assert "Thandi" not in text


async def test_always_503_is_aborted_after_the_8_attempts_of_the_default_schedule(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    receiver.respond_with(Reply(503))
    body = invoice_body(document=DOCUMENT)
    await submit(client, practice_headers, body)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
        for attempt, scheduled in enumerate(DEFAULT_SCHEDULE[1:], start=2):
            [sending] = await all_sendings(state)
            assert sending.status == "Failed", attempt
            assert sending.next_attempt_at is not None
            delay = sending.next_attempt_at - clock.now()
            assert scheduled * 0.9 <= delay <= scheduled * 1.1, (attempt, delay)
            clock.advance(scheduled * 0.9 - timedelta(seconds=0.5))
            assert await worker.drain() == 0, f"attempt {attempt} came early"
            clock.advance(scheduled * 0.2 + timedelta(seconds=1))
            assert await worker.drain() == 1, f"attempt {attempt} did not come"
        clock.advance(timedelta(days=3))
        assert await worker.drain() == 0

    assert len(receiver.requests) == 8
    assert len({r.header("Idempotency-Key") for r in receiver.requests}) == 1
    [aborted] = await all_sendings(state)
    assert aborted.status == "Aborted"
    rows = await _list(client, admin_headers, "aborted")
    assert [(r["InvoiceId"], r["SendingAttempts"]) for r in rows] == [(body["InvoiceId"], 8)]
    assert "HTTP 503" in rows[0]["Reason"]
    assert "8" in rows[0]["Reason"]
    assert [a.number for a in await attempts_of(state, aborted.id)] == list(range(1, 9))
    assert await _list(client, admin_headers, "failed") == []


async def test_retry_after_is_a_floor_for_the_next_attempt(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    receiver.script(Reply(503, {"Retry-After": "120"}))
    await submit(client, practice_headers, invoice_body(document=DOCUMENT))
    start = clock.now()
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
        [failed] = await all_sendings(state)
        assert failed.status == "Failed"
        assert failed.next_attempt_at == start + timedelta(seconds=120)
        assert failed.reason is not None
        assert "HTTP 503" in failed.reason

        clock.advance(timedelta(seconds=6))
        assert await worker.drain() == 0  # the schedule's 5 s are not enough
        clock.advance(timedelta(seconds=115))  # +121 s
        assert await worker.drain() == 1

    assert len(receiver.requests) == 2
    [sent] = await all_sendings(state)
    assert sent.status == "Sent"


async def test_each_system_gets_its_own_sending_and_key(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url + "a")
    await configure_system(client, admin_headers, "Healthbridge", receiver.url + "b")
    await submit(client, practice_headers, invoice_body(document=DOCUMENT))
    async with running_worker(state) as worker:
        assert await worker.drain() == 2
    by_target = {r.target: r for r in receiver.requests}
    assert set(by_target) == {"/a", "/b"}
    keys = {r.header("Idempotency-Key") for r in by_target.values()}
    assert len(keys) == 2
    assert {s.idempotency_key for s in await all_sendings(state)} == keys
    assert {s.status for s in await all_sendings(state)} == {"Sent"}


async def test_sending_time_is_the_time_of_the_last_attempt(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    receiver.script(Reply(503))
    body = invoice_body(document=DOCUMENT)
    created = clock.now()
    await submit(client, practice_headers, body)
    clock.advance(timedelta(seconds=30))
    async with running_worker(state) as worker:
        await worker.drain()
        [row] = await _list(client, admin_headers, "failed")
        assert _parse(row["SendingTime"]) == (created + timedelta(seconds=30)).replace(
            microsecond=0
        )
        clock.advance(timedelta(minutes=1))
        await worker.drain()
    local_day = clock.now().astimezone(JOHANNESBURG).date().isoformat()
    [row] = await _list(client, admin_headers, f"sent/sentDate/{local_day}")
    assert _parse(row["SendingTime"]) == (created + timedelta(seconds=90)).replace(microsecond=0)
    assert row["SendingAttempts"] == 2
    assert uuid.UUID(row["InvoiceId"]) == uuid.UUID(body["InvoiceId"])
