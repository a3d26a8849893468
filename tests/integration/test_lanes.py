"""Lanes with real receivers: a slow system, a throttling one and a poison invoice stay in their
own lane, and every other system keeps flowing.  Both engines.

Deliveries wait on receivers that are gated (they answer when the test says so), so the
assertions are about what got through while another lane was stuck, never about time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from invoice_outbox.clock import FrozenClock
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.worker.loop import Worker
from tests.pipeline_helpers import (
    all_sendings,
    attempts_of,
    configure_system,
    invoice_body,
    pipeline_settings,
    running_worker,
    submit,
)
from tests.receivers import (
    HttpReceiver,
    ReceivedRequest,
    Reply,
    gated,
    per_invoice,
)

SHORT_POLICY = {"Schedule": ["0s", "5s", "1m"], "MaxAttempts": 3, "Jitter": 0}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return pipeline_settings(database_url, tmp_path, circuit_failure_threshold=3)


@asynccontextmanager
async def worker_running(state: AppState, **kwargs: Any) -> AsyncIterator[Worker]:
    """A worker's `run()` loop in the background, stopped (gracefully) at the end."""
    async with running_worker(state, **kwargs) as worker:
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)


async def statuses(state: AppState, system: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sending in await all_sendings(state):
        if sending.system == system:
            counts[sending.status] = counts.get(sending.status, 0) + 1
    return counts


async def lane(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/billing/systems/{name}", headers=headers)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def test_a_slow_lane_takes_only_its_own_slots_and_a_fast_lane_keeps_flowing(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    with gated() as (slow, gate):
        # Lane defaults; a timeout longer than the test, so the held answers never time out.
        await configure_system(client, admin_headers, "SlowSwitch", slow.url, timeout_seconds=120)
        await configure_system(client, admin_headers, "Ledger", receiver.url)
        async with worker_running(state, max_in_flight=256) as worker:
            for _ in range(40):
                await submit(client, practice_headers, invoice_body(systems=["SlowSwitch"]))
            await asyncio.to_thread(slow.wait_for_requests, 8, 10)
            # The slow lane is full (its default MaxInFlight is 8) and its receiver answers
            # nothing.  Invoices for the healthy system submitted now still go out at once.
            for _ in range(20):
                await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
            await receiver.wait_for_requests(20, within=10)
            assert not gate.is_set()
            assert len(slow.requests) == 8
            assert slow.receiver.max_in_progress == 8
            view = await lane(client, admin_headers, "SlowSwitch")
            assert view["Lane"]["InFlight"] == 8
            assert view["Lane"]["MaxInFlight"] == 8
            assert view["Lane"]["State"] == "Full"
            assert view["Lane"]["Due"] == 32
            metrics = (await client.get("/metrics")).text
            assert 'invoice_outbox_lane_in_flight{system="SlowSwitch"} 8.0' in metrics
            gate.set()
            await asyncio.to_thread(slow.wait_for_requests, 40, 20)
        assert worker.claim_rounds >= 2
    sendings = await all_sendings(state)
    assert {s.status for s in sendings} == {"Sent"}
    assert len(sendings) == 60
    assert slow.receiver.max_in_progress <= 8


async def test_a_429_with_retry_after_pauses_that_lane_only(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    clock: FrozenClock,
) -> None:
    async with HttpReceiver() as throttling:
        throttling.script(Reply(429, {"Retry-After": "60"}))
        await configure_system(client, admin_headers, "Busy", throttling.url, MaxInFlight=1)
        await configure_system(client, admin_headers, "Ledger", receiver.url)
        for _ in range(4):
            await submit(client, practice_headers, invoice_body(systems=["Busy"]))
        for _ in range(5):
            await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
        async with running_worker(state) as worker:
            await worker.drain()
            assert len(throttling.requests) == 1  # then the lane waits as it was asked
            assert await statuses(state, "Busy") == {"Failed": 1, "Pending": 3}
            assert await statuses(state, "Ledger") == {"Sent": 5}
            view = await lane(client, admin_headers, "Busy")
            assert view["Health"]["State"] == "Healthy"  # asked to slow down, not down
            assert view["Lane"]["State"] == "Throttled"
            assert view["Lane"]["ThrottledUntil"].startswith(
                (clock.now() + timedelta(seconds=60)).isoformat()[:19]
            )
            # Other lanes are not slowed: new invoices for Ledger go out in the meantime.
            clock.advance(timedelta(seconds=30))
            for _ in range(3):
                await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
            await worker.drain()
            assert await statuses(state, "Ledger") == {"Sent": 8}
            assert len(throttling.requests) == 1
            clock.advance(timedelta(seconds=31))
            await worker.drain()
    assert await statuses(state, "Busy") == {"Sent": 4}
    assert len(throttling.requests) == 5


async def test_a_poison_invoice_follows_its_retry_policy_and_the_system_stays_healthy(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    clock: FrozenClock,
) -> None:
    poison = invoice_body(systems=["MediSwitch"])
    receiver.respond_with(per_invoice({poison["InvoiceId"]: Reply(500)}, Reply(200)))
    await configure_system(
        client, admin_headers, "MediSwitch", receiver.url, RetryPolicy=SHORT_POLICY
    )
    await submit(client, practice_headers, poison)
    for _ in range(10):
        await submit(client, practice_headers, invoice_body(systems=["MediSwitch"]))
    async with running_worker(state) as worker:
        await worker.drain()
        for step in (timedelta(seconds=5), timedelta(minutes=1)):
            clock.advance(step)
            # Only the poison invoice is due: its failures follow one another with nothing
            # in between, yet they are one invoice's problem, not the system's.
            assert await worker.drain() == 1
            health = (await lane(client, admin_headers, "MediSwitch"))["Health"]
            assert health["State"] == "Healthy"
    assert await statuses(state, "MediSwitch") == {"Sent": 10, "Aborted": 1}
    [refused] = [s for s in await all_sendings(state) if str(s.invoice_id) == poison["InvoiceId"]]
    assert refused.reason == (
        "MediSwitch answered HTTP 500 Internal Server Error; gave up after 3 attempts"
    )
    assert [a.code for a in await attempts_of(state, refused.id)] == [500, 500, 500]
    health = (await lane(client, admin_headers, "MediSwitch"))["Health"]
    # Its last two failures came one after the other (the first may have come before the
    # other invoices' successes): counted, and still one invoice's problem.
    assert health["State"] == "Healthy"
    assert health["ConsecutiveFailures"] >= 2


async def test_a_down_system_is_probed_with_a_different_invoice_each_time(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    clock: FrozenClock,
) -> None:
    """An outage opens the circuit; when it ends, the first probe happens to take the one
    invoice the receiver refuses.  The next probe takes another invoice and frees the queue."""
    outage = True
    poison = invoice_body(systems=["MediSwitch"])

    def answer(request: ReceivedRequest) -> Reply:
        if outage:
            return Reply(503)
        return Reply(500) if request.header("X-Invoice-Id") == poison["InvoiceId"] else Reply(200)

    receiver.respond_with(answer)
    policy = {"Schedule": ["0s", "5s", "1m", "1h"], "MaxAttempts": 8, "Jitter": 0}
    await configure_system(client, admin_headers, "MediSwitch", receiver.url, RetryPolicy=policy)
    others = [invoice_body(systems=["MediSwitch"]) for _ in range(4)]
    async with running_worker(state, probe_interval=timedelta(seconds=30)) as worker:
        await submit(client, practice_headers, poison)
        await worker.drain()  # the poison invoice fails first (due first from now on)
        clock.advance(timedelta(seconds=1))
        for body in others:
            await submit(client, practice_headers, body)
        await worker.drain()
        assert (await lane(client, admin_headers, "MediSwitch"))["Health"]["State"] == "Down"
        outage = False
        probed: list[str | None] = []
        for _ in range(2):
            clock.advance(timedelta(seconds=30))
            before = len(receiver.requests)
            await worker.drain()
            probed.append(receiver.requests[before].header("X-Invoice-Id"))
        assert probed[0] == poison["InvoiceId"]
        assert probed[1] != poison["InvoiceId"]
        assert (await lane(client, admin_headers, "MediSwitch"))["Health"]["State"] == "Healthy"
    assert await statuses(state, "MediSwitch") == {"Sent": 4, "Failed": 1}
    [waiting] = [s for s in await all_sendings(state) if s.status == "Failed"]
    assert str(waiting.invoice_id) == poison["InvoiceId"]


async def test_a_rate_limited_lane_starts_no_more_than_its_rate(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    clock: FrozenClock,
) -> None:
    await configure_system(client, admin_headers, "Ledger", receiver.url, RatePerSecond=10)
    for _ in range(30):
        await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
    per_step: list[int] = []
    async with running_worker(state) as worker:
        for _ in range(20):  # two seconds in steps of 100 ms
            before = len(receiver.requests)
            await worker.drain()
            per_step.append(len(receiver.requests) - before)
            clock.advance(timedelta(milliseconds=100))
    assert per_step == [1] * 20
    assert await statuses(state, "Ledger") == {"Sent": 20, "Pending": 10}


async def test_the_in_flight_limit_holds_over_several_rounds(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    state: AppState,
) -> None:
    async with HttpReceiver(default=Reply(200, delay=0.2)) as slow:
        await configure_system(client, admin_headers, "Ledger", slow.url, MaxInFlight=3)
        for _ in range(12):
            await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
        async with running_worker(state, max_in_flight=100) as worker:
            assert await worker.drain() == 12
            assert worker.claim_rounds >= 4
        assert slow.max_in_progress == 3
    assert await statuses(state, "Ledger") == {"Sent": 12}
