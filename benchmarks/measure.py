"""One measurement: a contender, a list, a format and a concurrency, driven by the same client.

For an HTTP contender: open `concurrency` keep-alive connections, warm up (requests not
counted), then send a fixed number of requests (stopping early at the time limit) while the
server's memory is sampled and CPU time is accounted (cpu.py); the idle RSS is read just
before the measured requests.  For the floor: the same runner, each request a ``psql`` process
(see floor.py); no memory figures.  The caller first waits (bounded) for a quiet machine and
passes how busy it still was as `busy_before`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.cpu import CpuMeter, CpuUsage
from benchmarks.database import BenchDatabase
from benchmarks.floor import floor_jobs
from benchmarks.loadgen import HttpWorkers, RunResult, get_request, run_fixed
from benchmarks.memory import PeakSampler
from benchmarks.servers import HOST, Server

ROUTE = "/api/v1/billing/invoices/aborted"
ACCEPT = {"json": "application/json", "xml": "application/xml"}


@dataclass(frozen=True, slots=True)
class Pass:
    """How a contender is driven: workers, measured requests, warm-up requests, time limit."""

    concurrency: int
    requests: int
    warmup: int
    time_limit_s: float


@dataclass(slots=True)
class Measurement:
    """One row of the results table (times in ms, memory in KiB)."""

    phase: str
    table_rows: int
    aborted_rows: int
    contender: str
    format: str
    concurrency: int
    planned: int
    completed: int
    elapsed_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    response_bytes: int
    errors: list[str] = field(default_factory=list)
    rss_idle_kib: int | None = None
    rss_peak_kib: int | None = None
    vm_hwm_kib: int | None = None
    rss_samples: int | None = None
    server_cpu_ms_per_req: float | None = None
    db_cpu_ms_per_req: float | None = None
    machine_busy_pct: float | None = None
    foreign_cpu_pct: float | None = None
    busy_before_pct: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _measurement(
    result: RunResult, *, phase: str, rows: int, aborted: int, contender: str, fmt: str
) -> Measurement:
    latencies = result.latencies_s
    return Measurement(
        phase=phase,
        table_rows=rows,
        aborted_rows=aborted,
        contender=contender,
        format=fmt,
        concurrency=result.concurrency,
        planned=result.planned,
        completed=result.completed,
        elapsed_s=round(result.elapsed_s, 3),
        rps=round(result.rps, 3),
        p50_ms=round(result.percentile_ms(50), 2),
        p99_ms=round(result.percentile_ms(99), 2),
        mean_ms=round(sum(latencies) / len(latencies) * 1000, 2) if latencies else float("nan"),
        max_ms=round(max(latencies) * 1000, 2) if latencies else float("nan"),
        response_bytes=result.response_bytes,
        errors=sorted(set(result.errors))[:5],
    )


def _add_cpu(row: Measurement, usage: CpuUsage, busy_before: float, http: bool) -> None:
    done = max(row.completed, 1)
    row.machine_busy_pct = round(100 * usage.share(usage.machine_busy_s), 1)
    row.busy_before_pct = round(100 * busy_before, 1)
    if http:  # the floor's backends live one request each, so they cannot be told apart
        row.server_cpu_ms_per_req = round(1000 * usage.server_s / done, 2)
        row.db_cpu_ms_per_req = round(1000 * usage.backends_s / done, 2)
        row.foreign_cpu_pct = round(100 * usage.share(usage.foreign_s), 1)


def admin_request(port: int, token: str, fmt: str) -> bytes:
    """The measured request: GET the aborted list as an admin, in `fmt`."""
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT[fmt]}
    return get_request(HOST, port, ROUTE, headers)


async def measure_http(
    server: Server,
    token: str,
    fmt: str,
    plan: Pass,
    conninfo: str,
    *,
    phase: str,
    rows: int,
    aborted: int,
    busy_before: float,
) -> Measurement:
    """Drive `server` per `plan`; memory from /proc/<pid>/status around the measured requests."""
    workers = HttpWorkers(
        HOST, server.port, admin_request(server.port, token, fmt), plan.concurrency
    )
    try:
        await workers.open()
        await run_fixed(workers.jobs, plan.warmup, plan.time_limit_s)
        with CpuMeter(server.pid, conninfo) as cpu, PeakSampler(server.pid) as memory:
            result = await run_fixed(workers.jobs, plan.requests, plan.time_limit_s)
    finally:
        workers.close()
    row = _measurement(
        result, phase=phase, rows=rows, aborted=aborted, contender=server.name, fmt=fmt
    )
    row.rss_idle_kib = memory.idle_kib
    row.rss_peak_kib = memory.peak_kib
    row.vm_hwm_kib = memory.hwm_kib or None
    row.rss_samples = memory.samples
    _add_cpu(row, cpu.usage, busy_before, http=True)
    return row


async def measure_floor(
    database: BenchDatabase,
    plan: Pass,
    *,
    phase: str,
    rows: int,
    aborted: int,
    size: int,
    busy_before: float,
) -> Measurement:
    """The floor, per `plan` (`size`: bytes of its JSON, measured once beforehand)."""
    jobs = floor_jobs(database, plan.concurrency)
    await run_fixed(jobs, plan.warmup, plan.time_limit_s)
    with CpuMeter(None, database.conninfo) as cpu:
        result = await run_fixed(jobs, plan.requests, plan.time_limit_s)
    result.response_bytes = size
    row = _measurement(
        result, phase=phase, rows=rows, aborted=aborted, contender="floor", fmt="json"
    )
    _add_cpu(row, cpu.usage, busy_before, http=False)
    return row
