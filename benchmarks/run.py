"""``make bench`` / ``python -m benchmarks.run [--quick] [--skip-10m]``.

Measures ``GET /api/v1/billing/invoices/aborted`` (admin token, JSON and XML) served by the
real service, against a BASELINE app written the obvious way and the FLOOR of PostgreSQL
building the JSON itself, on a database this run creates, fills and drops:

1. base table (1M sendings, exactly 10k Aborted): every contender, the small list;
2. 90k more rows made Aborted (100k): the large list, and our server's memory 100k vs 10k;
3. those 90k rows put back exactly (10k Aborted again), 9M more non-aborted rows loaded
   (10M): our latency on the same 10k list, compared with phase 1.

``--quick``: 100k rows, 1k then 10k Aborted, no 10M phase (a smoke run of a few minutes).
Results: printed, and written to benchmarks/results/latest.json.  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import psycopg
import uvloop

from benchmarks import database as db_steps
from benchmarks.checks import Checker, fetch_answer, parse_json
from benchmarks.cpu import wait_for_quiet
from benchmarks.database import BenchDatabase, bench_database
from benchmarks.dataset import LoadPlan, load_sendings
from benchmarks.floor import floor_output
from benchmarks.measure import Measurement, Pass, measure_floor, measure_http
from benchmarks.memory import read_kib
from benchmarks.report import (
    TABLE_LEGEND,
    Phases,
    Results,
    compute_ratios,
    format_ratios,
    format_table,
    human,
    write_json,
)
from benchmarks.servers import (
    Server,
    admin_token,
    baseline_command,
    ours_command,
    serve,
    service_env,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sizes:
    """Row counts of a run."""

    base_rows: int
    small: int
    large: int
    extra_rows: int


FULL = Sizes(base_rows=1_000_000, small=10_000, large=100_000, extra_rows=9_000_000)
QUICK = Sizes(base_rows=100_000, small=1_000, large=10_000, extra_rows=0)


@dataclass(frozen=True, slots=True)
class Passes:
    """How each list is driven: under load (c = concurrency) and one request at a time."""

    small_load: Pass
    small_single: Pass
    large_load: Pass
    large_single: Pass


def phase_names(sizes: Sizes, skip_big: bool) -> Phases:
    """Phases are named "<table rows>/<aborted rows>", e.g. 1M/10k, 1M/100k, 10M/10k."""
    base, total = sizes.base_rows, sizes.base_rows + sizes.extra_rows
    return Phases(
        small=f"{human(base)}/{human(sizes.small)}",
        large=f"{human(base)}/{human(sizes.large)}",
        big=None if skip_big else f"{human(total)}/{human(sizes.small)}",
        small_rows=sizes.small,
        large_rows=sizes.large,
        base_rows=base,
        big_rows=total,
    )


def make_passes(quick: bool, concurrency: int) -> Passes:
    limit = 30.0 if quick else 90.0
    return Passes(
        small_load=Pass(concurrency, 100 if quick else 200, 2 * concurrency, limit),
        small_single=Pass(1, 30 if quick else 50, 3, limit),
        large_load=Pass(concurrency, 40, concurrency, limit),
        large_single=Pass(1, 15, 2, limit),
    )


def log(message: str) -> None:
    print(message, flush=True)


def _terminate(signum: int, _frame: object) -> NoReturn:
    # SIGTERM becomes SystemExit, so every `finally` (servers, database) still runs.
    raise SystemExit(128 + signum)


def machine_info(database: BenchDatabase) -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    with psycopg.connect(database.conninfo) as connection:
        version = connection.execute("SELECT version()").fetchone()
        buffers = connection.execute("SHOW shared_buffers").fetchone()
    from invoice_outbox.settings import Settings

    batch = Settings.model_fields["stream_batch_rows"].default
    return {
        "service_stream_batch_rows_default": batch,
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(int(memory) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": version[0] if version else "?",
        "shared_buffers": buffers[0] if buffers else "?",
    }


class Bench:
    """One run: its database, its servers, what it measured and what it checked."""

    def __init__(self, runner: asyncio.Runner, database: BenchDatabase, passes: Passes) -> None:
        self.runner = runner
        self.database = database
        self.passes = passes
        self.measurements: list[Measurement] = []
        self.checks: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}
        self.rss_at_start: dict[str, int] = {}
        self.token = ""
        self.floor_bytes = 0

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 1)
        log(f"  {name}: {self.timings[name]} s")

    def load(self, name: str, plan: LoadPlan) -> None:
        log(f"{name}: COPY {plan.rows:,} sendings ({plan.aborted:,} Aborted), seed {plan.seed}")
        started = time.perf_counter()
        with db_steps.without_indexes(self.database.conninfo):
            load_sendings(self.database.conninfo, plan, progress=log)
        self.timed(f"{name} (COPY + index rebuild)", started)

    def expect_counts(self, rows: int, aborted: int) -> None:
        """Exact counts, or stop: measuring the wrong data would be worse than no result."""
        got = (
            db_steps.count_rows(self.database.conninfo),
            db_steps.count_rows(self.database.conninfo, "Aborted"),
        )
        if got != (rows, aborted):
            raise RuntimeError(f"expected {rows:,} rows / {aborted:,} Aborted, found {got}")
        log(f"  counted: {rows:,} sendings, exactly {aborted:,} Aborted")

    def http(
        self, server: Server, fmt: str, plan: Pass, phase: str, rows: int, aborted: int
    ) -> None:
        log(f"  {server.name:<8} {fmt:<4} c={plan.concurrency} x{plan.requests} ...")
        busy_before = wait_for_quiet()
        row = self.run(
            measure_http(
                server,
                self.token,
                fmt,
                plan,
                self.database.conninfo,
                phase=phase,
                rows=rows,
                aborted=aborted,
                busy_before=busy_before,
            )
        )
        self._record(row)

    def floor(self, plan: Pass, phase: str, rows: int, aborted: int, size: int) -> None:
        log(f"  floor    json c={plan.concurrency} x{plan.requests} ...")
        busy_before = wait_for_quiet()
        row = self.run(
            measure_floor(
                self.database,
                plan,
                phase=phase,
                rows=rows,
                aborted=aborted,
                size=size,
                busy_before=busy_before,
            )
        )
        self._record(row)

    def _record(self, row: Measurement) -> None:
        self.measurements.append(row)
        peak = f", peak RSS {row.rss_peak_kib / 1024:.1f} MiB" if row.rss_peak_kib else ""
        errors = f", {len(row.errors)} distinct errors: {row.errors}" if row.errors else ""
        cpu = (
            f", server CPU {row.server_cpu_ms_per_req:.1f} ms/req, "
            f"db {row.db_cpu_ms_per_req:.1f} ms/req, foreign {row.foreign_cpu_pct:.0f}%"
            if row.server_cpu_ms_per_req is not None
            else ""
        )
        log(
            f"    {row.completed}/{row.planned} in {row.elapsed_s:.1f} s: {row.rps:.1f} req/s, "
            f"p50 {row.p50_ms:.1f} ms, p99 {row.p99_ms:.1f} ms{peak}{cpu}, "
            f"machine {row.machine_busy_pct:.0f}% busy (before: {row.busy_before_pct:.0f}%)"
            f"{errors}"
        )

    def check_phase(
        self, phase: str, expected: int, ours: Server, baseline: Server | None, xml_baseline: bool
    ) -> str:
        """Fetch and compare every contender's answer; return the sha256 of our JSON."""
        log(f"  checks ({phase}):")
        checker = Checker(phase, expected)
        ours_json = self.run(fetch_answer(ours, self.token, "json"))
        ours_xml = self.run(fetch_answer(ours, self.token, "xml"))
        checker.json_answer("ours", ours_json)
        checker.xml_answer("ours", ours_xml, ours_json)
        checker.same_json("ours", ours_json, parse_json(floor_output(self.database)), "floor")
        if baseline is not None:
            base_json = self.run(fetch_answer(baseline, self.token, "json"))
            checker.same_json("baseline", base_json, ours_json, "ours")
            if xml_baseline:
                base_xml = self.run(fetch_answer(baseline, self.token, "xml"))
                checker.same_xml("baseline", base_xml, ours_xml, "ours")
        self.checks += [c.as_dict() for c in checker.results]
        self.floor_bytes = len(floor_output(self.database))
        return ours_json.sha256

    def still(self, phase: str, rows: int, aborted: int) -> None:
        """Check, after a phase's measurements, that nothing changed the data meanwhile."""
        got = (
            db_steps.count_rows(self.database.conninfo),
            db_steps.count_rows(self.database.conninfo, "Aborted"),
        )
        ok = got == (rows, aborted)
        self.checks.append(
            {"phase": phase, "name": "data unchanged by the run", "ok": ok, "detail": str(got)}
        )
        log(f"  [{'ok  ' if ok else 'FAIL'}] data unchanged by the run: {got}")

    def measure_list(
        self,
        phase: str,
        rows: int,
        aborted: int,
        ours: Server,
        baseline: Server | None,
        baseline_formats: Sequence[str],
        load: Pass,
        single: Pass,
    ) -> None:
        log(f"  measuring ({phase}):")
        for fmt in ("json", "xml"):
            self.http(ours, fmt, load, phase, rows, aborted)
            self.http(ours, fmt, single, phase, rows, aborted)
        if baseline is not None:
            for fmt in baseline_formats:
                self.http(baseline, fmt, load, phase, rows, aborted)
        self.floor(load, phase, rows, aborted, self.floor_bytes)
        self.floor(single, phase, rows, aborted, self.floor_bytes)
        self.still(phase, rows, aborted)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="100k rows, 1k/10k aborted, no 10M")
    parser.add_argument("--skip-10m", action="store_true", help="skip the 10M-row phase")
    parser.add_argument("--concurrency", type=int, default=4, help="load workers (default 4)")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "latest.json", help="raw results (JSON)"
    )
    return parser.parse_args(argv)


def _check_service_importable() -> None:
    try:
        import invoice_outbox.app  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"the service does not import ({exc}); nothing to benchmark") from None


def execute(args: argparse.Namespace, payload: dict[str, Any]) -> Bench:
    """Every phase; fills `payload` as it goes (so a failed run still leaves what it got)."""
    sizes = QUICK if args.quick else FULL
    passes = make_passes(args.quick, args.concurrency)
    with (
        ExitStack() as stack,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="io-bench-")))
        log_dir = RESULTS_DIR / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        database = stack.enter_context(bench_database())
        bench = Bench(runner, database, passes)
        payload["bench"] = bench
        payload["machine"] = machine_info(database)
        log(f"database {database.name}: created and migrated; machine {payload['machine']}")

        base, small, large = sizes.base_rows, sizes.small, sizes.large
        phases = phase_names(sizes, skip_big=args.quick or args.skip_10m)
        phase_small, phase_large = phases.small, phases.large
        bench.load("load base table", LoadPlan(rows=base, aborted=small, seed=1))
        started = time.perf_counter()
        db_steps.vacuum_analyze(database.conninfo)
        bench.timed("VACUUM (ANALYZE)", started)
        bench.expect_counts(base, small)

        env = service_env(database.sqlalchemy_url, tmp / "var", secrets.token_urlsafe(48))
        bench.token = admin_token(env)
        ours = stack.enter_context(serve("ours", ours_command(), env, log_dir))
        baselines = ExitStack()
        stack.enter_context(baselines)
        baseline = baselines.enter_context(serve("baseline", baseline_command(), env, log_dir))
        for server in (ours, baseline):
            bench.rss_at_start[server.name] = read_kib(server.pid)["VmRSS"]
        log(
            f"servers up: ours pid {ours.pid} :{ours.port}, baseline pid {baseline.pid} "
            f":{baseline.port}; RSS at start (KiB) {bench.rss_at_start}"
        )

        log(f"phase {phase_small}: {small:,} Aborted of {base:,}")
        first_sha = bench.check_phase(phase_small, small, ours, baseline, xml_baseline=True)
        bench.measure_list(
            phase_small,
            base,
            small,
            ours,
            baseline,
            ("json", "xml"),
            passes.small_load,
            passes.small_single,
        )

        log(f"phase {phase_large}: {large - small:,} more rows made Aborted")
        db_steps.promote_to_aborted(database.conninfo, large - small)
        db_steps.vacuum_analyze(database.conninfo)
        bench.expect_counts(base, large)
        bench.check_phase(phase_large, large, ours, baseline, xml_baseline=False)
        bench.measure_list(
            phase_large,
            base,
            large,
            ours,
            baseline,
            ("json",),
            passes.large_load,
            passes.large_single,
        )
        baselines.close()

        if phases.big is None:
            log("10M phase skipped")
            return bench
        total, phase_big = phases.big_rows, phases.big
        log(f"phase {phase_big}: the {large - small:,} rows put back, {sizes.extra_rows:,} more")
        db_steps.demote_back(database.conninfo)
        db_steps.vacuum_analyze(database.conninfo)
        bench.expect_counts(base, small)
        bench.load("load 9M more", LoadPlan(rows=sizes.extra_rows, aborted=0, seed=2))
        started = time.perf_counter()
        db_steps.vacuum_analyze(database.conninfo, vacuum=False)
        bench.timed("ANALYZE", started)
        bench.expect_counts(total, small)
        sha = bench.check_phase(phase_big, small, ours, None, xml_baseline=False)
        bench.checks.append(
            {
                "phase": phase_big,
                "name": "ours JSON byte-identical to the base-table phase",
                "ok": sha == first_sha,
                "detail": sha,
            }
        )
        log(f"  [{'ok  ' if sha == first_sha else 'FAIL'}] JSON byte-identical to {phase_small}")
        bench.measure_list(
            phase_big, total, small, ours, None, (), passes.small_load, passes.small_single
        )
        return bench


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    _check_service_importable()
    sizes = QUICK if args.quick else FULL
    payload: dict[str, Any] = {}
    started = time.time()
    error: str | None = None
    try:
        execute(args, payload)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        bench: Bench | None = payload.pop("bench", None)
        if bench is not None:
            summarise(args, sizes, bench, payload, started, error)
    return 0


def summarise(
    args: argparse.Namespace,
    sizes: Sizes,
    bench: Bench,
    payload: dict[str, Any],
    started: float,
    error: str | None,
) -> None:
    phases = phase_names(sizes, skip_big=args.quick or args.skip_10m)
    ratios = compute_ratios(Results(bench.measurements), phases, args.concurrency)
    log("\nRESULTS")
    log(format_table(bench.measurements))
    log(TABLE_LEGEND)
    log("\nRATIOS")
    log(format_ratios(ratios))
    failed = [c for c in bench.checks if not c["ok"]]
    log(f"\nchecks: {len(bench.checks) - len(failed)} passed, {len(failed)} failed")
    payload.update(
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        duration_s=round(time.time() - started, 1),
        completed=error is None,
        error=error,
        arguments={"quick": args.quick, "skip_10m": args.skip_10m, "concurrency": args.concurrency},
        sizes={**asdict(sizes), "extra_rows": 0 if phases.big is None else sizes.extra_rows},
        passes=asdict(bench.passes),
        timings_s=bench.timings,
        rss_at_start_kib=bench.rss_at_start,
        measurements=[m.as_dict() for m in bench.measurements],
        checks=bench.checks,
        ratios=[r.as_dict() for r in ratios],
        table=format_table(bench.measurements),
    )
    write_json(args.output, payload)
    log(f"raw results: {args.output}")


if __name__ == "__main__":
    sys.exit(main())
