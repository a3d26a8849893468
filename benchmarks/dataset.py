"""Synthetic, reproducible sendings, bulk-loaded with psycopg ``COPY`` (text format).

Rows are realistic rather than uniform: 40 practices, six external systems, invoices sent to one
or two systems, a status mix dominated by ``Sent``, reasons (some needing XML/JSON escaping) on
failed rows, attempts that fit the status, and timestamps spread over two years in load order
(so the heap is roughly in time order, as a real outbox's would be).  A seeded `random.Random`
makes every run load exactly the same rows.

The ``Aborted`` rows are an exact count: `load_sendings` is told how many of its rows to abort
and picks their positions with the same seeded generator.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

START = datetime(2024, 3, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
PRACTICES = 40
SYSTEMS = (
    "MediSwitch",
    "Healthbridge Billing",
    "Discovery Health Switch",
    "GEMS Claims",
    "Medscheme Gateway",
    "Practice Mailbox",
)
#: Non-aborted statuses and their weights (Aborted rows are placed separately, exactly).
OTHER_STATUSES = (("Sent", 86), ("Failed", 4), ("Pending", 4), ("Sending", 1), ("Cancelled", 5))
REASONS = (
    "MediSwitch answered 503 Service Unavailable 8 times; the switch is down or overloaded",
    "The billing system rejected the invoice: member number 8123 is not on the scheme",
    'Mailbox refused the message: 552 "mailbox full" <billing@practice.example>',
    "Connection to claims.gems.example timed out after 30 s (no answer at all)",
    "The receiver said 400 Bad Request: ICD-10 code & tariff code do not match",
    "TLS certificate of medscheme.example expired on 2025-11-30; fix it there, then retry",
    "Authentication failed (401): the practice's API key for this system was revoked",
)
CAUSES = ("unavailable", "rejected", "mailbox", "timeout", "bad-request", "tls", "auth")
#: The columns `_rows` writes, in order.  Other columns of ``sendings`` must be nullable or
#: have a default (`check_columns` says which one is not, should the schema grow).
COPY_COLUMNS = (
    "id",
    "practice_id",
    "encounter_id",
    "invoice_id",
    "system",
    "sending_type",
    "status",
    "reason",
    "cause",
    "attempts",
    "round_attempts",
    "sending_time",
    "sent_at",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "idempotency_key",
    "created_at",
    "updated_at",
)
NULL = "\\N"
BLOCK_ROWS = 20_000


def _uuid(rng: random.Random) -> str:
    """A random version-4 UUID in its canonical text form (cheaper than uuid.UUID + str)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _ts(moment: datetime) -> str:
    return moment.isoformat(sep=" ")


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How many rows to add, how many of them are Aborted, and the seed that fixes them."""

    rows: int
    aborted: int
    seed: int


def _rows(plan: LoadPlan) -> Iterator[str]:
    """COPY text lines, one per sending, in time order."""
    rng = random.Random(plan.seed)
    rand = rng.random
    practices = [_uuid(rng) for _ in range(PRACTICES)]
    aborted = set(rng.sample(range(plan.rows), plan.aborted)) if plan.aborted else set()
    # One entry per percent: a status is STATUS_TABLE[int(rand() * 100)].
    status_table = [s for s, weight in OTHER_STATUSES for _ in range(weight)]
    n_reasons, n_systems = len(REASONS), len(SYSTEMS)
    step_us = SPAN / timedelta(microseconds=1) / max(plan.rows, 1)
    invoice = encounter = practice = ""
    first_system = -1
    for i in range(plan.rows):
        # About 30 % of invoices go to a second system: same invoice, another destination.
        if first_system >= 0 and rand() < 0.3:
            system = (first_system + 1 + int(rand() * (n_systems - 1))) % n_systems
            first_system = -1
        else:
            practice = practices[int(rand() * PRACTICES)]
            encounter, invoice = _uuid(rng), _uuid(rng)
            system = first_system = int(rand() * n_systems)
        status = "Aborted" if i in aborted else status_table[int(rand() * 100)]
        when = START + timedelta(microseconds=int(i * step_us + rand() * 60_000_000))
        at = _ts(when)
        reason = cause = sent_at = next_at = lease_owner = lease_until = NULL
        if status == "Sent":
            attempts, sent_at = 1 + int(rand() * 3), at
        elif status == "Failed" or status == "Aborted":
            k = int(rand() * n_reasons)
            reason, cause = REASONS[k], CAUSES[k]
            attempts = 1 + int(rand() * 5) if status == "Failed" else (1, 8)[int(rand() * 2)]
        elif status == "Sending":
            attempts, lease_owner = int(rand() * 3), "worker-1"
            lease_until = _ts(when + timedelta(minutes=1))
        else:  # Pending, Cancelled
            attempts = int(rand() * 3) if status == "Cancelled" else 0
        if status == "Pending" or status == "Failed":
            next_at = _ts(when + timedelta(minutes=2**attempts))
        sending_type = "Cancellation" if rand() < 0.03 else "Invoice"
        created = _ts(when - timedelta(minutes=5 * attempts)) if attempts else at
        yield (
            f"{_uuid(rng)}\t{practice}\t{encounter}\t{invoice}\t{SYSTEMS[system]}\t"
            f"{sending_type}\t{status}\t{reason}\t{cause}\t{attempts}\t{attempts}\t"
            f"{at}\t{sent_at}\t{next_at}\t{lease_owner}\t{lease_until}\t"
            f"{rng.getrandbits(128):032x}\t{created}\t{at}\n"
        )


def check_columns(connection: psycopg.Connection[Any]) -> None:
    """Fail clearly if ``sendings`` lacks a column we write or needs one we do not."""
    rows = connection.execute(
        "SELECT column_name, is_nullable = 'YES' OR column_default IS NOT NULL "
        "FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = 'sendings'"
    ).fetchall()
    table = {str(name): bool(optional) for name, optional in rows}
    missing = [c for c in COPY_COLUMNS if c not in table]
    required = [c for c, optional in table.items() if not optional and c not in COPY_COLUMNS]
    if missing or required:
        raise RuntimeError(
            "benchmarks/dataset.py does not match the sendings table: "
            f"columns gone {missing}, new NOT NULL columns without default {required}"
        )


def load_sendings(conninfo: str, plan: LoadPlan, progress: Callable[[str], None] = print) -> float:
    """COPY `plan.rows` sendings into ``sendings``; return the seconds it took.

    Reports progress about every 10 % of the rows.
    """
    started = time.perf_counter()
    report_every = max(plan.rows // 10, BLOCK_ROWS)
    with psycopg.connect(conninfo) as connection:
        check_columns(connection)
        connection.execute("SET synchronous_commit = off")
        columns = ", ".join(COPY_COLUMNS)
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY sendings ({columns}) FROM STDIN") as copy,
        ):
            block: list[str] = []
            done = 0
            for line in _rows(plan):
                block.append(line)
                if len(block) == BLOCK_ROWS:
                    copy.write("".join(block))
                    done += len(block)
                    block.clear()
                    if done % report_every < BLOCK_ROWS:
                        rate = done / (time.perf_counter() - started)
                        progress(f"  loaded {done:,}/{plan.rows:,} rows ({rate:,.0f}/s)")
            if block:
                copy.write("".join(block))
        connection.commit()
    return time.perf_counter() - started
