"""`record_batch`: many outcomes in one transaction, with the guarantees of `record` per outcome.

Both engines (PostgreSQL writes deliveries with one prepared statement over arrays, SQLite with
an IN list): a stale outcome never overwrites a newer claim, failures and successes keep their
order for the system's health, and the result per outcome is what `record` would say.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from invoice_outbox.clock import FrozenClock
from invoice_outbox.state import AppState
from invoice_outbox.systems.channels.base import Delivered, RetryableDeliveryError
from invoice_outbox.systems.models import System
from invoice_outbox.systems.retry import RetryPolicy
from invoice_outbox.worker import claims, sweeps
from invoice_outbox.worker.outcomes import Outcome, Recorded, record_batch
from tests.pipeline_helpers import all_sendings, attempts_of, configure_system, invoice_body, submit
from tests.receivers import HttpReceiver

LEASE = timedelta(minutes=2)
OK = Delivered(code=200, detail="HTTP 200 OK")


def unavailable() -> RetryableDeliveryError:
    return RetryableDeliveryError("MediSwitch answered HTTP 503", cause="http-503", code=503)


@pytest.fixture
async def queued(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
) -> int:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    for _ in range(4):
        await submit(client, practice_headers, invoice_body(systems=["MediSwitch"]))
    return 4


async def claim(state: AppState, clock: FrozenClock, worker: str, limit: int) -> list[claims.Claim]:
    async with state.engine.begin() as connection:
        taken = await claims.claim_lanes(
            connection, worker=worker, now=clock.now(), lease=LEASE, limit=limit
        )
    return taken.claims


async def write(
    state: AppState, clock: FrozenClock, outcomes: list[Outcome], worker: str = "w1"
) -> list[Recorded]:
    async with state.engine.begin() as connection:
        return await record_batch(
            connection,
            outcomes,
            worker=worker,
            now=clock.now(),
            policy_of=lambda _: RetryPolicy(),
            jitter=lambda: 0.0,
            threshold=3,
            probe_interval=timedelta(seconds=30),
            keyring=state.keyring,
        )


async def system_health(state: AppState) -> tuple[str, int]:
    async with state.engine.connect() as connection:
        row = (
            await connection.execute(
                select(System.circuit, System.consecutive_failures).where(
                    System.name == "MediSwitch"
                )
            )
        ).one()
    return row.circuit, row.consecutive_failures


async def test_a_batch_marks_deliveries_sent_and_keeps_failures_in_order(
    queued: int, state: AppState, clock: FrozenClock
) -> None:
    taken = await claim(state, clock, "w1", queued)
    outcomes = [
        Outcome(taken[0], clock.now(), 5, error=unavailable()),
        Outcome(taken[1], clock.now(), 5, delivered=OK),
        Outcome(taken[2], clock.now(), 5, error=unavailable()),
        Outcome(taken[3], clock.now(), 5, delivered=OK),
    ]
    results = await write(state, clock, outcomes)
    assert [r.status for r in results] == ["Failed", "Sent", "Failed", "Sent"]
    # failure, success (back to healthy), failure, success: healthy, no failures counted.
    assert await system_health(state) == ("Healthy", 0)
    by_id = {s.id: s for s in await all_sendings(state)}
    for outcome, expected in zip(outcomes, ["Failed", "Sent", "Failed", "Sent"], strict=True):
        sending = by_id[outcome.claim.sending_id]
        assert (sending.status, sending.lease_owner) == (expected, None)
        [attempt] = await attempts_of(state, sending.id)
        assert (attempt.number, attempt.worker) == (1, "w1")
        assert attempt.outcome == ("Sent" if expected == "Sent" else "Retryable")


async def test_failures_at_the_end_of_a_batch_count_towards_the_circuit(
    queued: int, state: AppState, clock: FrozenClock
) -> None:
    taken = await claim(state, clock, "w1", queued)
    outcomes = [Outcome(taken[0], clock.now(), 5, delivered=OK)] + [
        Outcome(c, clock.now(), 5, error=unavailable()) for c in taken[1:]
    ]
    await write(state, clock, outcomes)
    assert await system_health(state) == ("Down", 3)


async def test_a_stale_outcome_never_overwrites_a_newer_claim_of_the_same_worker(
    queued: int, state: AppState, clock: FrozenClock
) -> None:
    [first, *_] = await claim(state, clock, "w1", queued)
    clock.advance(LEASE + timedelta(seconds=1))
    async with state.engine.begin() as connection:
        retaken = await sweeps.take_over_expired(
            connection, worker="w1", now=clock.now(), lease=LEASE, limit=queued
        )
    [again] = [c for c in retaken if c.sending_id == first.sending_id]
    assert again.attempt == first.attempt + 1

    [late] = await write(state, clock, [Outcome(first, clock.now(), 5, delivered=OK)])
    assert late.status == "lost"
    [sending] = await all_sendings(state, first.invoice_id)
    assert (sending.status, sending.attempts, sending.sent_at) == ("Sending", 2, None)

    [current] = await write(state, clock, [Outcome(again, clock.now(), 5, delivered=OK)])
    assert current.status == "Sent"
    numbers = [(a.number, a.outcome) for a in await attempts_of(state, first.sending_id)]
    assert numbers == [(1, "Retryable"), (2, "Sent")]


async def test_another_workers_outcome_is_lost_and_changes_nothing(
    queued: int, state: AppState, clock: FrozenClock
) -> None:
    taken = await claim(state, clock, "w1", queued)
    results = await write(
        state, clock, [Outcome(c, clock.now(), 5, delivered=OK) for c in taken], worker="w2"
    )
    assert {r.status for r in results} == {"lost"}
    assert {s.status for s in await all_sendings(state)} == {"Sending"}
