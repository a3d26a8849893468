"""Intake under concurrency, the same for the three ways in: single, batch and import.

- identical submissions in parallel create one set of sendings and one document;
- a batch (or an import) racing a single submission of the same invoice likewise;
- a correction racing a worker's claim is either applied before the claim (and delivered) or
  refused with 409 "being delivered" after it -- never written under the worker's feet;
- issue #10: with many corrections racing running workers, what every Sent sending records
  (document, idempotency key) is exactly what the receiver last got under that key, and the
  Sent attempt's keyed digest is the stored document's.
"""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from rich.console import Console
from sqlalchemy import select, text

from invoice_outbox.cli.import_cmd import _import
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.sealing import digest
from invoice_outbox.state import AppState
from invoice_outbox.worker import claims
from tests.conftest import PRACTICE_A
from tests.pipeline_helpers import (
    all_sendings,
    configure_system,
    count,
    invoice_body,
    opened,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver

WAYS = ("single", "batch", "import")
Via = Callable[[dict[str, Any]], Coroutine[Any, Any, str]]
_files = itertools.count()


@pytest.fixture
def via(
    client: httpx.AsyncClient, practice_headers: dict[str, str], state: AppState, tmp_path: Path
) -> Callable[[str], Via]:
    """A submission by one of the three ways; answers the outcome (single: 202 is "Taken")."""

    async def single(body: dict[str, Any]) -> str:
        response = await submit(client, practice_headers, body, expect=None)
        return {202: "Taken", 409: "Conflict", 400: "Invalid"}[response.status_code]

    async def batch(body: dict[str, Any]) -> str:
        response = await client.post(
            f"/api/v1/{PRACTICE_A}/billing/invoices/batch",
            content=orjson.dumps([body]),
            headers={**practice_headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        [result] = response.json()["Data"]
        return str(result["Outcome"])

    async def by_import(body: dict[str, Any]) -> str:
        path = tmp_path / f"import-{next(_files)}.jsonl"
        path.write_bytes(orjson.dumps({"PracticeId": str(PRACTICE_A), **body}) + b"\n")
        console = Console(file=io.StringIO())
        rejected = path.with_suffix(".rejected.jsonl")
        counts = await _import(
            state.settings, path, "jsonl", 500, rejected, console, progress=False, clock=state.clock
        )
        [outcome] = [name for name, n in counts.items() if n]
        return outcome

    ways = {"single": single, "batch": batch, "import": by_import}
    return lambda name: ways[name]


@pytest.fixture
async def system(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> str:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    return "MediSwitch"


@pytest.mark.parametrize("way", WAYS)
async def test_identical_submissions_in_parallel_make_one_set(
    via: Callable[[str], Via], system: str, state: AppState, way: str
) -> None:
    submit_one = via(way)
    for _ in range(4):
        body = invoice_body()
        answers = sorted(await asyncio.gather(submit_one(body), submit_one(body)))
        assert answers in (["Taken", "Taken"], ["Accepted", "Duplicate"]), answers
    assert await count(state, Sending) == 4
    assert await count(state, Document) == 4  # no document left over by the loser


@pytest.mark.parametrize(
    ("first", "second"), [("single", "batch"), ("single", "import"), ("batch", "import")]
)
async def test_two_ways_racing_on_one_invoice_make_one_set(
    via: Callable[[str], Via], system: str, state: AppState, first: str, second: str
) -> None:
    for _ in range(3):
        body = invoice_body()
        answers = set(await asyncio.gather(via(first)(body), via(second)(body)))
        assert answers <= {"Taken", "Accepted", "Duplicate"}, answers
        assert answers & {"Taken", "Accepted"}, answers
    assert await count(state, Sending) == 3
    assert await count(state, Document) == 3


async def _body_of(state: AppState, sending: Sending) -> bytes:
    async with state.sessions() as session:
        return opened(state.keyring, await session.get_one(Document, sending.document_id))


@pytest.mark.parametrize("way", WAYS)
async def test_a_correction_after_a_claim_is_refused_and_changes_nothing(
    via: Callable[[str], Via], system: str, state: AppState, engine_name: str, way: str
) -> None:
    """The claim's transaction is still open when the correction arrives: the correction
    waits for it (PostgreSQL: on the row lock) and then sees the sending being delivered."""
    original = invoice_body(document={"v": 1})
    assert await via("batch")(original) == "Accepted"
    [before] = await all_sendings(state)
    async with state.engine.connect() as connection:
        transaction = await connection.begin()
        taken = await claims.claim_lanes(
            connection, worker="w", now=state.clock.now(), lease=timedelta(minutes=2), limit=1
        )
        assert [c.sending_id for c in taken.claims] == [before.id]
        correction = asyncio.create_task(via(way)({**original, "Document": {"v": 2}}))
        if engine_name == "postgres":
            await _until_waiting_on_a_lock(state)
        await transaction.commit()
    assert await correction == "Conflict"
    [after] = await all_sendings(state)
    assert (after.status, after.document_id, after.idempotency_key) == (
        "Sending",
        before.document_id,
        before.idempotency_key,
    )
    assert await _body_of(state, after) == b'{"v":1}'


async def _until_waiting_on_a_lock(state: AppState) -> None:
    """PostgreSQL: until another connection of this database waits for a row lock."""
    async with state.engine.connect() as watcher:
        for _ in range(2000):
            waiting = await watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
            await watcher.commit()
            if waiting:
                return
            await asyncio.sleep(0.005)
    raise AssertionError("the correction never waited for the claim's lock")


async def check_sent_records_what_was_delivered(state: AppState, receiver: HttpReceiver) -> int:
    """For every Sent sending: the receiver's last copy under its key is the stored document,
    and its Sent attempt's keyed digest is that document's.  Returns how many were checked."""
    last: dict[str | None, bytes] = {}
    for request in receiver.requests:
        last[request.header("Idempotency-Key")] = request.body
    async with state.sessions() as session:
        rows = (
            await session.execute(
                select(Sending, Document)
                .join(Document, Document.id == Sending.document_id)
                .where(Sending.status == "Sent")
            )
        ).all()
        for sending, document in rows:
            body = opened(state.keyring, document)
            assert last.get(sending.idempotency_key) == body, sending.invoice_id
            key = state.keyring.require(document.key_id)
            assert digest(key, sending.practice_id, sending.invoice_id, body) == document.digest
            attempt = await session.scalar(
                select(Attempt)
                .where(Attempt.sending_id == sending.id, Attempt.outcome == "Sent")
                .order_by(Attempt.number.desc())
                .limit(1)
            )
            assert attempt is not None
            assert attempt.document_digest == document.digest
    return len(rows)


async def test_corrections_racing_workers_never_record_what_was_not_delivered(
    via: Callable[[str], Via], system: str, state: AppState, receiver: HttpReceiver
) -> None:
    """Issue #10: many corrections (by all three ways) racing two running workers."""
    invoices = [invoice_body(document={"n": n, "v": 0}) for n in range(24)]
    for body in invoices:
        assert await via("single")(body) == "Taken"
    taken: dict[str, int] = {}  # invoice -> the last version intake took

    async def correct(index: int, body: dict[str, Any]) -> None:
        for version in (1, 2, 3):
            way = WAYS[(index + version) % len(WAYS)]
            outcome = await via(way)({**body, "Document": {"n": index, "v": version}})
            assert outcome in {"Taken", "Corrected", "Conflict"}, outcome
            if outcome != "Conflict":
                taken[body["InvoiceId"]] = version

    async with (
        running_worker(state, name="worker-a", concurrency=4) as one,
        running_worker(state, name="worker-b", concurrency=4) as two,
    ):
        workers = [asyncio.create_task(w.run()) for w in (one, two)]
        await asyncio.gather(*(correct(i, body) for i, body in enumerate(invoices)))
        for worker in (one, two):
            worker.stop()
        await asyncio.gather(*workers)
    async with running_worker(state, name="worker-c") as last:
        await last.drain()  # what was corrected after the workers' last round
    statuses = [(s.invoice_id, s.status, s.reason) for s in await all_sendings(state)]
    assert all(s[1] == "Sent" for s in statuses), [s for s in statuses if s[1] != "Sent"]
    assert await check_sent_records_what_was_delivered(state, receiver) == len(invoices)
    for sending in await all_sendings(state):
        version = taken.get(str(sending.invoice_id), 0)
        assert orjson.loads(await _body_of(state, sending))["v"] == version
