"""CPU per HTTP POST: our HTTP channel (aiohttp) against httpx, the client it replaced.

``python -m benchmarks.delivery.httpcost [--requests 10000] [--concurrency 64,16]`` posts the
same ~0.7 KB document to the local receiver (receiver.py), `concurrency` at a time, in one
asyncio process, and reports this process's CPU time per request, requests per second and the
TCP connections the receiver accepted:

* ``HttpChannel (aiohttp)``: ``HttpChannel.deliver`` as the worker calls it, with the shared
  client of ``new_http_client()``;
* ``httpx, body drained``: the same request with ``httpx.AsyncClient`` (200 connections, body
  read and discarded so connections are kept alive) — the channel's previous implementation,
  whose connection pool costs grow with the number of requests in flight.

Each variant runs in its own subprocess, against its own receiver, after a warm-up.  The
worker is CPU-bound, so CPU per request is what limits deliveries per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.delivery.receiver import run_receiver
from benchmarks.delivery.seed import invoice_document
from benchmarks.servers import free_port
from invoice_outbox.systems.channels.base import Delivery
from invoice_outbox.systems.channels.http import HttpChannel, new_http_client

REPO_ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("HttpChannel (aiohttp)", "httpx, body drained")
WARM_UP = 500


def _delivery(n: int) -> Delivery:
    invoice = uuid.uuid4()
    return Delivery(
        sending_id=uuid.uuid4(),
        idempotency_key=uuid.uuid4().hex,
        practice_id=uuid.uuid4(),
        invoice_id=invoice,
        sending_type="Invoice",
        attempt=1,
        document=invoice_document(str(invoice), str(uuid.uuid4()), f"INV-{n:07d}"),
        content_type="application/json",
    )


async def _run(variant: str, url: str, requests: int, concurrency: int) -> dict[str, Any]:
    aiohttp_client = new_http_client()
    httpx_client = httpx.AsyncClient(
        follow_redirects=False, limits=httpx.Limits(max_connections=200)
    )
    channel = HttpChannel(system="Receiver", url=url, timeout=30.0, client=aiohttp_client)

    async def with_httpx(delivery: Delivery) -> None:
        headers = channel._headers(delivery)
        async with httpx_client.stream(
            "POST", url, content=delivery.document, headers=headers
        ) as r:
            async for _ in r.aiter_raw():
                pass
            if not 200 <= r.status_code < 300:
                raise RuntimeError(f"receiver answered {r.status_code}")

    async def with_channel(delivery: Delivery) -> None:
        await channel.deliver(delivery)

    one: Callable[[Delivery], Awaitable[None]] = (
        with_channel if variant.startswith("HttpChannel") else with_httpx
    )

    async def batch(count: int, first: int) -> None:
        queue = iter(range(first, first + count))

        async def lane() -> None:
            for n in queue:
                await one(_delivery(n))

        await asyncio.gather(*(lane() for _ in range(concurrency)))

    try:
        await batch(WARM_UP, 0)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await batch(requests, WARM_UP)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await httpx_client.aclose()
        await aiohttp_client.close()
    return {
        "variant": variant,
        "requests": requests,
        "cpu_ms_per_request": cpu * 1000 / requests,
        "requests_per_s": requests / wall,
    }


def measure(requests: int, concurrency: int, log_dir: Path) -> list[dict[str, Any]]:
    """Run every variant in its own subprocess against its own receiver; one row each."""
    rows = []
    for variant in VARIANTS:
        with run_receiver(free_port(), log_dir / "receiver-httpcost.log", REPO_ROOT) as receiver:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.delivery.httpcost",
                    "--child",
                    variant,
                    "--url",
                    receiver.url,
                    "--requests",
                    str(requests),
                    "--concurrency",
                    str(concurrency),
                ],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=900,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["connections"] = receiver.counts()["connections"] - 1  # minus `counts`
        result["concurrency"] = concurrency
        rows.append(result)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", default="64,16", help="comma list")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(
            json.dumps(
                asyncio.run(_run(args.child, args.url, args.requests, int(args.concurrency)))
            ),
            flush=True,
        )
        return
    log_dir = REPO_ROOT / "benchmarks" / "results" / "delivery-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        rows = measure(args.requests, concurrency, log_dir)
        for row in rows:
            print(
                f"c={concurrency:<3} {row['variant']:<22} {row['cpu_ms_per_request']:6.3f} CPU "
                f"ms/request {row['requests_per_s']:8,.0f} req/s {row['connections']:>6,} TCP "
                f"connections for {args.requests + WARM_UP:,} requests",
                flush=True,
            )
        ratio = rows[1]["cpu_ms_per_request"] / rows[0]["cpu_ms_per_request"]
        print(f"c={concurrency:<3} httpx / HttpChannel CPU per request: {ratio:.1f}x", flush=True)


if __name__ == "__main__":
    main()
