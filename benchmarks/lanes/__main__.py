"""``python -m benchmarks.lanes``: fair per-system lanes, on PostgreSQL, against named baselines.

Scenarios (each on a fresh database; one local receiver process, `benchmarks.delivery.receiver`,
answering at once or, under ``/delay/<ms>/``, after that long):

* ``throughput``: SLOW LANES, 20 systems answering after 200 ms, 20k sendings, one worker,
  against the IDEAL min(worker cap, sum of lane limits) / latency = 800/s; and its worker CPU
  per delivery against the FAST LANE baseline (one system answering at once, measured in the
  same run);
* ``mixed``: a fast lane under 50 invoices/s for 20 s, ALONE, then BESIDE a slow lane with a
  5k backlog (answers after 1 s): p99 202-to-Sent beside / alone;
* ``latency``: 200 invoices/s for 60 s to a fast lane: p50 and p99 202-to-Sent;
* ``held``: 10k sendings of a switched-off system (50 of them on expired leases) and nothing
  else: the worker's CPU as a share of one core over 60 s.

Prints a table and the ratios against their targets; writes benchmarks/results/lanes-latest.json.
See benchmarks/lanes/README.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from benchmarks.database import ADMIN_CONNINFO
from benchmarks.delivery.__main__ import wait_for_other_benchmark
from benchmarks.delivery.receiver import run_receiver
from benchmarks.delivery.report import machine_info, source_version
from benchmarks.lanes.drains import fast_lane, slow_lanes
from benchmarks.lanes.held import held
from benchmarks.lanes.seed import Lane
from benchmarks.lanes.steady import Latency, steady
from benchmarks.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SCENARIOS = ("throughput", "mixed", "latency", "held")
#: The last commit before lanes (issue 11): its worker is TODAY's (it reads sealed documents,
#: as the seeded ones are).
TODAY_COMMIT = "cecf69b"


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lanes", description=__doc__)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios")
    parser.add_argument("--slow-count", type=int, default=20_000)
    parser.add_argument("--fast-count", type=int, default=20_000)
    parser.add_argument("--latency-rate", type=float, default=200.0)
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--mixed-rate", type=float, default=50.0)
    parser.add_argument("--mixed-seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=5_000)
    parser.add_argument("--held-count", type=int, default=10_000)
    parser.add_argument("--held-seconds", type=float, default=60.0)
    parser.add_argument("--limit-s", type=float, default=600.0, help="time limit per drain")
    parser.add_argument(
        "--today-src",
        type=Path,
        default=None,
        help="a source tree (its src/) whose worker is the TODAY baseline of CPU per delivery",
    )
    parser.add_argument(
        "--today-commit",
        default=TODAY_COMMIT,
        help="else the commit whose src/ is unpacked (git archive) for the TODAY baseline; "
        "'' for none (the fast lane is the baseline then)",
    )
    parser.add_argument("--no-wait", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "lanes-latest.json")
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def _ratio(
    name: str, value: float | None, target: str, met: bool | None, detail: str
) -> dict[str, Any]:
    return {"name": name, "value": value, "target": target, "met": met, "detail": detail}


def _unpack(commit: str) -> Path | None:
    """`commit`'s src/ unpacked in the temp directory (git archive; outside the repository,
    where linters would find it), or None (said why)."""
    if not commit:
        return None
    target = Path(tempfile.gettempdir()) / f"invoice-outbox-today-{commit}"
    if (target / "src" / "invoice_outbox").is_dir():
        return target / "src"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", commit, "src"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        log(f"no TODAY baseline: git archive {commit} failed ({archive.stderr.decode()[:200]})")
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


def _show_latency(result: Latency) -> None:
    log(
        f"  => {result.accepted:,}/{result.submitted:,} accepted, {result.sent:,} sent; "
        f"202-to-Sent p50 {result.p50_ms} ms, p90 {result.p90_ms} ms, p99 {result.p99_ms} ms, "
        f"max {result.max_ms} ms; submit p50 {result.submit_p50_ms} ms; worker "
        f"{result.worker_cpu_ms} ms CPU per delivery; machine {result.machine_busy_share:.0%} busy"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    log_dir = RESULTS_DIR / "lanes-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    waited = 0.0 if args.no_wait else wait_for_other_benchmark()
    source = source_version(REPO_ROOT)
    log(f"measuring {source['commit'][:10]} ({source['subject']})")
    results: dict[str, Any] = {}
    ratios: list[dict[str, Any]] = []
    started = time.perf_counter()
    error: str | None = None
    try:
        with run_receiver(free_port(), log_dir / "lanes-receiver.log", REPO_ROOT) as receiver:
            if "throughput" in only:
                today = None
                today_src = args.today_src or _unpack(args.today_commit)
                if today_src is not None:
                    log(f"today: {today_src}'s worker, fast lane, {args.fast_count:,}")
                    today = fast_lane(receiver, args.fast_count, log_dir, args.limit_s, today_src)
                    log(f"  => {today.rate or 0:,.0f}/s, {today.worker_cpu_ms:.3f} ms CPU each")
                    results["today_fast_lane"] = today.as_dict()
                log(f"fast lane: {args.fast_count:,} sendings, one worker")
                fast = fast_lane(receiver, args.fast_count, log_dir, args.limit_s)
                log(f"  => {fast.rate or 0:,.0f}/s, worker {fast.worker_cpu_ms:.3f} ms CPU each")
                log(f"slow lanes: 20 x 200 ms, {args.slow_count:,} sendings, one worker")
                slow = slow_lanes(receiver, args.slow_count, log_dir, args.limit_s)
                log(
                    f"  => {slow.rate or 0:,.0f}/s of ideal {slow.ideal:,.0f}/s, worker "
                    f"{slow.worker_cpu_ms:.3f} ms CPU each ({slow.stopped_because}); attempts "
                    f"took {slow.mean_attempt_ms} ms on average; lane slots "
                    f"{slow.slot_occupancy:.1%} occupied; machine "
                    f"{slow.cpu.get('machine_busy_share', 0):.0%} busy"
                )
                results["fast_lane"] = fast.as_dict()
                results["slow_lanes"] = slow.as_dict()
                share = (slow.rate or 0) / slow.ideal if slow.ideal else None
                ratios.append(
                    _ratio(
                        "slow lanes / ideal",
                        share,
                        ">= 0.9",
                        share is not None and share >= 0.9,
                        f"{slow.rate or 0:,.0f}/s vs min(256, 20x8)/0.2 s = {slow.ideal:,.0f}/s",
                    )
                )
                ratios.append(
                    _ratio(
                        "slow lanes: slots occupied (the scheduler's share)",
                        slow.slot_occupancy,
                        "(info)",
                        None,
                        f"attempts took {slow.mean_attempt_ms} ms on average (200 ms asked)",
                    )
                )
                base = today or fast
                label = "today's" if today else "the fast lane's"
                for what, drained in (("slow lanes", slow), ("fast lane", fast)):
                    if drained is base:
                        continue
                    cpu = (
                        drained.worker_cpu_ms / base.worker_cpu_ms
                        if drained.worker_cpu_ms and base.worker_cpu_ms
                        else None
                    )
                    ratios.append(
                        _ratio(
                            f"{what} CPU per delivery / {label} (fast lane)",
                            cpu,
                            "<= 1.0",
                            cpu is not None and cpu <= 1.0,
                            f"{drained.worker_cpu_ms:.3f} vs {base.worker_cpu_ms:.3f} ms (worker)",
                        )
                    )
            if "mixed" in only:
                log(f"fast lane alone: {args.mixed_rate:.0f}/s for {args.mixed_seconds:.0f} s")
                alone = steady(
                    "alone",
                    receiver.url,
                    receiver.pid,
                    rate=args.mixed_rate,
                    seconds=args.mixed_seconds,
                    log_dir=log_dir,
                )
                _show_latency(alone)
                log(f"fast lane beside a slow lane with {args.backlog:,} queued (1 s answers)")
                slow_lane = Lane("SlowSwitch", receiver.slow_url(1000, "slowswitch"))
                beside = steady(
                    "beside-slow",
                    receiver.url,
                    receiver.pid,
                    rate=args.mixed_rate,
                    seconds=args.mixed_seconds,
                    log_dir=log_dir,
                    backlog=(slow_lane, args.backlog),
                )
                _show_latency(beside)
                results["fast_alone"] = alone.as_dict()
                results["fast_beside_slow"] = beside.as_dict()
                value = beside.p99_ms / alone.p99_ms if beside.p99_ms and alone.p99_ms else None
                ratios.append(
                    _ratio(
                        "fast lane p99 beside a slow backlog / alone",
                        value,
                        "<= 2.0",
                        value is not None and value <= 2.0,
                        f"{beside.p99_ms} vs {alone.p99_ms} ms",
                    )
                )
            if "latency" in only:
                log(f"latency: {args.latency_rate:.0f}/s for {args.latency_seconds:.0f} s")
                latency = steady(
                    "latency",
                    receiver.url,
                    receiver.pid,
                    rate=args.latency_rate,
                    seconds=args.latency_seconds,
                    log_dir=log_dir,
                )
                _show_latency(latency)
                results["latency"] = latency.as_dict()
                for name, value, target in (
                    ("202-to-Sent p50 (ms)", latency.p50_ms, 20.0),
                    ("202-to-Sent p99 (ms)", latency.p99_ms, 100.0),
                ):
                    ratios.append(
                        _ratio(
                            name,
                            value,
                            f"<= {target:.0f}",
                            value is not None and value <= target,
                            f"{latency.accepted:,} invoices at {latency.offered_per_s:.0f}/s",
                        )
                    )
            if "held" in only:
                log(f"held: {args.held_count:,} for a switched-off system")
                idle = held(receiver.url, args.held_count, args.held_seconds, log_dir)
                log(
                    f"  => worker {idle.worker_cpu_s:.3f} s CPU in {idle.seconds:.0f} s "
                    f"({idle.core_share:.3%} of a core), {idle.claim_rounds} claim rounds, "
                    f"{idle.released_stale_leases} stale leases released"
                )
                results["held"] = idle.as_dict()
                ratios.append(
                    _ratio(
                        "worker CPU with only held work (share of a core)",
                        idle.core_share,
                        "< 0.01",
                        idle.core_share < 0.01,
                        f"{idle.held:,} held, {idle.claim_rounds} claim rounds in {idle.seconds} s",
                    )
                )
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if ratios:
            log("\nRatios")
            for r in ratios:
                shown = "-" if r["value"] is None else f"{r['value']:.3f}"
                state = {True: "met", False: "NOT met", None: ""}[r["met"]]
                line = f"  {r['name']:<52} {shown:>9}  target {r['target']:<7} {state}"
                log(f"{line}  ({r['detail']})")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "benchmark": "lanes",
                    "error": error,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "machine": machine_info(ADMIN_CONNINFO),
                    "source": source,
                    "waited_for_other_benchmark_s": round(waited, 1),
                    "total_s": round(time.perf_counter() - started, 1),
                    "results": results,
                    "ratios": ratios,
                },
                indent=2,
                default=str,
            )
        )
        log(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
