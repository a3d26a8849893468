"""One-at-a-time latency of the admin list, cause and practice routes.

Fixed URLs are driven by `benchmarks.loadgen` (raw HTTP/1.1, one keep-alive connection, c=1).
Following ``X-Next-Cursor`` needs the response headers, which that client does not keep, so the
cursor walk uses `http.client` on one keep-alive connection; its latency is likewise from
sending the request to having read the whole body.
"""

from __future__ import annotations

import http.client
import math
import time
import urllib.parse
from dataclasses import dataclass, field

from benchmarks.loadgen import HttpWorkers, get_request, run_fixed
from benchmarks.servers import HOST

TIME_LIMIT_S = 120.0


@dataclass(slots=True)
class RouteResult:
    """Latencies of one route (milliseconds) and what a "fast" answer means for it."""

    name: str
    path: str
    target_p99_ms: float
    planned: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    response_bytes: int = 0
    total_count: int | None = None

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile in ms (NaN when nothing completed)."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]

    @property
    def met(self) -> bool:
        return (
            not self.errors
            and len(self.latencies_ms) == self.planned
            and self.percentile(99) < self.target_p99_ms
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "planned": self.planned,
            "completed": len(self.latencies_ms),
            "errors": self.errors[:5],
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies_ms, default=math.nan), 2),
            "response_bytes": self.response_bytes,
            "total_count": self.total_count,
            "target_p99_ms": self.target_p99_ms,
            "target_met": self.met,
            "latencies_ms": [round(v, 2) for v in self.latencies_ms],
        }


async def measure_route(
    name: str, port: int, path: str, token: str, *, requests: int, warmup: int, target_ms: float
) -> RouteResult:
    """`warmup` unmeasured then `requests` measured GETs of `path`, one at a time."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    workers = HttpWorkers(HOST, port, get_request(HOST, port, path, headers), concurrency=1)
    result = RouteResult(name=name, path=path, target_p99_ms=target_ms, planned=requests)
    try:
        await workers.open()
        warm = await run_fixed(workers.jobs, warmup, TIME_LIMIT_S)
        if warm.errors:
            result.errors.extend(warm.errors)
            return result
        run = await run_fixed(workers.jobs, requests, TIME_LIMIT_S)
    finally:
        workers.close()
    result.latencies_ms = [s * 1000 for s in run.latencies_s]
    result.errors.extend(run.errors)
    result.response_bytes = run.response_bytes
    return result


def total_count(port: int, path: str, token: str) -> int | None:
    """The route's ``X-Total-Count`` (checked against SQL by the caller)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        value = response.getheader("X-Total-Count")
        return None if value is None else int(value)
    finally:
        connection.close()


def cursor_walk(
    port: int, path: str, token: str, *, pages: int, walks: int, target_ms: float
) -> RouteResult:
    """`walks` times: the first page of `path`, then `pages - 1` more by ``X-Next-Cursor``.

    Every page is timed; a walk that ends early (no cursor) is an error.
    """
    name = f"aborted, {pages} pages by cursor"
    result = RouteResult(name=name, path=path, target_p99_ms=target_ms, planned=pages * walks)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        for _ in range(walks):
            url = path
            for page in range(pages):
                started = time.perf_counter()
                connection.request("GET", url, headers=headers)
                response = connection.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    result.errors.append(f"page {page}: HTTP {response.status}")
                    break
                result.latencies_ms.append(elapsed * 1000)
                result.response_bytes = len(body)
                cursor = response.getheader("X-Next-Cursor")
                if page < pages - 1:
                    if not cursor:
                        result.errors.append(f"page {page}: no X-Next-Cursor")
                        break
                    url = f"{path}&cursor={urllib.parse.quote(cursor, safe='')}"
    finally:
        connection.close()
    return result
