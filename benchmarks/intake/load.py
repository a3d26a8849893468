"""Driving a server with submissions: every request a different invoice, built before the clock.

The same raw HTTP/1.1 client as the other benchmarks (`benchmarks.loadgen`), POSTing instead of
GETting: the requests (single invoices, or batches of them) are made in full before the run,
so the client spends its CPU on sending and reading, not on building JSON.  Each worker keeps
one keep-alive connection; a response other than the expected status is an error (counted,
with its first bytes).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from benchmarks.cpu import CpuMeter, CpuUsage
from benchmarks.loadgen import Job, ProtocolError, RunResult, connect, run_fixed
from benchmarks.servers import HOST, Server

#: A document of a realistic size (about 1 KB): an invoice of a few lines.
_LINES = [
    {"Code": "0190", "Description": "Consultation", "Amount": "450.00", "Icd10": "J06.9"},
    {"Code": "0382", "Description": "Injection", "Amount": "120.50", "Icd10": "J06.9"},
    {"Code": "NAPPI-715948", "Description": "Amoxicillin 500mg x 15", "Amount": "89.90"},
    {"Code": "0201", "Description": "Follow-up within 14 days", "Amount": "0.00"},
]


def document(n: int) -> dict[str, Any]:
    return {
        "Number": f"INV-{n:08d}",
        "Patient": {"Name": "Test Patient", "MedicalAid": "Discovery", "Member": f"{n:010d}"},
        "Lines": _LINES,
        "Total": "660.40",
        "Notes": "Benchmark invoice; the receiver never sees it.",
    }


def invoice(n: int) -> dict[str, Any]:
    """Invoice `n`: a new id, to the practice's one system (Systems omitted)."""
    return {
        "InvoiceId": str(uuid.uuid4()),
        "EncounterId": str(uuid.uuid4()),
        "Document": document(n),
    }


def post(path: str, port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def single_requests(
    practices: Sequence[uuid.UUID], port: int, token: str, count: int, start: int = 0
) -> list[bytes]:
    """`count` single submissions, spread over the practices."""
    cycle = itertools.cycle(practices)
    return [
        post(f"/api/v1/{next(cycle)}/billing/invoices", port, token, orjson.dumps(invoice(n)))
        for n in range(start, start + count)
    ]


def batch_requests(
    practices: Sequence[uuid.UUID], port: int, token: str, batches: int, size: int, start: int = 0
) -> list[bytes]:
    """`batches` batch submissions of `size` invoices each, a practice per batch."""
    cycle = itertools.cycle(practices)
    requests = []
    for b in range(batches):
        first = start + b * size
        body = orjson.dumps([invoice(n) for n in range(first, first + size)])
        requests.append(post(f"/api/v1/{next(cycle)}/billing/invoices/batch", port, token, body))
    return requests


class PostWorkers:
    """`concurrency` keep-alive connections taking the next prepared request in turn."""

    def __init__(
        self, port: int, requests: Sequence[bytes], concurrency: int, expect: int, tally: bytes
    ) -> None:
        self.port = port
        self.requests: Iterator[bytes] = iter(requests)
        self.expect = expect
        self.connections: list[Any] = [None] * concurrency
        #: Occurrences of `tally` in the answers (a batch's "Accepted" outcomes).
        self.tally, self.tallied = tally, 0

    async def open(self) -> None:
        for i in range(len(self.connections)):
            self.connections[i] = await connect(HOST, self.port)

    def _job(self, index: int) -> Job:
        async def job() -> int:
            connection = self.connections[index]
            if connection is None or connection.closed:
                connection = self.connections[index] = await connect(HOST, self.port)
            response = await connection.request(next(self.requests), keep_body=True)
            if response.status != self.expect:
                body = (response.body or b"")[:300]
                raise ProtocolError(f"HTTP {response.status}: {body!r}")
            if self.tally:
                self.tallied += (response.body or b"").count(self.tally)
            return int(response.body_bytes)

        return job

    @property
    def jobs(self) -> list[Job]:
        return [self._job(i) for i in range(len(self.connections))]

    def close(self) -> None:
        for connection in self.connections:
            if connection is not None:
                connection.close()


@dataclass(slots=True)
class HttpRun:
    """A measured run: the client's view and the CPU it cost."""

    result: RunResult
    cpu: CpuUsage
    tallied: int = 0


async def drive(
    server: Server,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    expect: int,
    conninfo: str,
    time_limit_s: float,
    tally: bytes = b"",
) -> HttpRun:
    """Send every request in `requests` over `concurrency` connections, measured."""
    workers = PostWorkers(server.port, requests, concurrency, expect, tally)
    await workers.open()
    try:
        with CpuMeter(server.pid, conninfo) as meter:
            result = await run_fixed(workers.jobs, len(requests), time_limit_s)
        return HttpRun(result, meter.usage, workers.tallied)
    finally:
        workers.close()
        await asyncio.sleep(0)
