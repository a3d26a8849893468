"""OURS: `invoice-outbox worker --concurrency N` processes draining the queue.

The workers are started as an operator starts them, from this virtualenv, with the database
URL, ``INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS=true`` (the receiver is on loopback) and
``INVOICE_OUTBOX_POLL_SECONDS=1``; their JSON logs (one line per delivery, as in production)
go to a file.  The queue's system is created *disabled* (a held system: nothing is claimed),
so the workers can start, connect and ``LISTEN`` first.  "Go" is one transaction that enables
the system and sends the ``NOTIFY`` intake sends; from then on the workers claim and deliver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from benchmarks.delivery import meter
from benchmarks.delivery.drain import DrainResult, rates, rss_summary, verify, watch
from benchmarks.delivery.profiling import PySpy
from benchmarks.delivery.receiver import Receiver
from benchmarks.delivery.seed import BENCH_KEYS, SYSTEM, Queue
from benchmarks.servers import stop_processes
from invoice_outbox.db.waker import CHANNEL

BIN_DIR = Path(sys.executable).parent
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def worker_env(database_url: str, var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_OUTBOX_")}
    env.update(
        INVOICE_OUTBOX_DATABASE_URL=database_url,
        INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS="true",
        INVOICE_OUTBOX_POLL_SECONDS="1",
        INVOICE_OUTBOX_VAR_DIR=str(var_dir),
        INVOICE_OUTBOX_DOCUMENT_KEYS=BENCH_KEYS,
    )
    return env


def _listening(conninfo: str) -> int:
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query = %s",
            (f"LISTEN {CHANNEL}",),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_ready(conninfo: str, processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Every worker logged its start and holds its LISTEN connection (bounded)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{log.read_text()[-3000:]}")
        started = all('"worker.start"' in log.read_text(errors="replace") for log in logs)
        if started and _listening(conninfo) >= len(processes):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not ready within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def _go(conninfo: str) -> float:
    """Enable the system and wake the workers, in one transaction; return when committed."""
    with psycopg.connect(conninfo) as connection:
        connection.execute(
            "UPDATE systems SET enabled = true, updated_at = now() WHERE name = %s", (SYSTEM,)
        )
        connection.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        connection.commit()
        return time.perf_counter()


def run_ours(
    queue: Queue,
    receiver: Receiver,
    *,
    workers: int,
    concurrency: int,
    log_dir: Path,
    limit_s: float,
    profile_to: Path | None = None,
) -> DrainResult:
    """Start `workers` worker processes, go, watch until drained, verify, stop them."""
    db = queue.database
    env = worker_env(db.sqlalchemy_url, log_dir)
    command = [str(BIN_DIR / "invoice-outbox"), "worker", "--concurrency", str(concurrency)]
    logs = [log_dir / f"ours-{workers}w-{i}.log" for i in range(workers)]
    processes: list[subprocess.Popen[bytes]] = []
    spy: PySpy | None = None
    pg_cpu: meter.PgCpu | None = None
    try:
        for log in logs:
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        _wait_ready(db.conninfo, processes, logs)
        pids = [p.pid for p in processes]
        idle = [meter.rss_kib(pid)[0] for pid in pids]
        meter.wait_for_quiet()
        sessions_before = meter.sessions(db.conninfo)
        pg_cpu = meter.PgCpu(db.conninfo)
        pg_cpu.sample()
        before = meter.snapshot(pids, receiver.pid)
        go = _go(db.conninfo)
        if profile_to is not None:
            spy = PySpy.start(pids[0], profile_to)
        watched = watch(db.conninfo, queue.count, processes, go=go, limit_s=limit_s, pg_cpu=pg_cpu)
        pg_cpu.sample()
        after = meter.snapshot(pids, receiver.pid)
        if spy is not None:
            spy.stop()
        hwm = [meter.rss_kib(pid)[1] for pid in pids]
    finally:
        if spy is not None:
            spy.stop()
        if pg_cpu is not None:
            pg_cpu.close()
        stop_processes(*processes, timeout=STOP_TIMEOUT_S)
    sessions_opened = meter.sessions(db.conninfo) - sessions_before  # includes 2-4 of ours
    verified = verify(db.conninfo, queue.count, receiver)
    rate, wall_rate = rates(verified, watched)
    rss = [
        {
            "pid": pid,
            "idle_before_go_kib": idle[i],
            "vm_hwm_kib": hwm[i],
            **rss_summary(watched.samples, i, queue.count),
        }
        for i, pid in enumerate(pids)
    ]
    claim_rounds = verified.get("distinct_sending_times") or 0
    return DrainResult(
        contender="ours",
        config=f"{workers} x invoice-outbox worker --concurrency {concurrency}",
        count=queue.count,
        rate=rate,
        wall_rate=wall_rate,
        span_s=verified.get("span_s"),
        wall_s=watched.wall_s,
        stopped_because=watched.stopped_because,
        cpu=meter.usage(before, after, pg_cpu.seconds).as_dict(),
        verify=verified,
        rss=rss,
        extra={
            "workers": workers,
            "concurrency": concurrency,
            "claim_rounds_approx": claim_rounds,
            "db_connections_opened": sessions_opened,
            "sendings_per_claim_round": round(queue.count / claim_rounds, 2)
            if claim_rounds
            else None,
            "poll_query_s": round(watched.poll_query_s, 3),
            "queue_fill_s": round(queue.seconds, 1),
            "queue_check": queue.check,
        },
        samples=watched.samples,
    )
