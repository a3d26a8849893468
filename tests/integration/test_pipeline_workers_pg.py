"""Several workers on one PostgreSQL: claims never overlap, and a dead worker's lease is taken over.

PostgreSQL only (scale-out is a PostgreSQL feature: `FOR UPDATE SKIP LOCKED`).  Each worker has
its own engine, as separate processes would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from invoice_outbox.clock import FrozenClock
from invoice_outbox.db.engine import make_async_engine
from invoice_outbox.sendings.intake import Outcome as IntakeOutcome
from invoice_outbox.sendings.intake import Submission, submit_invoices
from invoice_outbox.sendings.models import Attempt
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.systems.channels.base import Delivered
from invoice_outbox.systems.retry import RetryPolicy
from invoice_outbox.worker import claims, sweeps
from invoice_outbox.worker.loop import Worker
from invoice_outbox.worker.outcomes import Outcome, record
from tests.conftest import PRACTICE_A
from tests.pipeline_helpers import (
    all_sendings,
    attempts_of,
    configure_system,
    invoice_body,
    pipeline_settings,
    running_worker,
)
from tests.pipeline_helpers import (
    submit as submit_over_api,
)
from tests.receivers import HttpReceiver

# Several workers share one database on PostgreSQL only: no SQLite variant is collected.
pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only]
SENDINGS = 200


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return pipeline_settings(database_url, tmp_path, lease_seconds=60.0)


@pytest.fixture
async def system(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
) -> str:
    # A lane wide enough for both workers' caps (16 each): they claim side by side.
    await configure_system(client, admin_headers, "MediSwitch", receiver.url, MaxInFlight=64)
    return "MediSwitch"


async def _queue(state: AppState, count: int) -> None:
    """`count` invoices for practice A, submitted through intake in one transaction."""
    submissions = [
        Submission(
            practice_id=PRACTICE_A,
            invoice_id=uuid.uuid4(),
            encounter_id=uuid.uuid4(),
            document=f'{{"Invoice": {n}}}'.encode(),
            content_type="application/json",
        )
        for n in range(count)
    ]
    results = await submit_invoices(
        state.engine, state.systems, submissions, now=state.clock.now(), keyring=state.keyring
    )
    assert {r.outcome for r in results} == {IntakeOutcome.ACCEPTED}


async def test_two_workers_deliver_each_sending_exactly_once(
    system: str, receiver: HttpReceiver, state: AppState, clock: FrozenClock
) -> None:
    await _queue(state, SENDINGS)
    engines = [make_async_engine(state.settings.database_url) for _ in range(2)]
    workers = [
        Worker(
            engine=engine,
            settings=state.settings,
            clock=clock,
            keyring=state.keyring,
            concurrency=16,
            name=name,
        )
        for engine, name in zip(engines, ("worker-a", "worker-b"), strict=True)
    ]
    try:
        counts = await asyncio.gather(*(w.drain() for w in workers))
    finally:
        for worker in workers:
            await worker.aclose()
        for engine in engines:
            await engine.dispose()

    assert sum(counts) == SENDINGS
    sendings = await all_sendings(state)
    assert len(sendings) == SENDINGS
    assert Counter(s.status for s in sendings) == {"Sent": SENDINGS}
    assert {s.attempts for s in sendings} == {1}
    keys = Counter(r.header("Idempotency-Key") for r in receiver.requests)
    assert len(receiver.requests) == SENDINGS
    assert set(keys.values()) == {1}
    assert set(keys) == {s.idempotency_key for s in sendings}
    async with state.sessions() as session:
        per_sending = (
            await session.execute(
                select(Attempt.sending_id, func.count()).group_by(Attempt.sending_id)
            )
        ).all()
        by_worker = dict(
            (
                await session.execute(select(Attempt.worker, func.count()).group_by(Attempt.worker))
            ).all()
        )
    assert len(per_sending) == SENDINGS
    assert {n for _, n in per_sending} == {1}
    # Both took part (otherwise this would prove nothing about concurrent claiming).
    assert set(by_worker) == {"worker-a", "worker-b"}
    assert by_worker == {"worker-a": counts[0], "worker-b": counts[1]}


async def test_an_expired_lease_is_taken_over_and_the_lost_attempt_shown(
    system: str,
    receiver: HttpReceiver,
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    state: AppState,
    clock: FrozenClock,
) -> None:
    body = invoice_body()
    await submit_over_api(client, practice_headers, body)
    lease = timedelta(seconds=state.settings.lease_seconds)
    async with state.engine.begin() as connection:
        taken = await claims.claim_lanes(
            connection, worker="worker-a", now=clock.now(), lease=lease, limit=10
        )
    [claim] = taken.claims
    # worker-a dies here: no delivery, no outcome.
    [held] = await all_sendings(state)
    assert (held.status, held.lease_owner, held.attempts) == ("Sending", "worker-a", 1)

    async with running_worker(state, name="worker-b") as worker_b:
        clock.advance(lease - timedelta(seconds=1))
        assert await worker_b.drain() == 0  # still leased to worker-a
        clock.advance(timedelta(seconds=2))
        assert await worker_b.drain() == 1

    [request] = receiver.requests
    assert request.header("Idempotency-Key") == claim.idempotency_key
    assert request.header("X-Attempt") == "2"
    [sent] = await all_sendings(state)
    assert (sent.status, sent.attempts, sent.lease_owner) == ("Sent", 2, None)
    attempts = await attempts_of(state, sent.id)
    assert [(a.number, a.outcome) for a in attempts] == [(1, "Retryable"), (2, "Sent")]
    assert attempts[0].reason == sweeps.LOST_REASON
    assert attempts[1].worker == "worker-b"
    detail = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}", headers=admin_headers
    )
    shown = detail.json()["Sendings"][0]["Attempts"]
    assert [(a["Number"], a["Outcome"]) for a in shown] == [(1, "Retryable"), (2, "Sent")]
    assert "stopped before recording the outcome" in shown[0]["Reason"]

    # worker-a was only slow, not dead: its late outcome must not overwrite worker-b's.
    async with state.engine.begin() as connection:
        late = await record(
            connection,
            Outcome(claim, clock.now(), 5, delivered=Delivered(code=200, detail="OK")),
            worker="worker-a",
            now=clock.now(),
            policy=RetryPolicy(),
            jitter=0.0,
            threshold=state.settings.circuit_failure_threshold,
            probe_interval=timedelta(seconds=30),
        )
    assert late.status == "lost"
    [after] = await all_sendings(state)
    assert (after.status, after.attempts, after.sent_at) == ("Sent", 2, sent.sent_at)
    assert len(await attempts_of(state, sent.id)) == 2


async def test_the_lost_attempt_names_the_worker_that_was_lost(
    system: str,
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    state: AppState,
    clock: FrozenClock,
) -> None:
    """The attempt timeline is what admins read to find a crashing host: the lost attempt
    must name the worker that made it (as `release` does for an interrupted attempt)."""
    await submit_over_api(client, practice_headers, invoice_body())
    claimed_at = clock.now()
    lease = timedelta(seconds=state.settings.lease_seconds)
    async with state.engine.begin() as connection:
        await claims.claim_lanes(
            connection, worker="worker-a", now=claimed_at, lease=lease, limit=1
        )
    clock.advance(lease + timedelta(seconds=1))
    async with running_worker(state, name="worker-b") as worker_b:
        assert await worker_b.drain() == 1
    [sent] = await all_sendings(state)
    lost, delivered = await attempts_of(state, sent.id)
    assert lost.reason == sweeps.LOST_REASON
    assert delivered.worker == "worker-b"
    assert (lost.worker, lost.started_at) == ("worker-a", claimed_at)
