"""What our worker asks of PostgreSQL per delivery: statements, transactions, connections.

``python -m benchmarks.delivery.sqlcount [--count 2000] [--concurrency 64]`` runs the real
`Worker` (``invoice_outbox.runner.run_background_worker``, as ``invoice-outbox worker``
does, LISTEN included) in this process against a fresh queue and a local receiver, with
SQLAlchemy event listeners counting:

* every statement executed through SQLAlchemy, by kind (verb and table);
* transactions begun and committed, pool checkouts (each one pings the connection first:
  the engine has ``pool_pre_ping=True``), and new DBAPI connections opened.

The counts are divided by the number of deliveries.  Timing is not measured here (listeners
cost time); this explains the CPU numbers of the main benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr
from sqlalchemy import event

from benchmarks.delivery.drain import COUNT_SENT
from benchmarks.delivery.receiver import run_receiver
from benchmarks.delivery.seed import BENCH_KEYS, prepared_queue
from benchmarks.servers import free_port
from invoice_outbox.db.engine import make_async_engine
from invoice_outbox.runner import run_background_worker, worker_state
from invoice_outbox.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 600.0
_VERB = re.compile(r"^\s*(SELECT|UPDATE|INSERT INTO|DELETE FROM)\s", re.IGNORECASE)
_TABLE = re.compile(r"\b(?:FROM|UPDATE|INTO)\s+(\w+)", re.IGNORECASE)


def kind(statement: str) -> str:
    """'UPDATE sendings', 'SELECT systems ... FOR UPDATE', ... (verb and first table)."""
    verb = _VERB.match(statement)
    table = _TABLE.search(statement)
    label = f"{verb[1].upper() if verb else statement.split()[0]} {table[1] if table else ''}"
    if "FOR UPDATE" in statement.upper():
        label += " (FOR UPDATE)"
    return label.strip()


def _listen(engine: Any, counts: Counter[str]) -> None:
    sync = engine.sync_engine

    @event.listens_for(sync, "before_cursor_execute")
    def _statement(*args: Any) -> None:
        counts[f"statement: {kind(args[2])}"] += 1

    @event.listens_for(sync, "begin")
    def _begin(*_: Any) -> None:
        counts["transaction begun"] += 1

    @event.listens_for(sync, "commit")
    def _commit(*_: Any) -> None:
        counts["transaction committed"] += 1

    @event.listens_for(sync.pool, "checkout")
    def _checkout(*_: Any) -> None:
        counts["pool checkout (+ pre-ping round trip)"] += 1

    @event.listens_for(sync.pool, "connect")
    def _connect(*_: Any) -> None:
        counts["new database connection"] += 1

    @event.listens_for(sync.pool, "close")
    def _close(*_: Any) -> None:
        counts["database connection closed"] += 1


async def _drain(url: str, conninfo: str, count: int, concurrency: int) -> dict[str, Any]:
    settings = Settings(
        database_url=url,
        allow_private_targets=True,
        poll_seconds=1.0,
        document_keys=SecretStr(BENCH_KEYS),
    )
    engine = make_async_engine(settings.database_url)
    counts: Counter[str] = Counter()
    _listen(engine, counts)
    state = await worker_state(settings, engine)
    started = time.perf_counter()
    sent = 0
    try:
        async with (
            run_background_worker(state, enabled=True, concurrency=concurrency),
            await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as poll,
        ):
            while sent < count and time.perf_counter() - started < LIMIT_S:
                await asyncio.sleep(0.5)
                row = await (await poll.execute(COUNT_SENT)).fetchone()
                sent = int(row[0]) if row else 0
    finally:
        await engine.dispose()
    per = {name: round(n / max(sent, 1), 3) for name, n in sorted(counts.items())}
    return {"deliveries": sent, "concurrency": concurrency, "per_delivery": per}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    log = REPO_ROOT / "benchmarks" / "results" / "delivery-logs" / "receiver-sqlcount.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        run_receiver(free_port(), log, REPO_ROOT) as receiver,
        prepared_queue(args.count, receiver.url, enabled=True) as queue,
    ):
        url, conninfo = queue.database.sqlalchemy_url, queue.database.conninfo
        result = asyncio.run(_drain(url, conninfo, args.count, args.concurrency))
    print(
        f"{result['deliveries']:,} deliveries, --concurrency {result['concurrency']}; per delivery:"
    )
    for name, value in result["per_delivery"].items():
        print(f"  {value:8.3f}  {name}")


if __name__ == "__main__":
    main()
