"""``python -m benchmarks.intake``: how fast invoices are accepted, against named references.

Contenders, all in the same run on the same machine (see benchmarks/intake/README.md):

* OURS single: ``invoice-outbox serve --no-worker`` on PostgreSQL, one invoice per request
  from 32 concurrent clients (and the same on SQLite);
* OURS batch: the same server, ``.../invoices/batch`` with 1,000 invoices per request;
* BASELINE: the single submission written the obvious way (obvious_app.py), same rows;
* FLOOR: pgbench running the same INSERTs per invoice as a prepared script, and as
  multi-row statements for the batch floor (floor.py).

Every invoice is new and goes to its practice's one system.  Checks: every answer was the
expected status, every batch item Accepted, and the database holds exactly one Pending
sending and one document per invoice submitted.  Prints a table and the ratios against
their targets; writes benchmarks/results/intake-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import subprocess
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import orjson
import psycopg
import uvloop

from benchmarks.cpu import wait_for_quiet
from benchmarks.database import BenchDatabase, bench_database
from benchmarks.intake.floor import FloorRun, run_floor
from benchmarks.intake.load import HttpRun, batch_requests, document, drive, single_requests
from benchmarks.intake.report import Row, format_ratios, format_table, ratios
from benchmarks.servers import BIN_DIR, Server, admin_token, ours_command, serve, service_env

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SYSTEM = "MediSwitch"
TIME_LIMIT_S = 300.0


def log(message: str) -> None:
    print(message, flush=True)


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # every `finally` (servers, database) still runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.intake", description=__doc__)
    parser.add_argument("--single", type=int, default=5000, help="single submissions (ours)")
    parser.add_argument("--baseline", type=int, default=2000, help="single submissions (baseline)")
    parser.add_argument("--sqlite", type=int, default=3000, help="single submissions on SQLite")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40, help="batches of --batch-size")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-concurrency", type=int, default=2)
    parser.add_argument("--practices", type=int, default=20)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "intake-latest.json")
    return parser.parse_args(argv)


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(BIN_DIR / "invoice-outbox"), *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def configure(env: dict[str, str], practices: list[uuid.UUID]) -> None:
    """The system every invoice goes to, serving every practice (never called: no worker)."""
    spec = {
        "Channel": "Http",
        "Url": "http://127.0.0.1:9/unused",
        "Practices": [str(p) for p in practices],
        "Enabled": False,
    }
    _cli(
        {**env, "INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS": "true"},
        "system",
        "put",
        SYSTEM,
        "--json",
        json.dumps(spec),
    )  # fmt: skip -- the command line as one would type it


def counts(database: BenchDatabase) -> tuple[int, int, int]:
    """(sendings, Pending sendings, documents)."""
    with psycopg.connect(database.conninfo) as connection:
        row = connection.execute(
            "SELECT (SELECT count(*) FROM sendings), "
            "(SELECT count(*) FROM sendings WHERE status = 'Pending'), "
            "(SELECT count(*) FROM documents)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


class Bench:
    def __init__(self, runner: asyncio.Runner, database: BenchDatabase, token: str) -> None:
        self.runner, self.database, self.token = runner, database, token
        self.rows: list[Row] = []
        self.checks: list[dict[str, Any]] = []
        self.floors: list[FloorRun] = []
        self.serial = 0

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"name": name, "ok": ok, "detail": detail})
        log(f"  [{'ok  ' if ok else 'FAIL'}] {name}: {detail}")

    def http(
        self,
        contender: str,
        server: Server,
        practices: list[uuid.UUID],
        *,
        count: int,
        concurrency: int,
        batch: int = 0,
        engine: str = "postgresql",
        warmup: int = 200,
    ) -> HttpRun:
        """Warm up (not measured), then measure `count` invoices (in batches, if `batch`)."""
        start = self.serial
        if batch:
            warm = batch_requests(practices, server.port, self.token, concurrency, batch, start)
            requests = batch_requests(
                practices, server.port, self.token, count // batch, batch, start + 10**8
            )
            expect, invoices = 200, (count // batch) * batch
        else:
            warm = single_requests(practices, server.port, self.token, warmup, start)
            requests = single_requests(practices, server.port, self.token, count, start + 10**8)
            expect, invoices = 202, count
        self.serial += 2 * 10**8
        self.runner.run(
            drive(
                server,
                warm,
                concurrency=concurrency,
                expect=expect,
                conninfo=self.database.conninfo,
                time_limit_s=TIME_LIMIT_S,
            )
        )
        busy = wait_for_quiet()
        log(f"  {contender}: {invoices:,} invoices, c={concurrency} ...")
        run = self.runner.run(
            drive(
                server,
                requests,
                concurrency=concurrency,
                expect=expect,
                conninfo=self.database.conninfo,
                time_limit_s=TIME_LIMIT_S,
                tally=b'"Outcome":"Accepted"' if batch else b"",
            )
        )
        row = Row.of(contender, engine, run, invoices_per_request=batch or 1, busy_before=busy)
        self.rows.append(row)
        log("    " + row.line())
        self.check(
            f"{contender}: every answer {expect}",
            not run.result.errors and run.result.completed == len(requests),
            f"{run.result.completed}/{len(requests)} answered, errors {run.result.errors[:2]}",
        )
        if batch:
            accepted = run.tallied
            self.check(
                f"{contender}: every item Accepted",
                accepted == invoices,
                f"{accepted:,} of {invoices:,}",
            )
        return run

    def floor(self, *, batch: int, clients: int, invoices: int, practice: uuid.UUID) -> None:
        busy = wait_for_quiet()
        transactions = max(1, invoices // (clients * batch))
        log(f"  floor (pgbench, batch {batch}): {clients * transactions * batch:,} invoices ...")
        run = run_floor(
            self.database,
            batch=batch,
            clients=clients,
            transactions=transactions,
            body=orjson.dumps(document(0)).decode(),
            practice=str(practice),
            system=SYSTEM,
            log_dir=RESULTS_DIR / "intake-logs",
        )
        self.floors.append(run)
        rate = "-" if run.invoices_per_s is None else f"{run.invoices_per_s:,.0f}"
        db = run.db_cpu_ms_per_invoice or 0.0
        log(
            f"    {rate} invoices/s, mean latency {run.latency_ms} ms/transaction, "
            f"db CPU {db:.3f} ms/invoice (busy before {busy:.0%})"
        )
        if run.output_tail:
            log(run.output_tail)


def _postgres(args: argparse.Namespace, runner: asyncio.Runner, stack: ExitStack) -> Bench:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="io-intake-")))
    database = stack.enter_context(bench_database())
    practices = [uuid.uuid4() for _ in range(args.practices)]
    env = service_env(database.sqlalchemy_url, tmp / "var", secrets.token_urlsafe(48))
    configure(env, practices)
    bench = Bench(runner, database, admin_token(env))
    log_dir = RESULTS_DIR / "intake-logs"
    log(f"database {database.name}: migrated; {SYSTEM} serves {len(practices)} practices")
    before = counts(database)
    with serve("ours", ours_command(), env, log_dir) as ours:
        bench.http("ours single", ours, practices, count=args.single, concurrency=args.concurrency)
        bench.http(
            "ours batch",
            ours,
            practices,
            count=args.batches * args.batch_size,
            concurrency=args.batch_concurrency,
            batch=args.batch_size,
        )
    baseline_command = [str(Path(BIN_DIR) / "python"), "-m", "benchmarks.intake.obvious_app"]
    with serve("baseline", baseline_command, env, log_dir) as baseline:
        bench.http(
            "baseline single",
            baseline,
            practices,
            count=args.baseline,
            concurrency=args.concurrency,
        )
    submitted = (
        200
        + args.single
        + args.batch_concurrency * args.batch_size
        + args.batches * args.batch_size
        + 200
        + args.baseline
    )  # fmt: skip -- the warm-ups and the measured runs, in the order they ran
    after = counts(database)
    made = tuple(a - b for a, b in zip(after, before, strict=True))
    bench.check(
        "one Pending sending and one document per invoice submitted",
        made == (submitted, submitted, submitted),
        f"sendings, Pending, documents made: {made}; invoices submitted: {submitted:,}",
    )
    bench.floor(batch=1, clients=args.concurrency, invoices=args.single, practice=practices[0])
    bench.floor(
        batch=args.batch_size,
        clients=args.batch_concurrency,
        invoices=args.batches * args.batch_size,
        practice=practices[0],
    )
    return bench


def _sqlite(args: argparse.Namespace, bench: Bench, stack: ExitStack) -> None:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="io-intake-sqlite-")))
    url = f"sqlite:///{tmp / 'intake.db'}"
    env = service_env(url, tmp / "var", secrets.token_urlsafe(48))
    _cli(env, "migrate")
    practices = [uuid.uuid4() for _ in range(args.practices)]
    configure(env, practices)
    token = admin_token(env)
    saved, bench.token = bench.token, token
    try:
        with serve("ours-sqlite", ours_command(), env, RESULTS_DIR / "intake-logs") as ours:
            bench.http(
                "ours single",
                ours,
                practices,
                count=args.sqlite,
                concurrency=args.concurrency,
                engine="sqlite",
            )
    finally:
        bench.token = saved


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    (RESULTS_DIR / "intake-logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bench: Bench | None = None
    error: str | None = None
    try:
        with ExitStack() as stack, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            bench = _postgres(args, runner, stack)
            if args.sqlite:
                _sqlite(args, bench, stack)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if bench is not None:
            found = ratios(bench.rows, bench.floors)
            log("\nRESULTS\n" + format_table(bench.rows, bench.floors))
            log("\nRATIOS\n" + format_ratios(found))
            failed = [c for c in bench.checks if not c["ok"]]
            log(f"\nchecks: {len(bench.checks) - len(failed)} passed, {len(failed)} failed")
            args.output.write_text(
                json.dumps(
                    {
                        "benchmark": "intake",
                        "error": error,
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "total_s": round(time.perf_counter() - started, 1),
                        "rows": [r.as_dict() for r in bench.rows],
                        "floors": [asdict(f) for f in bench.floors],
                        "ratios": [asdict(r) for r in found],
                        "checks": bench.checks,
                    },
                    indent=2,
                )
            )
            log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
