"""A lane's limits hold across workers sharing one PostgreSQL: its rate limit and its in-flight
limit are the system's, not each process's.  Each worker has its own engine, as separate
processes would; they share the (frozen) clock, which the test moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest

from invoice_outbox.clock import FrozenClock
from invoice_outbox.db.engine import make_async_engine
from invoice_outbox.state import AppState
from invoice_outbox.worker.loop import Worker
from tests.integration.test_lanes import statuses
from tests.pipeline_helpers import configure_system, invoice_body, submit
from tests.receivers import HttpReceiver, Reply

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only]


@asynccontextmanager
async def two_workers(state: AppState) -> AsyncIterator[list[Worker]]:
    engines = [make_async_engine(state.settings.database_url) for _ in range(2)]
    workers = [
        Worker(
            engine=engine,
            settings=state.settings,
            clock=state.clock,
            keyring=state.keyring,
            name=name,
        )
        for engine, name in zip(engines, ("worker-a", "worker-b"), strict=True)
    ]
    try:
        yield workers
    finally:
        for worker in workers:
            await worker.aclose()
        for engine in engines:
            await engine.dispose()


async def test_the_rate_limit_holds_across_two_workers(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    clock: FrozenClock,
) -> None:
    await configure_system(client, admin_headers, "Ledger", receiver.url, RatePerSecond=10)
    for _ in range(60):
        await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
    per_step: list[int] = []
    async with two_workers(state) as workers:
        for _ in range(20):  # two seconds in steps of 100 ms: one delivery may start per step
            before = len(receiver.requests)
            await asyncio.gather(*(worker.drain() for worker in workers))
            per_step.append(len(receiver.requests) - before)
            clock.advance(timedelta(milliseconds=100))
        took = {worker.name: worker.claim_rounds for worker in workers}
    assert per_step == [1] * 20, per_step
    assert all(rounds > 0 for rounds in took.values())
    assert await statuses(state, "Ledger") == {"Sent": 20, "Pending": 40}


async def test_the_in_flight_limit_holds_across_two_workers(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    state: AppState,
) -> None:
    async with HttpReceiver(default=Reply(200, delay=0.2)) as slow:
        await configure_system(client, admin_headers, "Ledger", slow.url, MaxInFlight=3)
        for _ in range(15):
            await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
        async with two_workers(state) as workers:
            counts = await asyncio.gather(*(worker.drain() for worker in workers))
        assert sum(counts) == 15
        assert slow.max_in_progress == 3
    assert await statuses(state, "Ledger") == {"Sent": 15}
