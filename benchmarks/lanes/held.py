"""Held work costs nothing: 10,000 sendings for a switched-off system, and nothing else to do.

One `invoice-outbox worker` (default settings: 5 s poll) starts; once its first sweep has
given the stale leases back (its start-up done), its CPU time over the next `seconds`, as a
share of one core, is the figure (target: under 1 %).
Some of the held sendings are "in flight" with leases that expired (a worker died holding
them): the worker must give them back to the queue once, not spin on them.  Its own count of
claim rounds comes from its stop log line.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.cpu import process_cpu_s
from benchmarks.database import bench_database
from benchmarks.delivery.ours import BIN_DIR, _wait_ready, worker_env
from benchmarks.lanes.seed import Lane, analyse, queue, seed_lanes
from benchmarks.servers import stop_processes

STALE_LEASES = 50


@dataclass(frozen=True, slots=True)
class Held:
    held: int
    seconds: float
    worker_cpu_s: float
    core_share: float
    claim_rounds: int | None
    released_stale_leases: int
    still_pending: int

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _stop_line(log: Path) -> dict[str, Any]:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if '"worker.stop"' in line:
            data: dict[str, Any] = json.loads(line)
            return data
    return {}


def _wait_released(conninfo: str, deadline_s: float = 60.0) -> None:
    """Until the worker's first sweep gave the stale leases back (its start-up is done)."""
    deadline = time.monotonic() + deadline_s
    with psycopg.connect(conninfo, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT count(*) FROM sendings WHERE status = 'Sending'"
            ).fetchone()
            if row is not None and int(row[0]) == 0:
                return
            time.sleep(0.1)
    raise RuntimeError("the worker did not release the stale leases")


def held(receiver_url: str, count: int, seconds: float, log_dir: Path) -> Held:
    with bench_database() as database:
        seed_lanes(database, [Lane("Mailbox", receiver_url, enabled=False)], {})
        queue(database, ["Mailbox"], count)
        expired = datetime.now(UTC) - timedelta(minutes=5)
        with psycopg.connect(database.conninfo) as connection:
            connection.execute(
                "UPDATE sendings SET status = 'Sending', attempts = 1, round_attempts = 1, "
                "lease_owner = 'a-dead-worker', lease_expires_at = %s "
                "WHERE id IN (SELECT id FROM sendings ORDER BY id LIMIT %s)",
                (expired, STALE_LEASES),
            )
            connection.commit()
        analyse(database)
        env = worker_env(database.sqlalchemy_url, log_dir)
        env.pop("INVOICE_OUTBOX_POLL_SECONDS", None)  # the default poll, as deployed
        log = log_dir / "lanes-held-worker.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(BIN_DIR / "invoice-outbox"), "worker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(database.conninfo, [process], [log])
            _wait_released(database.conninfo)
            start_cpu, start = process_cpu_s(process.pid), time.perf_counter()
            time.sleep(seconds)  # the measurement window itself: nothing to wait for
            used = process_cpu_s(process.pid) - start_cpu
            elapsed = time.perf_counter() - start
        finally:
            stop_processes(process, timeout=30)
        with psycopg.connect(database.conninfo) as connection:
            row = connection.execute(
                "SELECT count(*) FILTER (WHERE status = 'Pending'), "
                "(SELECT count(*) FROM attempts WHERE worker = 'a-dead-worker') FROM sendings"
            ).fetchone()
    assert row is not None
    stop = _stop_line(log)
    return Held(
        held=count,
        seconds=round(elapsed, 1),
        worker_cpu_s=round(used, 3),
        core_share=round(used / elapsed, 5),
        claim_rounds=stop.get("claim_rounds"),
        released_stale_leases=int(row[1]),
        still_pending=int(row[0]),
    )
