"""Drains: one `invoice-outbox worker` process emptying a queue spread over several lanes.

* SLOW LANES: 20 systems whose receiver answers after 200 ms, 1,000 sendings each, default
  lanes (MaxInFlight 8) and the default worker cap (256): the ideal is
  min(256, 20 x 8) / 0.2 s = 800 deliveries/s.
* FAST LANE: one system whose receiver answers at once (MaxInFlight 64, 64 in flight), as
  `benchmarks.delivery` measures it;
* TODAY (the named baseline of CPU per delivery): the fast lane drained by the worker of
  another source tree (``--today-src``, e.g. the commit before lanes, unpacked with
  ``git archive <commit> src | tar -x -C DIR``), ``--concurrency 64``.  Its process runs with
  ``PYTHONPATH`` pointing at that tree, and the database's ``alembic_version`` is set to that
  tree's head (the columns lanes added are left in place; that worker does not read them).

The systems are created switched off, so the worker starts, connects and LISTENs first; "go"
is one transaction that switches them all on and sends the NOTIFY intake sends.  Every run
checks each sending ended Sent exactly once with one attempt, and the receiver saw each key
once (`benchmarks.delivery.drain.verify`).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.database import bench_database
from benchmarks.delivery import meter
from benchmarks.delivery.drain import verify, watch
from benchmarks.delivery.ours import BIN_DIR, _wait_ready, worker_env
from benchmarks.delivery.receiver import Receiver
from benchmarks.lanes.seed import Lane, analyse, queue, seed_lanes
from benchmarks.servers import stop_processes
from invoice_outbox.db.waker import CHANNEL

SLOW_MS = 200
LANES = 20
DEFAULT_LIMIT = 8
DEFAULT_CAP = 256


@dataclass(frozen=True, slots=True)
class Drain:
    """One drain: deliveries/s (first attempt to last Sent, as the delivery benchmark), the
    worker's CPU per delivery, the ideal rate, and the raw numbers."""

    name: str
    count: int
    rate: float | None
    ideal: float | None
    #: Mean attempt duration (ms), as the worker measured it: the receiver's answer time
    #: plus whatever a busy machine adds.
    mean_attempt_ms: float | None
    #: Share of the lanes' slots that held a delivery over the drain (sum of attempt
    #: durations / (slots x span)): how well the scheduler kept the lanes full.
    slot_occupancy: float | None
    worker_cpu_ms: float | None
    postgres_cpu_ms: float | None
    verified: dict[str, Any]
    cpu: dict[str, float]
    stopped_because: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "rate_per_s": self.rate,
            "ideal_per_s": self.ideal,
            "mean_attempt_ms": self.mean_attempt_ms,
            "slot_occupancy": self.slot_occupancy,
            "worker_cpu_ms_per_delivery": self.worker_cpu_ms,
            "postgres_cpu_ms_per_delivery": self.postgres_cpu_ms,
            "stopped_because": self.stopped_because,
            "verify": self.verified,
            "cpu": self.cpu,
        }


def _go(conninfo: str) -> float:
    with psycopg.connect(conninfo) as connection:
        connection.execute("UPDATE systems SET enabled = true, disabled_at = NULL")
        connection.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        connection.commit()
        return time.perf_counter()


def _head_of(src: Path) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            # The migrations' runner moved (db/migrate.py, then migrate.py): either tree.
            "try:\n from invoice_outbox.migrate import head_revision as h\n"
            "except ImportError:\n from invoice_outbox.db.migrate import head_revision as h\n"
            "print(h())",
        ],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def drain(
    name: str,
    receiver: Receiver,
    lanes: list[Lane],
    count: int,
    *,
    ideal: float | None,
    log_dir: Path,
    limit_s: float,
    worker_args: tuple[str, ...] = (),
    src: Path | None = None,
) -> Drain:
    """Queue `count` sendings over `lanes` (switched off), start a worker (of `src`, when
    given), go, watch, verify."""
    with bench_database() as database:
        off = [dataclasses.replace(lane, enabled=False) for lane in lanes]
        seed_lanes(database, off, {})
        queue(database, [lane.name for lane in lanes], count)
        analyse(database)
        env = worker_env(database.sqlalchemy_url, log_dir)
        if src is not None:
            env["PYTHONPATH"] = str(src)
            with psycopg.connect(database.conninfo) as connection:
                connection.execute("UPDATE alembic_version SET version_num = %s", (_head_of(src),))
                connection.commit()
        log = log_dir / f"lanes-{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(BIN_DIR / "invoice-outbox"), "worker", *worker_args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        pg_cpu: meter.PgCpu | None = None
        try:
            _wait_ready(database.conninfo, [process], [log])
            meter.wait_for_quiet(max_wait_s=30)
            receiver.reset()
            pg_cpu = meter.PgCpu(database.conninfo)
            pg_cpu.sample()
            before = meter.snapshot([process.pid], receiver.pid)
            go = _go(database.conninfo)
            watched = watch(
                database.conninfo, count, [process], go=go, limit_s=limit_s, pg_cpu=pg_cpu
            )
            pg_cpu.sample()
            after = meter.snapshot([process.pid], receiver.pid)
        finally:
            if pg_cpu is not None:
                pg_cpu.close()
            stop_processes(process, timeout=30)
        verified = verify(database.conninfo, count, receiver)
        with psycopg.connect(database.conninfo) as connection:
            row = connection.execute("SELECT avg(duration_ms), sum(duration_ms) FROM attempts")
            mean_ms, total_ms = row.fetchone() or (None, None)
    slots = sum(lane.max_in_flight for lane in lanes)
    usage = meter.usage(before, after, pg_cpu.seconds if pg_cpu else 0.0)
    sent = int(verified.get("sent") or 0)
    span = verified.get("span_s")
    return Drain(
        name=name,
        count=count,
        rate=sent / span if span else None,
        ideal=ideal,
        mean_attempt_ms=round(float(mean_ms), 1) if mean_ms is not None else None,
        slot_occupancy=(
            round(float(total_ms) / (slots * 1000 * span), 3) if total_ms and span else None
        ),
        worker_cpu_ms=1000 * usage.contender_s / sent if sent else None,
        postgres_cpu_ms=1000 * usage.postgres_s / sent if sent else None,
        verified=verified,
        cpu=usage.as_dict(),
        stopped_because=watched.stopped_because,
    )


def slow_lanes(receiver: Receiver, count: int, log_dir: Path, limit_s: float) -> Drain:
    lanes = [
        Lane(f"Switch{i:02d}", receiver.slow_url(SLOW_MS, f"switch{i:02d}")) for i in range(LANES)
    ]
    ideal = min(DEFAULT_CAP, LANES * DEFAULT_LIMIT) / (SLOW_MS / 1000)
    return drain(
        "slow-lanes", receiver, lanes, count, ideal=ideal, log_dir=log_dir, limit_s=limit_s
    )


def fast_lane(
    receiver: Receiver, count: int, log_dir: Path, limit_s: float, src: Path | None = None
) -> Drain:
    """One lane answering at once, 64 in flight; with `src`, that tree's worker drains it."""
    lanes = [Lane("Receiver", receiver.url, max_in_flight=64)]
    return drain(
        "today" if src else "fast-lane",
        receiver,
        lanes,
        count,
        ideal=None,
        log_dir=log_dir,
        limit_s=limit_s,
        worker_args=("--concurrency", "64"),
        src=src,
    )
