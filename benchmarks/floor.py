"""FLOOR: PostgreSQL building the same JSON itself, fetched by ``psql`` into /dev/null.

No Python, no HTTP: the lower bound of what answering the list can cost on this machine.  One
query builds the whole JSON array (``json_agg(json_build_object(...))``) over the same rows,
in the same order, with the same field names and value formats as the service.  Each request
is a whole ``psql -X -At -c <query>`` process (start, connect, run, print, exit), so its time
also includes process start-up and connection set-up (a few milliseconds; the HTTP contenders
reuse keep-alive connections and pooled database connections).
"""

from __future__ import annotations

import asyncio
import subprocess

from benchmarks.database import BenchDatabase
from benchmarks.loadgen import Job

#: Field names, order and formats of the legacy JSON (SPEC.md); rows in the service's order.
#: The inner query is the service's own (same columns, filter and ORDER BY); json_agg
#: aggregates the ordered subquery's rows in that order.
FLOOR_SQL = """
SELECT json_agg(json_build_object(
    'PracticeId', practice_id, 'EncounterId', encounter_id, 'InvoiceId', invoice_id,
    'Reason', reason, 'Status', status, 'System', system,
    'SendingTime', to_char(sending_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    'SendingAttempts', attempts, 'SendingType', sending_type))
FROM (
  SELECT practice_id, encounter_id, invoice_id, reason, status, system, sending_time,
         attempts, sending_type
  FROM sendings WHERE status = 'Aborted' ORDER BY sending_time, id
) AS aborted
"""


def psql_command(database: BenchDatabase) -> list[str]:
    """``psql -X -At -c FLOOR_SQL`` against `database`."""
    return ["psql", *database.psql_args(), "-At", "-c", FLOOR_SQL]


def floor_jobs(database: BenchDatabase, concurrency: int) -> list[Job]:
    """`concurrency` identical jobs; each runs psql once with its output going to /dev/null."""
    command = psql_command(database)

    async def job() -> int:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"psql failed ({process.returncode}): {err.decode()[:500]}")
        return 0

    return [job for _ in range(concurrency)]


def floor_output(database: BenchDatabase) -> bytes:
    """The floor's JSON (once, captured, for the correctness check)."""
    done = subprocess.run(psql_command(database), capture_output=True, timeout=300, check=True)
    return done.stdout.strip()
