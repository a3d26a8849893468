"""FLOOR: PostgreSQL doing intake's writes with nothing else (pgbench, prepared statements).

Per invoice intake must store one document and one Pending sending (each invoice here goes
to one system).  The floor is those two INSERTs with the same columns and sizes, no HTTP, no
Python, no reads (the document's bytes stand in for its ciphertext, 16 bytes shorter, with a
random nonce: PostgreSQL's side of the work without the encryption, which intake does in
Python):

* **single**: one transaction per invoice, the two INSERTs as a prepared script
  (``-M prepared``), 32 clients as the HTTP run has -- what one-submission-per-request costs
  the database at best;
* **batch**: one transaction per 1,000 invoices, written as multi-row statements (one
  ``INSERT ... SELECT`` per table over ``generate_series``, the documents' in a CTE of the
  sendings' statement), as many clients as the HTTP batch run has connections.

Invoices/s = transactions/s (x 1,000 for the batch).  Commits are durable as configured.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.database import BenchDatabase
from benchmarks.delivery.meter import PgCpu

SINGLE = """\
BEGIN;
INSERT INTO documents (id, practice_id, invoice_id, content_type, key_id, nonce, body, digest,
    created_at)
  VALUES (gen_random_uuid(), :practice, gen_random_uuid(), 'application/json', 'bench',
    decode(substr(md5(random()::text), 1, 24), 'hex'), convert_to(:body, 'UTF8'), :sha, now())
  RETURNING id AS doc \\gset
INSERT INTO sendings (id, practice_id, encounter_id, invoice_id, system, sending_type, status,
    attempts, round_attempts, sending_time, next_attempt_at, idempotency_key, document_id,
    created_at, updated_at)
  VALUES (gen_random_uuid(), :practice, gen_random_uuid(), gen_random_uuid(), :system, 'Invoice',
    'Pending', 0, 0, now(), now(), md5(random()::text || :doc), :doc, now(), now());
COMMIT;
"""

BATCH = """\
WITH d AS (
  INSERT INTO documents (id, practice_id, invoice_id, content_type, key_id, nonce, body,
      digest, created_at)
  SELECT gen_random_uuid(), :practice, gen_random_uuid(), 'application/json', 'bench',
    decode(substr(md5(random()::text), 1, 24), 'hex'), convert_to(:body, 'UTF8'), :sha, now()
  FROM generate_series(1, :rows)
  RETURNING id)
INSERT INTO sendings (id, practice_id, encounter_id, invoice_id, system, sending_type, status,
    attempts, round_attempts, sending_time, next_attempt_at, idempotency_key, document_id,
    created_at, updated_at)
  SELECT gen_random_uuid(), :practice, gen_random_uuid(), gen_random_uuid(), :system, 'Invoice',
    'Pending', 0, 0, now(), now(), md5(random()::text || d.id::text), d.id, now(), now()
  FROM d;
"""

_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.MULTILINE)
_LATENCY = re.compile(r"latency average = ([\d.]+) ms")
_FAILED = re.compile(r"number of failed transactions: (\d+)")


@dataclass(slots=True)
class FloorRun:
    """A pgbench run: invoices per second, mean latency per transaction, database CPU."""

    name: str
    clients: int
    invoices: int
    invoices_per_s: float | None
    latency_ms: float | None
    db_cpu_ms_per_invoice: float | None
    wall_s: float
    output_tail: str


def run_floor(
    database: BenchDatabase,
    *,
    batch: int,
    clients: int,
    transactions: int,
    body: str,
    practice: str,
    system: str,
    log_dir: Path,
) -> FloorRun:
    """`transactions` per client of the single (batch 1) or batch script."""
    name = "floor-single" if batch == 1 else "floor-batch"
    script = log_dir / f"{name}.sql"
    script.write_text(SINGLE if batch == 1 else BATCH)
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
        str(transactions),
        "-D",
        f"body={body}",
        "-D",
        "sha=" + "0" * 64,
        "-D",
        f"practice={practice}",
        "-D",
        f"system={system}",
        "-D",
        f"rows={batch}",
        "-f",
        str(script),
        "-h",
        database.host,
        "-p",
        database.port,
        "-U",
        database.user,
        database.name,
    ]  # fmt: skip  -- one option and its value per pair reads best
    pg_cpu = PgCpu(database.conninfo)
    started = time.perf_counter()
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        while process.poll() is None:
            pg_cpu.sample()  # pgbench's backends end with it: sample them while alive
            time.sleep(0.1)
        output = (process.stdout.read() if process.stdout else b"").decode(errors="replace")
        seconds = pg_cpu.seconds
    finally:
        pg_cpu.close()
    wall = time.perf_counter() - started
    (log_dir / f"{name}.log").write_text(output)
    tps, latency, failed = _TPS.search(output), _LATENCY.search(output), _FAILED.search(output)
    ok = process.returncode == 0 and tps is not None and (failed is None or failed[1] == "0")
    invoices = clients * transactions * batch
    return FloorRun(
        name=name,
        clients=clients,
        invoices=invoices,
        invoices_per_s=float(tps[1]) * batch if ok and tps else None,
        latency_ms=float(latency[1]) if latency else None,
        db_cpu_ms_per_invoice=seconds * 1000 / invoices if invoices else None,
        wall_s=wall,
        output_tail="" if ok else output[-2000:],
    )
