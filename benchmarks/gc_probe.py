"""``python -m benchmarks.gc_probe``: where a 10k-row list's server CPU goes, in-process.

Reproduces the profiling finding of benchmarks/README.md.  Creates its own database (1M rows,
10k Aborted, as phase 1 of the benchmark; dropped at the end), imports and builds the real app
so the process holds the service's heap, then streams the aborted list exactly as the route
does (`status_vo_rows`, ``yield_per`` = the service's batch size, `json_rows` per batch) and
reports CPU ms per list and the time the cyclic garbage collector spent in each generation,
under three settings: CPython's defaults, after ``gc.freeze()``, and with a gen-0 threshold
of 50,000.  Each setting applies on top of the previous one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import time
from typing import Any

from benchmarks.database import bench_database, vacuum_analyze, without_indexes
from benchmarks.dataset import LoadPlan, load_sendings
from invoice_outbox.app import create_app
from invoice_outbox.db.engine import make_async_engine
from invoice_outbox.legacy.json_format import json_rows
from invoice_outbox.sendings.queries import status_vo_rows
from invoice_outbox.sendings.status import Status
from invoice_outbox.settings import Settings


class GcClock:
    """Time and count of collections per generation (via ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.counts[info["generation"]] += 1


async def one_list(engine: Any, batch: int) -> None:
    """The route's work for one answer, minus HTTP: stream the rows, write the JSON."""
    async with engine.connect() as connection:
        result = await connection.stream(
            status_vo_rows(Status.ABORTED).execution_options(yield_per=batch)
        )
        first = True
        async for rows in result.partitions(batch):
            json_rows(rows, first=first)
            first = False


def _defaults() -> None:
    """Leave the collector as CPython starts it (thresholds 700, 10, 10)."""


def _freeze() -> None:
    """Move everything alive now (modules, app, engine) out of the collector's sight."""
    gc.collect()
    gc.freeze()


def _threshold() -> None:
    """Collect generation 0 after 50,000 net container allocations instead of 700."""
    gc.set_threshold(50_000, 20, 20)


async def probe(url: str, repeats: int) -> None:
    settings = Settings(database_url=url, jwt_secret=secrets.token_urlsafe(48))
    app = create_app(settings)  # noqa: F841  (kept alive: the server's heap)
    engine = make_async_engine(url)
    batch = settings.stream_batch_rows
    try:
        await one_list(engine, batch)
        print(f"objects tracked by gc: {len(gc.get_objects()):,}; batch {batch} rows")
        steps = (
            ("CPython defaults", _defaults),
            ("+ gc.freeze()", _freeze),
            ("+ threshold 50000", _threshold),
        )
        for label, apply in steps:
            apply()
            clock = GcClock()
            gc.callbacks.append(clock)
            started = time.process_time()
            for _ in range(repeats):
                await one_list(engine, batch)
            cpu_ms = (time.process_time() - started) / repeats * 1000
            gc.callbacks.remove(clock)
            per_gen = ", ".join(
                f"gen{g} {count / repeats:.1f}x {seconds / repeats * 1000:.1f} ms"
                for g, (count, seconds) in enumerate(zip(clock.counts, clock.seconds, strict=True))
            )
            print(f"{label:<18} {cpu_ms:6.1f} ms CPU per list; GC per list: {per_gen}")
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gc_probe", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--aborted", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with bench_database() as database:
        with without_indexes(database.conninfo):
            load_sendings(database.conninfo, LoadPlan(args.rows, args.aborted, seed=1))
        vacuum_analyze(database.conninfo)
        asyncio.run(probe(database.sqlalchemy_url, args.repeats))


if __name__ == "__main__":
    main()
