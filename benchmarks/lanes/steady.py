"""Steady offered load: invoices submitted over HTTP at a fixed rate, timed from 202 to Sent.

`invoice-outbox serve --no-worker` (the API) and one `invoice-outbox worker` run on a fresh
PostgreSQL database.  An open-loop generator (each submission starts at its own scheduled
time, whether or not earlier ones were answered) POSTs invoices for one system at `rate` per
second for `seconds`, and records when each 202 arrived.  Afterwards each invoice's
``sent_at`` (written by the worker when it recorded the delivery) gives its time from 202 to
Sent; a delivery recorded before its 202 reached the client counts as 0.

With `backlog`, another system (a slow receiver) has that many sendings queued before the
load starts, and the load begins once its lane is full.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg

from benchmarks.cpu import process_cpu_s
from benchmarks.database import bench_database
from benchmarks.delivery import meter
from benchmarks.delivery.ours import BIN_DIR, _wait_ready
from benchmarks.delivery.seed import BENCH_KEYS, PRACTICE
from benchmarks.lanes.seed import Lane, seed_lanes
from benchmarks.servers import admin_token, ours_command, serve, service_env, stop_processes

DRAIN_LIMIT_S = 120.0
SECRET = "lanes-benchmark-signing-key-" + "k" * 40


@dataclass(frozen=True, slots=True)
class Latency:
    """One steady run: offered and achieved rates, and the 202-to-Sent times (ms)."""

    name: str
    offered_per_s: float
    seconds: float
    submitted: int
    accepted: int
    sent: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    submit_p50_ms: float | None
    worker_cpu_ms: float | None
    api_cpu_ms: float | None
    machine_busy_share: float

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-share * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


async def _offer(
    port: int, token: str, system: str, rate: float, seconds: float
) -> list[tuple[str, float, float, int]]:
    """Submit at `rate`/s for `seconds`; (invoice id, sent at, answered at, status) each."""
    url = f"http://127.0.0.1:{port}/api/v1/{PRACTICE}/billing/invoices"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    results: list[tuple[str, float, float, int]] = []
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(number: int) -> None:
            invoice = str(uuid.uuid4())
            body = orjson.dumps(
                {
                    "InvoiceId": invoice,
                    "EncounterId": str(uuid.uuid4()),
                    "Systems": [system],
                    "Document": {"InvoiceNumber": f"INV-{number:07d}", "Total": "850.75"},
                }
            )
            started = time.time()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                results.append((invoice, started, time.time(), response.status))

        total = int(rate * seconds)
        begin = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


def _wait_lane_full(conninfo: str, system: str, limit: int, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    with psycopg.connect(conninfo, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT count(*) FROM sendings WHERE system = %s AND status = 'Sending'", (system,)
            ).fetchone()
            if row and int(row[0]) >= limit:
                return
            time.sleep(0.05)
    raise RuntimeError(f"the {system} lane did not fill within {deadline_s:.0f} s")


def _sent_times(conninfo: str, invoices: list[str], system: str, count: int) -> dict[str, float]:
    """Wait (bounded) until `count` of them are Sent; their sent_at as Unix times."""
    deadline = time.monotonic() + DRAIN_LIMIT_S
    with psycopg.connect(conninfo, autocommit=True) as connection:
        while True:
            rows = connection.execute(
                "SELECT invoice_id::text, extract(epoch FROM sent_at) FROM sendings "
                "WHERE system = %s AND status = 'Sent' AND invoice_id = ANY(%s::uuid[])",
                (system, invoices),
            ).fetchall()
            if len(rows) >= count or time.monotonic() > deadline:
                return {invoice: float(at) for invoice, at in rows}
            time.sleep(0.5)


def steady(
    name: str,
    receiver_url: str,
    receiver_pid: int,
    *,
    rate: float,
    seconds: float,
    log_dir: Path,
    backlog: tuple[Lane, int] | None = None,
) -> Latency:
    fast = Lane("Ledger", receiver_url, max_in_flight=64)
    lanes = [fast, *([backlog[0]] if backlog else [])]
    with bench_database() as database:
        seed_lanes(database, lanes, {backlog[0].name: backlog[1]} if backlog else {})
        var_dir = log_dir / f"var-{name}"
        var_dir.mkdir(parents=True, exist_ok=True)
        env = service_env(database.sqlalchemy_url, var_dir, SECRET)
        env.update(
            INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS="true", INVOICE_OUTBOX_DOCUMENT_KEYS=BENCH_KEYS
        )
        token = admin_token(env)
        worker_log = log_dir / f"lanes-{name}-worker.log"
        with serve(f"lanes-{name}-api", ours_command(), env, log_dir) as api:
            with worker_log.open("wb") as out:
                worker = subprocess.Popen(
                    [str(BIN_DIR / "invoice-outbox"), "worker"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                _wait_ready(database.conninfo, [worker], [worker_log])
                if backlog:
                    _wait_lane_full(database.conninfo, backlog[0].name, backlog[0].max_in_flight)
                meter.wait_for_quiet(max_wait_s=20)
                before = meter.snapshot([worker.pid], receiver_pid)
                api_before = process_cpu_s(api.pid)
                results = asyncio.run(_offer(api.port, token, fast.name, rate, seconds))
                accepted = [r for r in results if r[3] == 202]
                sent = _sent_times(
                    database.conninfo, [r[0] for r in accepted], fast.name, len(accepted)
                )
                after = meter.snapshot([worker.pid], receiver_pid)
                api_after = process_cpu_s(api.pid)
            finally:
                stop_processes(worker, timeout=30)
    waits = [max(0.0, sent[r[0]] - r[2]) * 1000 for r in accepted if r[0] in sent]
    submits = [(r[2] - r[1]) * 1000 for r in results]
    usage = meter.usage(before, after, 0.0)
    return Latency(
        name=name,
        offered_per_s=rate,
        seconds=seconds,
        submitted=len(results),
        accepted=len(accepted),
        sent=len(sent),
        p50_ms=_round(percentile(waits, 0.50)),
        p90_ms=_round(percentile(waits, 0.90)),
        p99_ms=_round(percentile(waits, 0.99)),
        max_ms=_round(max(waits) if waits else None),
        submit_p50_ms=_round(percentile(submits, 0.50)),
        worker_cpu_ms=_round(1000 * usage.contender_s / len(sent)) if sent else None,
        api_cpu_ms=_round(1000 * (api_after - api_before) / len(results)) if results else None,
        machine_busy_share=round(
            usage.machine_busy_s / (usage.elapsed_s * (os.cpu_count() or 1)), 3
        ),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
