"""``python -m benchmarks.admin [--quick]``: admin lists, cause groups and bulk resend at scale.

1. A fresh database: 1,000,000 sendings (``--quick``: 100,000) from `benchmarks.dataset`, with
   62,000 Aborted plus about 4 % Failed, so about 100,000 failures over 40 practices, six
   systems and seven causes; every system configured disabled.
2. ``invoice-outbox serve --no-worker``: p50/p99 at c=1 of the admin list, cause and practice
   routes, and a 10-page walk by ``X-Next-Cursor``.
3. ``invoice-outbox worker`` next to it: one bulk resend of every Failed and Aborted sending;
   its duration, rows/s and the worker's RSS before and during the job.

Results: printed, and written to benchmarks/results/admin-latest.json.  The database is dropped
and both processes are stopped whatever happens.  See benchmarks/admin/README.md.
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import uvloop

from benchmarks.admin.latency import RouteResult, cursor_walk, measure_route, total_count
from benchmarks.admin.resend import ResendResult, run_resend, worker_process
from benchmarks.admin.seed import (
    busiest_practice,
    cause_counts,
    counts,
    hold_systems,
    load,
)
from benchmarks.cpu import wait_for_quiet
from benchmarks.database import bench_database
from benchmarks.report import write_json
from benchmarks.servers import admin_token, ours_command, serve, service_env

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
PAGE_TARGET_MS = 300.0
CAUSES_TARGET_MS = 1000.0
#: The resend is "bounded" when the worker grows by less than this during a 100k-row job.
RSS_GROWTH_LIMIT_MIB = 50.0


@dataclass(frozen=True, slots=True)
class Sizes:
    rows: int
    aborted: int
    requests: int
    warmup: int
    walks: int


FULL = Sizes(rows=1_000_000, aborted=62_000, requests=30, warmup=3, walks=3)
QUICK = Sizes(rows=100_000, aborted=6_200, requests=10, warmup=2, walks=1)
PAGES = 10


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def _others_running() -> list[str]:
    """Other benchmark processes on this machine (their command lines), for the record."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if "benchmarks." in line and "benchmarks.admin" not in line:
            found.append(line[:200])
    return found


def _machine(conninfo: str) -> dict[str, Any]:
    with psycopg.connect(conninfo) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": None if row is None else str(row[0]),
        "kernel": platform.release(),
    }


async def _measure_routes(port: int, token: str, sizes: Sizes, practice: str) -> list[RouteResult]:
    page = PAGE_TARGET_MS
    routes = [
        ("aborted, first page", "/api/v1/billing/invoices/aborted?limit=100", page),
        (
            "failed, cause http-503",
            "/api/v1/billing/invoices/failed?cause=http-503&limit=100",
            page,
        ),
        (
            "sendings Aborted, one practice",
            f"/api/v1/billing/sendings?status=Aborted&practiceId={practice}&limit=100",
            page,
        ),
        ("causes", "/api/v1/billing/causes", CAUSES_TARGET_MS),
        ("practice view", f"/api/v1/{practice}/billing/invoices?limit=100", page),
    ]
    results = []
    for name, path, target in routes:
        busy = wait_for_quiet(max_wait_s=10.0)
        log(f"measuring {name} (machine busy {busy:.0%} before)")
        results.append(
            await measure_route(
                name,
                port,
                path,
                token,
                requests=sizes.requests,
                warmup=sizes.warmup,
                target_ms=target,
            )
        )
    return results


def _checks(port: int, token: str, practice: str, conninfo: str) -> dict[str, Any]:
    """Each list's ``X-Total-Count`` against SQL."""
    with psycopg.connect(conninfo) as connection:

        def one(query: str, *args: object) -> int:
            row = connection.execute(query, args).fetchone()
            assert row is not None
            return int(row[0])

        expected = {
            "aborted": one("SELECT count(*) FROM sendings WHERE status = 'Aborted'"),
            "failed http-503": one(
                "SELECT count(*) FROM sendings WHERE status = 'Failed' AND cause = 'http-503'"
            ),
            "practice Aborted": one(
                "SELECT count(*) FROM sendings WHERE status = 'Aborted' AND practice_id = %s",
                practice,
            ),
            "practice all": one("SELECT count(*) FROM sendings WHERE practice_id = %s", practice),
        }
    got = {
        "aborted": total_count(port, "/api/v1/billing/invoices/aborted?limit=100", token),
        "failed http-503": total_count(
            port, "/api/v1/billing/invoices/failed?cause=http-503&limit=100", token
        ),
        "practice Aborted": total_count(
            port, f"/api/v1/billing/sendings?status=Aborted&practiceId={practice}&limit=100", token
        ),
        "practice all": total_count(port, f"/api/v1/{practice}/billing/invoices?limit=100", token),
    }
    return {
        name: {"sql": expected[name], "x_total_count": got[name], "ok": got[name] == expected[name]}
        for name in expected
    }


def _table(routes: Sequence[RouteResult], resend: ResendResult | None) -> str:
    lines = [
        f"{'route':<34} {'done':>7} {'p50 ms':>8} {'p99 ms':>8} {'target':>9}  met",
        "-" * 76,
    ]
    for r in routes:
        done = f"{len(r.latencies_ms)}/{r.planned}"
        lines.append(
            f"{r.name:<34} {done:>7} {r.percentile(50):>8.1f} {r.percentile(99):>8.1f} "
            f"{'<' + format(r.target_p99_ms, '.0f'):>9}  {'yes' if r.met else 'NO'}"
        )
    if resend is not None:
        growth = (resend.rss_peak_kib - resend.rss_before_kib) / 1024
        lines += [
            "",
            f"bulk resend: {resend.status}, {resend.done:,}/{resend.total:,} queued again "
            f"(skipped {resend.skipped:,}, failed {resend.failed:,}) in {resend.duration_s:.1f} s "
            f"= {resend.rows_per_s:,.0f} rows/s (asked {10_000:,}/s)",
            f"worker RSS: before {resend.rss_before_kib / 1024:.1f} MiB, peak "
            f"{resend.rss_peak_kib / 1024:.1f} MiB (+{growth:.1f} MiB), after "
            f"{resend.rss_after_kib / 1024:.1f} MiB",
        ]
    return "\n".join(lines)


def execute(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else FULL
    payload: dict[str, Any] = {
        "benchmark": "admin",
        "started_at": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "sizes": asdict(sizes),
        "other_benchmarks_running": _others_running(),
    }
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="io-admin-bench-") as tmp,
        bench_database() as database,
    ):
        payload["machine"] = _machine(database.conninfo)
        log(f"database {database.name}: loading {sizes.rows:,} sendings")
        payload["load_s"] = round(load(database, sizes.rows, sizes.aborted), 1)
        hold_systems(database)
        before = counts(database.conninfo)
        payload["counts_before"] = before
        payload["failures_by_cause"] = cause_counts(database.conninfo)
        practice = str(busiest_practice(database.conninfo))
        payload["practice"] = practice
        log(f"loaded: {before}")
        env = service_env(database.sqlalchemy_url, Path(tmp) / "var", secrets.token_urlsafe(48))
        token = admin_token(env)
        with serve("admin-serve", ours_command(), env, log_dir) as server:
            payload["checks"] = _checks(server.port, token, practice, database.conninfo)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                routes = runner.run(_measure_routes(server.port, token, sizes, practice))
            wait_for_quiet(max_wait_s=10.0)
            log("measuring the cursor walk")
            routes.append(
                cursor_walk(
                    server.port,
                    "/api/v1/billing/invoices/aborted?limit=100",
                    token,
                    pages=PAGES,
                    walks=sizes.walks,
                    target_ms=PAGE_TARGET_MS,
                )
            )
            payload["routes"] = [r.as_dict() for r in routes]
            selection = {"Filter": {"Status": ["Failed", "Aborted"]}}
            log("bulk resend of every Failed and Aborted sending")
            with worker_process(env, log_dir / "admin-worker.log") as worker:
                resend = run_resend(server.port, token, worker, selection)
            payload["resend"] = resend.as_dict()
        after = counts(database.conninfo)
        payload["counts_after"] = after
        failures_before = before.get("Failed", 0) + before.get("Aborted", 0)
        payload["resend_checks"] = {
            "job_done": resend.status == "Done",
            "accounted": resend.done + resend.skipped + resend.failed == resend.total,
            "total_is_all_failures": resend.total == failures_before,
            "no_failures_left": after.get("Failed", 0) + after.get("Aborted", 0)
            == failures_before - resend.done,
            "pending_grew_by_done": after.get("Pending", 0) - before.get("Pending", 0)
            == resend.done,
            "rss_growth_mib": round((resend.rss_peak_kib - resend.rss_before_kib) / 1024, 1),
            "rss_bounded": (resend.rss_peak_kib - resend.rss_before_kib) / 1024
            < RSS_GROWTH_LIMIT_MIB,
        }
    payload["finished_at"] = datetime.now(UTC).isoformat()
    print(_table(routes, resend))
    print("checks:", payload["checks"])
    print("resend checks:", payload["resend_checks"])
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admin", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k sendings, ~10k failures")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "admin-latest.json", help="results JSON"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    payload = execute(args)
    write_json(args.output, payload)
    log(f"wrote {args.output}")
    return 0
