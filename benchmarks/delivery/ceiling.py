"""CEILING: PostgreSQL running our worker's delivery SQL with nothing else (pgbench).

The script below is the SQL our worker sends for one delivery, statement for statement, with
the Python, the HTTP and the receiver taken away.  One pgbench "transaction" (one run of the
script) is one delivery, so transactions/s = deliveries/s.  Each client:

* every `batch` deliveries, runs a **claim round** in one transaction, as ``Worker._fill``:
  the lease take-over SELECT (``FOR UPDATE SKIP LOCKED``), the probe UPDATE on ``systems``,
  the claim ``UPDATE sendings ... WHERE id IN (SELECT ... ORDER BY next_attempt_at LIMIT n
  FOR UPDATE SKIP LOCKED) RETURNING ...`` (status Sending, a lease, attempts + 1), the
  ``systems`` read and the read of the claimed rows' documents (bodies included);
* for each delivery, **records the outcome** in one transaction, as ``outcomes.record``: the
  guarded ``UPDATE sendings SET status = 'Sent', ...`` of one row it holds, the ``INSERT INTO
  attempts``, and the no-op health ``UPDATE systems ... WHERE circuit <> 'Healthy' OR ...``.
  pgbench cannot keep the claimed ids in memory as the worker does, so the UPDATE finds one of
  its held rows with a sub-select on ``status = 'Sending' AND lease_owner = <client>`` (the
  small partial index of in-flight rows): one extra index probe, no extra round trip.

Run with ``-M prepared`` (psycopg prepares repeated statements too), ``-n`` (no vacuum), a
fixed number of transactions per client (``-t``, the queue split evenly) and the per-client
counters ``k`` (deliveries done) and ``t`` (deliveries to do) so the last claim takes only
what is left.  Commits are durable (``synchronous_commit`` as configured, on by default).
"""

from __future__ import annotations

import re
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.delivery import meter
from benchmarks.delivery.drain import DrainResult, verify
from benchmarks.delivery.seed import SYSTEM, Queue

PGBENCH_TIMEOUT_S = 1800.0
SAMPLE_S = 0.1

SCRIPT = """\
\\set k :k + 1
\\if (:k - 1) % :batch = 0
\\set want least(:batch, :t - :k + 1)
BEGIN;
SELECT id, lease_owner, sending_time FROM sendings
  WHERE status = 'Sending' AND lease_expires_at <= now()
    AND system NOT IN (SELECT name FROM systems WHERE enabled IS false OR circuit = 'Down')
  ORDER BY lease_expires_at LIMIT :want FOR UPDATE SKIP LOCKED;
UPDATE systems SET next_probe_at = now() + interval '30 seconds'
  WHERE circuit = 'Down' AND enabled IS true AND next_probe_at <= now() RETURNING name;
UPDATE sendings SET status = 'Sending', lease_owner = 'pgbench-' || :client_id,
    lease_expires_at = now() + interval '120 seconds', attempts = attempts + 1,
    round_attempts = round_attempts + 1, sending_time = now(), updated_at = now()
  WHERE id IN (SELECT id FROM sendings
    WHERE status IN ('Pending', 'Failed') AND next_attempt_at <= now()
      AND system NOT IN (SELECT name FROM systems WHERE enabled IS false OR circuit = 'Down')
    ORDER BY next_attempt_at LIMIT :want FOR UPDATE SKIP LOCKED)
  RETURNING id, system, practice_id, invoice_id, sending_type, idempotency_key, document_id,
    attempts, round_attempts;
SELECT name, channel, settings, secret, timeout_seconds, retry_policy, updated_at FROM systems;
SELECT d.id, d.body, d.content_type FROM documents d JOIN sendings s ON s.document_id = d.id
  WHERE s.status = 'Sending' AND s.lease_owner = 'pgbench-' || :client_id;
COMMIT;
\\endif
BEGIN;
UPDATE sendings SET status = 'Sent', sent_at = now(), reason = NULL, cause = NULL,
    next_attempt_at = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
  WHERE id = (SELECT id FROM sendings
    WHERE status = 'Sending' AND lease_owner = 'pgbench-' || :client_id LIMIT 1)
    AND status = 'Sending'
  RETURNING id AS sid, attempts AS num, sending_time AS started
\\gset
INSERT INTO attempts (sending_id, number, started_at, duration_ms, outcome, code, reason, worker)
  VALUES (:sid, :num, :started, 0, 'Sent', 200, NULL, 'pgbench-' || :client_id);
UPDATE systems SET circuit = 'Healthy', consecutive_failures = 0, down_since = NULL,
    next_probe_at = NULL
  WHERE name = :system AND (circuit <> 'Healthy' OR consecutive_failures <> 0);
COMMIT;
"""

_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.MULTILINE)
_DONE = re.compile(r"number of transactions actually processed: (\d+)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")
_LATENCY = re.compile(r"latency average = ([\d.]+) ms")


def run_pgbench(queue: Queue, *, clients: int, batch: int, log_dir: Path) -> DrainResult:
    db = queue.database
    if queue.count % clients:
        raise ValueError(f"{queue.count} sendings do not split evenly over {clients} clients")
    per_client = queue.count // clients
    script = log_dir / "ceiling.sql"
    script.write_text(SCRIPT)
    command = [
        "pgbench",
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-t",
        str(per_client),
        "-D",
        "k=0",
        "-D",
        f"t={per_client}",
        "-D",
        f"batch={batch}",
        "-D",
        f"system={SYSTEM}",
        "-f",
        str(script),
        "-h",
        db.host,
        "-p",
        db.port,
        "-U",
        db.user,
        db.name,
    ]
    meter.wait_for_quiet()
    log = log_dir / f"pgbench-c{clients}-b{batch}.log"
    pg_cpu = meter.PgCpu(db.conninfo)
    try:
        pg_cpu.sample()
        before = meter.snapshot([], None)
        children_before = _children_cpu_s()
        started = time.perf_counter()
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
            try:
                pid = process.pid
                deadline = started + PGBENCH_TIMEOUT_S
                while process.poll() is None and time.perf_counter() < deadline:
                    pg_cpu.sample()  # pgbench's backends exit with it: sample them while alive
                    time.sleep(SAMPLE_S)
                code = process.wait(timeout=1)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=30)
        wall = time.perf_counter() - started
        after = meter.snapshot([], None)
        pg_seconds = pg_cpu.seconds
    finally:
        pg_cpu.close()
    output = log.read_text(errors="replace")
    tps = _TPS.search(output)
    done = _DONE.search(output)
    failed = _FAILED.search(output)
    latency = _LATENCY.search(output)
    verified = verify(db.conninfo, queue.count, None)
    cpu = meter.usage(before, after, pg_seconds)
    # pgbench (the client) is this harness's child: its CPU shows in RUSAGE_CHILDREN, which the
    # snapshot does not read, so it lands in "foreign"; move it to "contender".
    client_cpu = _children_cpu_s() - children_before
    extra: dict[str, Any] = {
        "clients": clients,
        "batch": batch,
        "exit_code": code,
        "pid": pid,
        "transactions": int(done[1]) if done else None,
        "failed_transactions": int(failed[1]) if failed else None,
        "latency_ms": float(latency[1]) if latency else None,
        "pgbench_wall_s": round(wall, 3),
        "queue_fill_s": round(queue.seconds, 1),
        "queue_check": queue.check,
        "script": SCRIPT,
        "command": " ".join(command),
    }
    if code != 0 or tps is None:
        extra["output_tail"] = output[-2000:]
    cpu_dict = cpu.as_dict()
    cpu_dict["contender_s"] = round(client_cpu, 3)
    cpu_dict["foreign_s"] = round(max(0.0, cpu.foreign_s - client_cpu), 3)
    rate = float(tps[1]) if tps and code == 0 else None
    return DrainResult(
        contender="pgbench",
        config=f"pgbench -c {clients} -M prepared, claim batch {batch}",
        count=queue.count,
        rate=rate,
        wall_rate=queue.count / wall if code == 0 else None,
        span_s=verified.get("span_s"),
        wall_s=wall,
        stopped_because="pgbench finished" if code == 0 else f"pgbench exited {code}",
        cpu=cpu_dict,
        verify=verified,
        rss=[],
        extra=extra,
        samples=[],
    )


def _children_cpu_s() -> float:
    """CPU seconds of every child process this harness has reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
