"""An outcome the database refuses for a while (a restart, a failover) is recorded once it is
back, by the worker that made the attempt: the sending does not wait for its lease to expire
and is not sent again.  When the lease runs out first, the worker stops trying (another worker
takes the sending over; the fence decides whose outcome stands).

Runs on both engines; the database's refusals are injected at the outcome writer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.worker import recording
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
from tests.receivers import HttpReceiver


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "RECORD_RETRY_FIRST", 0.01)
    monkeypatch.setattr(recording, "RECORD_RETRY_MAX", 0.02)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return pipeline_settings(database_url, tmp_path, lease_seconds=60)


def refuse_writes(worker: Worker, times: int | None) -> list[int]:
    """Make the database refuse the worker's outcome writes `times` times (None: always);
    returns the list of tries, growing."""
    record: Callable[[Any], Awaitable[Any]] = worker.recording.recorder.record
    calls: list[int] = []

    async def refusing(item: Any) -> Any:
        calls.append(1)
        if times is None or len(calls) <= times:
            raise OperationalError("UPDATE sendings", {}, Exception("server closed the connection"))
        return await record(item)

    worker.recording.recorder.record = refusing  # type: ignore[method-assign]
    return calls


async def test_an_outcome_refused_while_the_database_is_away_is_recorded_when_it_is_back(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    await submit(client, practice_headers, invoice_body())
    async with running_worker(state) as worker:
        calls = refuse_writes(worker, times=4)
        assert await worker.drain() == 1
    assert len(calls) == 5, "refused four times, written the fifth"
    [sending] = await all_sendings(state)
    assert (sending.status, sending.lease_owner) == ("Sent", None)
    [attempt] = await attempts_of(state, sending.id)
    assert (attempt.number, attempt.outcome, attempt.worker) == (1, "Sent", "worker-1")
    assert len(receiver.requests) == 1, "delivered once: nothing waits for a lease to expire"


async def test_the_worker_stops_trying_when_the_lease_runs_out(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    await submit(client, practice_headers, invoice_body())
    async with running_worker(state) as worker:
        monkeypatch.setattr(worker, "lease", worker.lease * 0)  # already over when it answers
        calls = refuse_writes(worker, times=None)
        assert await worker.drain() == 1
    assert len(calls) == recording.RECORD_TRIES_AT_LEAST
    [sending] = await all_sendings(state)
    assert (sending.status, sending.lease_owner) == ("Sending", "worker-1")  # for a take-over
    assert await attempts_of(state, sending.id) == []
