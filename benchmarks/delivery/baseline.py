"""Running the Celery BASELINE (benchmarks/delivery/celery_app.py) against a prepared queue.

1. enqueue: a separate process publishes one task per sending to a queue with a unique name
   (timed on its own: "enqueue/s");
2. drain: ``celery -A benchmarks.delivery.celery_app worker -Q <queue> --pool P -c N`` starts
   with every task already queued ("go" is its start, so the wall rate includes its start-up;
   the headline rate, from the rows' own timestamps, does not);
3. the worker gets a warm shutdown (SIGTERM), the queue is purged and deleted whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.delivery import meter
from benchmarks.delivery.drain import DrainResult, rates, rss_summary, verify, watch
from benchmarks.delivery.receiver import Receiver
from benchmarks.delivery.seed import BENCH_KEYS, Queue
from benchmarks.servers import stop_processes

REPO_ROOT = Path(__file__).resolve().parents[2]
ENQUEUE_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 30.0
BROKER = os.environ.get("DELIVERY_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")


def celery_env(queue_name: str, conninfo: str, url: str, prefetch: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DELIVERY_BENCH_BROKER=BROKER,
        DELIVERY_BENCH_QUEUE=queue_name,
        DELIVERY_BENCH_DB=conninfo,
        DELIVERY_BENCH_URL=url,
        DELIVERY_BENCH_PREFETCH=str(prefetch),
        INVOICE_OUTBOX_DOCUMENT_KEYS=BENCH_KEYS,
    )
    return env


def _module(command: str, env: dict[str, str], timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.delivery.celery_app", command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"celery_app {command} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_celery(
    queue: Queue,
    receiver: Receiver,
    *,
    pool: str,
    concurrency: int,
    prefetch: int,
    log_dir: Path,
    limit_s: float,
) -> DrainResult:
    db = queue.database
    queue_name = f"delivery_bench_{secrets.token_hex(5)}"
    env = celery_env(queue_name, db.conninfo, receiver.url, prefetch)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "benchmarks.delivery.celery_app",
        "worker",
        "-Q",
        queue_name,
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
        "-n",
        f"{queue_name}@%h",
    ]
    process: subprocess.Popen[bytes] | None = None
    enqueued: dict[str, Any] = {}
    cleaned: dict[str, Any] = {}
    pg_cpu: meter.PgCpu | None = None
    try:
        print(f"    enqueueing {queue.count:,} tasks on {queue_name} ...", flush=True)
        enqueued = _module("enqueue", env, ENQUEUE_TIMEOUT_S)
        depth = _module("depth", env, 60)["depth"]
        print(
            f"    enqueued {enqueued['enqueued']:,} in {enqueued['seconds']:.1f} s "
            f"(queue depth {depth:,})",
            flush=True,
        )
        meter.wait_for_quiet()
        sessions_before = meter.sessions(db.conninfo)
        pg_cpu = meter.PgCpu(db.conninfo)
        pg_cpu.sample()
        before = meter.snapshot([], receiver.pid)  # the worker's CPU starts at zero
        log = log_dir / f"celery-{pool}-{concurrency}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        go = time.perf_counter()
        watched = watch(db.conninfo, queue.count, [process], go=go, limit_s=limit_s, pg_cpu=pg_cpu)
        pg_cpu.sample()
        after = meter.snapshot([process.pid], receiver.pid)
        children = meter.descendants(process.pid)
        child_rss = [meter.rss_kib(pid)[0] for pid in children]
        hwm = meter.rss_kib(process.pid)[1]
    finally:
        if pg_cpu is not None:
            pg_cpu.close()
        if process is not None:
            stop_processes(process, timeout=STOP_TIMEOUT_S)  # warm shutdown
        try:
            cleaned = _module("cleanup", env, 60)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            print(f"    warning: could not purge/delete {queue_name}: {exc}", flush=True)
    sessions_opened = meter.sessions(db.conninfo) - sessions_before  # includes 2-4 of ours
    verified = verify(db.conninfo, queue.count, receiver)
    rate, wall_rate = rates(verified, watched)
    rss = [
        {
            "pid": process.pid,
            "role": "celery main process",
            "vm_hwm_kib": hwm,
            "children_rss_kib_at_end": child_rss,
            **rss_summary(watched.samples, 0, queue.count),
        }
    ]
    return DrainResult(
        contender="celery",
        config=f"celery worker --pool {pool} -c {concurrency}, prefetch x{prefetch}",
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
            "pool": pool,
            "concurrency": concurrency,
            "prefetch_multiplier": prefetch,
            "queue": queue_name,
            "db_connections_opened": sessions_opened,
            "enqueue_s": enqueued.get("seconds"),
            "enqueue_per_s": round(enqueued["enqueued"] / enqueued["seconds"], 1)
            if enqueued.get("seconds")
            else None,
            "cleanup": cleaned,
            "cpu_includes_worker_start": True,
            "poll_query_s": round(watched.poll_query_s, 3),
            "queue_fill_s": round(queue.seconds, 1),
            "queue_check": queue.check,
        },
        samples=watched.samples,
    )
