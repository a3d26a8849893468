"""Worker processes on PostgreSQL: sharing the queue, and surviving a SIGKILL mid-delivery."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from invoice_outbox.db.engine import make_async_engine, make_session_factory
from invoice_outbox.sendings.intake import Outcome, Submission, submit_all
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.systems.directory import SystemsDirectory
from invoice_outbox.systems.schemas import SystemIn
from invoice_outbox.systems.service import put_system
from tests.conftest import NOW, PRACTICE_A, TEST_DOCUMENT_KEYS, fixed_keyring
from tests.receivers import Reply, ThreadedHttpReceiver

BIN = Path(sys.executable).parent / "invoice-outbox"
# Several worker processes share work on PostgreSQL only: no SQLite variant is collected.
pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only]


@pytest.fixture
def pg_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def receiver() -> Iterator[ThreadedHttpReceiver]:
    with ThreadedHttpReceiver() as server:
        yield server


async def _queue(url: str, receiver_url: str, count: int) -> None:
    engine = make_async_engine(url)
    try:
        async with make_session_factory(engine)() as session:
            spec = SystemIn(
                Channel="Http", Url=f"{receiver_url}/in", TimeoutSeconds=5, Practices=[PRACTICE_A]
            )
            await put_system(session, "Receiver", spec, now=NOW)
            submissions = [
                Submission(
                    practice_id=PRACTICE_A,
                    invoice_id=uuid.uuid4(),
                    encounter_id=uuid.uuid4(),
                    document=b'{"n": %d}' % i,
                    content_type="application/json",
                )
                for i in range(count)
            ]
            connection = await session.connection()
            results = await submit_all(
                connection, SystemsDirectory(), submissions, now=NOW, keyring=fixed_keyring()
            )
            assert {r.outcome for r in results} == {Outcome.ACCEPTED}
            await session.commit()
    finally:
        await engine.dispose()


async def _statuses(url: str) -> dict[str, int]:
    engine = make_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Sending.status, func.count()).group_by(Sending.status)
            )
            return dict(rows.all())
    finally:
        await engine.dispose()


async def _attempts(url: str) -> list[tuple[uuid.UUID, int, str, str | None]]:
    engine = make_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Attempt.sending_id, Attempt.number, Attempt.outcome, Attempt.reason)
            )
            return list(rows.all())
    finally:
        await engine.dispose()


def _worker(url: str, tmp_path: Path, name: str, **env: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_OUTBOX_")}
    environment.update(
        {
            "INVOICE_OUTBOX_DATABASE_URL": url,
            "INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS": "true",
            "INVOICE_OUTBOX_POLL_SECONDS": "0.5",
            "INVOICE_OUTBOX_DOCUMENT_KEYS": TEST_DOCUMENT_KEYS,
            **env,
        }
    )
    return subprocess.Popen(
        [str(BIN), "worker", "--concurrency", "8"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / f"{name}.log").open("w"),
        text=True,
    )


async def _until_final(url: str, total: int, within: float = 90) -> dict[str, int]:
    # Polls the database for the observable end state (bounded), as an operator would.
    deadline = time.monotonic() + within
    statuses: dict[str, int] = {}
    while time.monotonic() < deadline:
        statuses = await _statuses(url)
        if statuses.get("Sent", 0) + statuses.get("Aborted", 0) == total:
            return statuses
        await asyncio.sleep(0.2)
    raise AssertionError(f"not all sendings finished within {within} s: {statuses}")


def _stop(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


async def test_two_worker_processes_share_the_queue(
    pg_url: str, receiver: ThreadedHttpReceiver, tmp_path: Path
) -> None:
    await _queue(pg_url, receiver.url, 200)
    workers = [_worker(pg_url, tmp_path, "a"), _worker(pg_url, tmp_path, "b")]
    try:
        statuses = await _until_final(pg_url, 200)
    finally:
        _stop(*workers)
    assert statuses == {"Sent": 200}
    keys = collections.Counter(r.header("Idempotency-Key") for r in receiver.requests)
    assert len(keys) == 200
    assert set(keys.values()) == {1}, "no attempt was delivered twice"
    attempts = await _attempts(pg_url)
    assert len(attempts) == 200
    assert {outcome for _, _, outcome, _ in attempts} == {"Sent"}
    workers_used = {
        line
        for line in (tmp_path / "a.log").read_text().splitlines()
        if "delivery.recorded" in line
    }
    assert workers_used, "worker a delivered some of them"


async def test_a_worker_killed_mid_delivery_loses_nothing(
    pg_url: str, receiver: ThreadedHttpReceiver, tmp_path: Path
) -> None:
    await _queue(pg_url, receiver.url, 20)
    receiver.script(Reply(hang=True))  # the first delivery never gets an answer
    first = _worker(pg_url, tmp_path, "first", INVOICE_OUTBOX_LEASE_SECONDS="3")
    try:
        hung = receiver.wait_for_requests(1, timeout=30)[0]
        first.send_signal(signal.SIGKILL)  # crash in the middle of that delivery
        first.wait(timeout=30)
        second = _worker(pg_url, tmp_path, "second", INVOICE_OUTBOX_LEASE_SECONDS="3")
        try:
            statuses = await _until_final(pg_url, 20)
        finally:
            _stop(second)
    finally:
        if first.poll() is None:
            first.kill()
    assert statuses == {"Sent": 20}
    key = hung.header("Idempotency-Key")
    repeats = [r for r in receiver.requests if r.header("Idempotency-Key") == key]
    assert len(repeats) >= 2, "the interrupted sending was delivered again"
    assert all(r.body == hung.body for r in repeats), "a repeat carries the same document"
    # Anything the killed worker had delivered but not recorded comes again: at least once,
    # and every repeat carries its sending's key and the same document.
    bodies: dict[str | None, set[bytes]] = collections.defaultdict(set)
    for request in receiver.requests:
        bodies[request.header("Idempotency-Key")].add(request.body)
    assert len(bodies) == 20
    assert all(len(documents) == 1 for documents in bodies.values())
    lost = [a for a in await _attempts(pg_url) if a[3] and "stopped before recording" in a[3]]
    assert lost, "the lost attempt is recorded visibly"
