"""Bulk resend of ~100k sendings: duration, rows/s, and the worker's memory during the job.

The API server (``serve --no-worker``) accepts ``POST /api/v1/billing/resends``; resend jobs are
run by a process with a worker, so an ``invoice-outbox worker`` is started next to it.  All
systems are disabled beforehand (see `benchmarks.admin.seed.hold_systems`): the worker holds
their sendings and only the job changes rows.  Its RSS is read before the job (after it has
settled) and sampled every 5 ms during it (`benchmarks.memory.PeakSampler`).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.memory import PeakSampler, read_kib
from benchmarks.servers import BIN_DIR, HOST, REPO_ROOT, stop_processes

JOB_TIMEOUT_S = 900.0
POLL_S = 0.25
SETTLE_S = 5.0
#: The most `RatePerSecond` accepts (the API caps it at 10,000).
RATE_PER_SECOND = 10_000


@contextmanager
def worker_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``invoice-outbox worker`` until the block ends (SIGTERM, then SIGKILL if it hangs)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN_DIR / "invoice-outbox"), "worker"],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        stop_processes(process)


def _call(port: int, method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        if response.status not in (200, 202):
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {raw[:500]!r}")
        answer: dict[str, Any] = json.loads(raw)
        return answer
    finally:
        connection.close()


@dataclass(slots=True)
class ResendResult:
    """What the job did, how fast, and the worker's memory."""

    selection: dict[str, Any]
    job_id: str = ""
    status: str = ""
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    batches: int | None = None
    post_ms: float = 0.0
    duration_s: float = 0.0
    rows_per_s: float = 0.0
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    rss_after_kib: int = 0
    rss_samples: int = 0
    hwm_reset_ok: bool = False
    job: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "selection": self.selection,
            "job_id": self.job_id,
            "status": self.status,
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "batches": self.batches,
            "post_ms": round(self.post_ms, 1),
            "duration_s": round(self.duration_s, 2),
            "rows_per_s": round(self.rows_per_s, 1),
            "rate_per_second_asked": RATE_PER_SECOND,
            "worker_rss_before_mib": round(self.rss_before_kib / 1024, 1),
            "worker_rss_peak_mib": round(self.rss_peak_kib / 1024, 1),
            "worker_rss_after_mib": round(self.rss_after_kib / 1024, 1),
            "worker_rss_growth_mib": round((self.rss_peak_kib - self.rss_before_kib) / 1024, 1),
            "rss_samples": self.rss_samples,
            "hwm_reset_ok": self.hwm_reset_ok,
            "job": self.job,
        }


def settle(pid: int, seconds: float = SETTLE_S) -> int:
    """Wait `seconds` (the worker's first polls, imports, connections); return its RSS (KiB)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
    return read_kib(pid)["VmRSS"]


def run_resend(
    port: int, token: str, worker: subprocess.Popen[bytes], selection: dict[str, Any]
) -> ResendResult:
    """POST the job, poll it until it is no longer Running (bounded), measure the worker."""
    result = ResendResult(selection=selection)
    if worker.poll() is not None:
        raise RuntimeError("the worker exited before the job started")
    result.rss_before_kib = settle(worker.pid)
    body = {**selection, "DryRun": False, "Reason": "bench", "RatePerSecond": RATE_PER_SECOND}
    with PeakSampler(worker.pid) as peak:
        started = time.perf_counter()
        answer = _call(port, "POST", "/api/v1/billing/resends", token, body)
        result.post_ms = (time.perf_counter() - started) * 1000
        data = answer["Data"]
        result.job_id = str(data["JobId"])
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while data["Status"] == "Running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {result.job_id} still Running after {JOB_TIMEOUT_S} s")
            if worker.poll() is not None:
                raise RuntimeError("the worker exited during the job")
            time.sleep(POLL_S)
            data = _call(port, "GET", f"/api/v1/billing/resends/{result.job_id}", token)["Data"]
        result.duration_s = time.perf_counter() - started
    result.rss_peak_kib = max(peak.peak_kib, result.rss_before_kib)
    result.rss_samples = peak.samples
    result.hwm_reset_ok = peak.reset_ok
    result.rss_after_kib = read_kib(worker.pid)["VmRSS"]
    result.status = str(data["Status"])
    result.total = int(data["Total"])
    result.done = int(data["Done"])
    result.skipped = int(data["Skipped"])
    result.failed = int(data["Failed"])
    batches = data.get("Batches")
    result.batches = int(batches) if isinstance(batches, int) else None
    result.rows_per_s = result.done / result.duration_s if result.duration_s else 0.0
    result.job = {k: v for k, v in data.items() if k != "Sample"}
    return result
