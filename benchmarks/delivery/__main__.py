"""``python -m benchmarks.delivery``: end-to-end deliveries per second on PostgreSQL.

Contenders, each on a fresh database holding the same queue of due sendings (see seed.py),
delivering to a local receiver that answers 200 at once (see receiver.py):

* OURS: 1, 2 (one per core here), then 4 ``invoice-outbox worker --concurrency 64`` processes
  (ours.py), and at the end one more 1-process drain under py-spy (profiling.py);
* BASELINE: one Celery task per sending on the local RabbitMQ (celery_app.py, baseline.py);
* CEILING: pgbench running our worker's delivery SQL without Python or HTTP (ceiling.py).

Prints a table and the ratios against their targets; writes every number to
benchmarks/results/delivery-latest.json.  See benchmarks/delivery/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any, NoReturn

from benchmarks.database import ADMIN_CONNINFO
from benchmarks.delivery.baseline import run_celery
from benchmarks.delivery.ceiling import run_pgbench
from benchmarks.delivery.drain import DrainResult
from benchmarks.delivery.ours import run_ours
from benchmarks.delivery.profiling import PY_SPY, format_summary, summarise
from benchmarks.delivery.receiver import run_receiver
from benchmarks.delivery.report import (
    LEGEND,
    compute_ratios,
    format_ratios,
    format_table,
    machine_info,
    source_version,
    write_json,
)
from benchmarks.delivery.seed import prepared_queue
from benchmarks.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
OTHER_BENCHMARKS = ("benchmarks.run", "benchmarks.admin")
WAIT_POLL_S = 30.0
WAIT_MAX_S = 30 * 60.0
NO_RECEIVER_URL = "http://127.0.0.1:9/unused"


def log(message: str) -> None:
    print(message, flush=True)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _configs(text: str) -> list[tuple[int, int]]:
    """'1x64,4x64' -> [(1, 64), (4, 64)]."""
    pairs = [part.lower().split("x") for part in text.split(",") if part.strip()]
    return [(int(workers), int(concurrency)) for workers, concurrency in pairs]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.delivery", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--count", type=int, default=100_000, help="sendings per queue")
    parser.add_argument(
        "--celery-count",
        type=int,
        default=None,
        help="sendings for the Celery baseline (default: --count)",
    )
    parser.add_argument(
        "--ours",
        type=_configs,
        default=[(1, 64), (2, 64), (4, 64)],
        help="worker runs as PROCESSESxCONCURRENCY, e.g. 1x64,4x64,1x32 (2 = one per core here)",
    )
    parser.add_argument("--celery-pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--celery-concurrency", type=int, default=4)
    parser.add_argument(
        "--celery-prefetch", type=int, default=16, help="worker_prefetch_multiplier"
    )
    parser.add_argument("--pgbench-clients", type=_ints, default=[4, 8])
    parser.add_argument(
        "--pgbench-batch",
        type=_ints,
        default=[1, 32],
        help="rows per claim round in the pgbench script",
    )
    parser.add_argument(
        "--only", default="ours,celery,ceiling", help="comma list of ours, celery, ceiling"
    )
    parser.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the extra drain under py-spy",
    )
    parser.add_argument("--profile-count", type=int, default=30_000)
    parser.add_argument("--limit-s", type=float, default=1200.0, help="time limit per drain")
    parser.add_argument(
        "--no-wait", action="store_true", help="do not wait for benchmarks.run/admin to finish"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "delivery-latest.json")
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # every `finally` (processes, databases, queue) still runs


def _other_benchmark_running() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(f"-m {name}" in cmdline for name in OTHER_BENCHMARKS):
            found.append(int(entry.name))
    return found


def wait_for_other_benchmark() -> float:
    """Wait (polling every 30 s, at most 30 min) while another benchmark runs; seconds waited."""
    started = time.monotonic()
    names = " or ".join(OTHER_BENCHMARKS)
    while pids := _other_benchmark_running():
        waited = time.monotonic() - started
        if waited > WAIT_MAX_S:
            log(f"warning: {names} still running (pids {pids}); measuring anyway")
            break
        log(f"waiting for {names} (pids {pids}) to finish ({waited:.0f} s so far)")
        time.sleep(WAIT_POLL_S)
    return time.monotonic() - started


def _ours(
    workers: int,
    concurrency: int,
    count: int,
    limit_s: float,
    log_dir: Path,
    profile_to: Path | None = None,
) -> DrainResult:
    log(f"ours: {workers} worker(s) x --concurrency {concurrency}, {count:,} sendings")
    with (
        run_receiver(free_port(), log_dir / f"receiver-ours-{workers}.log", REPO_ROOT) as receiver,
        prepared_queue(count, receiver.url, enabled=False) as queue,
    ):
        log(f"  queue ready in {queue.seconds:.1f} s ({queue.check})")
        return run_ours(
            queue,
            receiver,
            workers=workers,
            concurrency=concurrency,
            log_dir=log_dir,
            limit_s=limit_s,
            profile_to=profile_to,
        )


def _celery(args: argparse.Namespace, count: int, log_dir: Path) -> DrainResult:
    log(f"celery: --pool {args.celery_pool} -c {args.celery_concurrency}, {count:,} sendings")
    with (
        run_receiver(free_port(), log_dir / "receiver-celery.log", REPO_ROOT) as receiver,
        prepared_queue(count, receiver.url, enabled=True) as queue,
    ):
        log(f"  queue ready in {queue.seconds:.1f} s")
        return run_celery(
            queue,
            receiver,
            pool=args.celery_pool,
            concurrency=args.celery_concurrency,
            prefetch=args.celery_prefetch,
            log_dir=log_dir,
            limit_s=args.limit_s,
        )


def _ceiling(count: int, clients: int, batch: int, log_dir: Path) -> DrainResult:
    log(f"ceiling: pgbench -c {clients}, claim batch {batch}, {count:,} sendings")
    with prepared_queue(count, NO_RECEIVER_URL, enabled=True) as queue:
        log(f"  queue ready in {queue.seconds:.1f} s")
        return run_pgbench(queue, clients=clients, batch=batch, log_dir=log_dir)


def _show(result: DrainResult) -> None:
    rate = "-" if result.rate is None else f"{result.rate:,.0f}"
    log(
        f"  => {rate} deliveries/s over {result.span_s or 0:.1f} s ({result.stopped_because}); "
        f"checks {'ok' if result.verify.get('ok') else 'FAILED'}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    only = {part.strip() for part in args.only.split(",")}
    log_dir = RESULTS_DIR / "delivery-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    waited = 0.0 if args.no_wait else wait_for_other_benchmark()
    source = source_version(REPO_ROOT)
    log(
        f"measuring {source['commit'][:10]} ({source['subject']}); "
        f"uncommitted src changes: {len(source['src_changes'])}"
    )
    results: list[DrainResult] = []
    profile: dict[str, Any] | None = None
    error: str | None = None
    started = time.perf_counter()
    try:
        if "ours" in only:
            for workers, concurrency in args.ours:
                results.append(_ours(workers, concurrency, args.count, args.limit_s, log_dir))
                _show(results[-1])
        if "celery" in only:
            results.append(_celery(args, args.celery_count or args.count, log_dir))
            _show(results[-1])
        if "ceiling" in only:
            for clients in args.pgbench_clients:
                for batch in args.pgbench_batch:
                    results.append(_ceiling(args.count, clients, batch, log_dir))
                    _show(results[-1])
        if args.profile and not PY_SPY.exists():
            log(f"no {PY_SPY}: profiling skipped (pip install py-spy)")
        elif args.profile:
            raw = log_dir / "py-spy-worker.txt"
            workers, concurrency = next((c for c in args.ours if c[0] == 1), (1, 64))
            profiled = _ours(workers, concurrency, args.profile_count, args.limit_s, log_dir, raw)
            profile = {"run": profiled.as_dict(with_samples=False), "summary": summarise(raw)}
            log(format_summary(profile["summary"]))
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        ratios = compute_ratios(results)
        if results:
            log("\nResults\n" + format_table(results) + "\n" + LEGEND)
            log("\nRatios\n" + format_ratios(ratios))
        write_json(
            args.output,
            {
                "benchmark": "delivery",
                "error": error,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "machine": machine_info(ADMIN_CONNINFO),
                "source": source,
                "waited_for_other_benchmark_s": round(waited, 1),
                "total_s": round(time.perf_counter() - started, 1),
                "results": [r.as_dict() for r in results],
                "ratios": [_ratio_dict(r) for r in ratios],
                "profile": profile,
            },
        )
        log(f"\nwrote {args.output}")
    return 0


def _ratio_dict(ratio: Any) -> dict[str, Any]:
    return {k: getattr(ratio, k) for k in ("name", "value", "target", "met", "detail")}


if __name__ == "__main__":
    raise SystemExit(main())
