"""Outage-aware retries: a system that is down holds its queue instead of burning attempts.

Runs on both engines.  Threshold 3 consecutive retryable failures, one probe per 30 s.  The
system's retry policy is deliberately short (3 attempts within a minute): without the circuit a
3-hour outage would abort every invoice, so "nothing ends Aborted" really tests the circuit.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
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
    configure_system,
    invoice_body,
    pipeline_settings,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver, ReceivedRequest, Reply

THRESHOLD = 3
PROBE_INTERVAL = timedelta(seconds=30)
OUTAGE = timedelta(hours=3)
SHORT_POLICY = {"Schedule": ["0s", "5s", "1m"], "MaxAttempts": 3, "Jitter": 0.1}
INVOICES = 10


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return pipeline_settings(database_url, tmp_path, circuit_failure_threshold=THRESHOLD)


@pytest.fixture
async def system(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> str:
    await configure_system(
        client, admin_headers, "MediSwitch", receiver.url, RetryPolicy=SHORT_POLICY
    )
    return "MediSwitch"


async def _health(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/billing/systems/{name}", headers=headers)
    assert response.status_code == 200, response.text
    health: dict[str, Any] = response.json()["Health"]
    return health


async def _statuses(state: AppState) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sending in await all_sendings(state):
        counts[sending.status] = counts.get(sending.status, 0) + 1
    return counts


def _outage_until(clock: FrozenClock, end: datetime) -> Any:
    """503 while the clock is before `end`, then 200."""

    def answer(_request: ReceivedRequest) -> Reply:
        return Reply(503) if clock.now() < end else Reply(200)

    return answer


async def _drain_step(
    worker: Worker, clock: FrozenClock, receiver: HttpReceiver, step: timedelta
) -> tuple[datetime, int]:
    clock.advance(step)
    before = len(receiver.requests)
    await worker.drain()
    return clock.now(), len(receiver.requests) - before


async def test_three_hour_outage_holds_the_queue_probes_and_recovers(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    start = clock.now()
    receiver.respond_with(_outage_until(clock, start + OUTAGE))
    for _ in range(INVOICES):
        await submit(client, practice_headers, invoice_body())
    assert (await _health(client, admin_headers, system))["State"] == "Healthy"

    async with running_worker(state, probe_interval=PROBE_INTERVAL) as worker:
        await worker.drain()
        # The first failures (up to one claim round) open the circuit.
        health = await _health(client, admin_headers, system)
        assert health["State"] == "Down"
        assert health["DownSince"] is not None
        assert datetime.fromisoformat(health["DownSince"].replace("Z", "+00:00")) == start.replace(
            microsecond=0
        )
        assert health["ConsecutiveFailures"] >= THRESHOLD
        assert "503" in health["LastFailure"]
        assert health["NextProbeAt"] is not None
        opened = len(receiver.requests)
        assert THRESHOLD <= opened <= INVOICES

        # While down: at most one attempt per probe interval.  Fine steps first (10 s, so a
        # second probe inside one interval would show), then coarse ones (10 min: still at
        # most one probe per drain).
        timeline: list[tuple[datetime, int]] = []
        for _ in range(60):
            timeline.append(await _drain_step(worker, clock, receiver, timedelta(seconds=10)))
        while clock.now() + timedelta(minutes=10) < start + OUTAGE:
            timeline.append(await _drain_step(worker, clock, receiver, timedelta(minutes=10)))
            assert "Aborted" not in await _statuses(state)
            assert (await _health(client, admin_headers, system))["State"] == "Down"

        assert all(n <= 1 for _, n in timeline), [t for t in timeline if t[1] > 1]
        probe_times = [when for when, n in timeline if n]
        gaps = [b - a for a, b in itertools.pairwise(probe_times)]
        assert gaps
        assert min(gaps) >= PROBE_INTERVAL, gaps
        # Probes did happen (the system is watched), one per 30 s during the fine steps.
        fine = [when for when, n in timeline[:60] if n]
        assert 18 <= len(fine) <= 21, len(fine)
        during = len(receiver.requests) - opened
        assert during == len(probe_times)
        assert during <= OUTAGE / PROBE_INTERVAL + 1
        held = await _statuses(state)
        assert "Aborted" not in held
        assert "Sent" not in held

        # The outage ends: the next probe succeeds and the whole queue goes out.
        clock.advance(start + OUTAGE + PROBE_INTERVAL - clock.now())
        await worker.drain()

    assert await _statuses(state) == {"Sent": INVOICES}
    health = await _health(client, admin_headers, system)
    assert health["State"] == "Healthy"
    assert health["DownSince"] is None
    assert health["ConsecutiveFailures"] == 0
    assert health["NextProbeAt"] is None
    ok = [r for r in receiver.requests if r.header("Idempotency-Key")]
    assert len({r.header("Idempotency-Key") for r in ok}) == INVOICES
    rows = await client.get("/api/v1/billing/invoices/aborted", headers=admin_headers)
    assert rows.json() == []
    listing = await client.get("/api/v1/billing/systems", headers=admin_headers)
    assert [(s["Name"], s["Health"]["State"]) for s in listing.json()["Systems"]] == [
        (system, "Healthy")
    ]


async def test_held_sendings_say_why_they_wait(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    clock: FrozenClock,
) -> None:
    receiver.respond_with(Reply(503))
    for _ in range(INVOICES):
        await submit(client, practice_headers, invoice_body())
    async with running_worker(state, probe_interval=PROBE_INTERVAL, concurrency=1) as worker:
        assert await worker.drain() == THRESHOLD  # one at a time: the circuit opens at 3
        clock.advance(PROBE_INTERVAL)
        assert await worker.drain() == 1  # the probe
        clock.advance(PROBE_INTERVAL / 2)
        assert await worker.drain() == 0  # next probe not due yet
    failed = await client.get("/api/v1/billing/invoices/failed", headers=admin_headers)
    rows = failed.json()
    assert rows, "the failed sendings are listed"
    assert all("503" in row["Reason"] for row in rows)
    # The probed sending did not pay for the outage: its budget is still that of one failure.
    sendings = await all_sendings(state)
    assert max(s.round_attempts for s in sendings) <= 1
    assert "Aborted" not in await _statuses(state)


async def test_a_permanent_422_does_not_open_the_circuit(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
) -> None:
    receiver.respond_with(Reply(422))
    for _ in range(THRESHOLD * 2):
        await submit(client, practice_headers, invoice_body())
    async with running_worker(state, probe_interval=PROBE_INTERVAL, concurrency=1) as worker:
        assert await worker.drain() == THRESHOLD * 2  # none held: each was attempted
    assert await _statuses(state) == {"Aborted": THRESHOLD * 2}
    health = await _health(client, admin_headers, system)
    assert health["State"] == "Healthy"
    assert health["ConsecutiveFailures"] == 0
    assert health["DownSince"] is None


async def test_a_422_answer_resets_the_failure_count(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
) -> None:
    """503, 503, 422, 503, 503: never 3 retryable failures in a row, so never Down."""
    receiver.script(Reply(503), Reply(503), Reply(422), Reply(503), Reply(503))
    invoices = [invoice_body() for _ in range(5)]
    for body in invoices:
        await submit(client, practice_headers, body)
    async with running_worker(state, probe_interval=PROBE_INTERVAL, concurrency=1) as worker:
        assert await worker.drain() == 5
    health = await _health(client, admin_headers, system)
    assert health["State"] == "Degraded"
    assert health["ConsecutiveFailures"] == 2
    assert health["DownSince"] is None
    assert await _statuses(state) == {"Failed": 4, "Aborted": 1}
    assert {uuid.UUID(b["InvoiceId"]) for b in invoices} == {
        s.invoice_id for s in await all_sendings(state)
    }
