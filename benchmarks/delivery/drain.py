"""Watching a queue drain, and checking afterwards that every delivery happened exactly once.

`watch` polls every `POLL_S` seconds (bounded by a time limit): the number of ``Sent``
sendings, and ``VmRSS`` of each process being watched.  It stops when all are Sent, when the
limit passes, or when a watched process exits.

Two rates are reported for every contender:

* **rate**: sendings / (last ``sent_at`` - first attempt's ``started_at``), both written by
  the contender itself as it delivered.  It excludes process start-up and polling granularity,
  so it is the same measure for every contender (the headline number);
* **wall rate**: sendings / (time from "go" until the poller saw the last one Sent), go being
  when deliveries were allowed to start (see each contender); it includes up to one polling
  interval and, for Celery, the worker's start-up.

`verify` checks every sending is Sent with exactly one attempt row, and that the receiver saw
exactly one request per sending with each sending's own idempotency key (counts, duplicates
and an order-free digest of the keys compared with the database's keys).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from benchmarks.delivery.meter import PgCpu, rss_kib
from benchmarks.delivery.receiver import Receiver, key_hash

POLL_S = 0.5
STALL_S = 60.0  # no new Sent row for this long: something is broken, stop waiting
COUNT_SENT = "SELECT count(*) FROM sendings WHERE status = 'Sent'"


@dataclass(slots=True)
class Watch:
    """What the poller saw: one sample per tick."""

    go: float
    samples: list[dict[str, Any]] = field(default_factory=list)
    finished_at: float | None = None
    stopped_because: str = ""
    poll_query_s: float = 0.0

    @property
    def wall_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.go


def watch(
    conninfo: str,
    count: int,
    processes: list[subprocess.Popen[bytes]],
    *,
    go: float,
    limit_s: float,
    pg_cpu: PgCpu,
    rss_pids: list[int] | None = None,
    progress_every_s: float = 10.0,
) -> Watch:
    """Poll until `count` sendings are Sent, `limit_s` passes, progress stalls for `STALL_S`
    seconds, or a process exits."""
    result = Watch(go=go)
    last_sent, progressed_at = -1, go
    pids = rss_pids if rss_pids is not None else [p.pid for p in processes]
    next_report = go + progress_every_s
    with psycopg.connect(conninfo, autocommit=True) as connection:
        tick = go
        while True:
            query_started = time.perf_counter()
            row = connection.execute(COUNT_SENT).fetchone()
            now = time.perf_counter()
            result.poll_query_s += now - query_started
            pg_cpu.sample()
            sent = int(row[0]) if row else 0
            result.samples.append(
                {"t": round(now - go, 3), "sent": sent, "rss_kib": [rss_kib(p)[0] for p in pids]}
            )
            if sent >= count:
                result.finished_at, result.stopped_because = now, "all sent"
                return result
            if now - go > limit_s:
                result.stopped_because = f"time limit {limit_s:.0f} s"
                return result
            if sent != last_sent:
                last_sent, progressed_at = sent, now
            elif now - progressed_at > STALL_S:
                result.stopped_because = f"stalled: no progress for {STALL_S:.0f} s at {sent:,}"
                return result
            dead = [p.pid for p in processes if p.poll() is not None]
            if dead:
                result.stopped_because = f"process(es) {dead} exited"
                return result
            if now >= next_report:
                print(f"    {now - go:6.1f} s: {sent:,}/{count:,} Sent", flush=True)
                next_report += progress_every_s
            tick += POLL_S
            time.sleep(max(0.0, tick - time.perf_counter()))


def _keys_digest(connection: psycopg.Connection[Any]) -> int:
    digest = 0
    with connection.cursor(name="keys") as cursor:
        cursor.itersize = 20_000
        cursor.execute("SELECT idempotency_key FROM sendings")
        for (key,) in cursor:
            digest ^= key_hash(str(key).encode())
    return digest


def verify(conninfo: str, count: int, receiver: Receiver | None) -> dict[str, Any]:
    """Exact counts in the database (and at the receiver, if any); `ok` when all hold."""
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'Sent'), "
            "count(*) FILTER (WHERE attempts = 1), max(sent_at), "
            "count(DISTINCT sending_time) FROM sendings"
        ).fetchone()
        attempts = connection.execute(
            "SELECT count(*), count(DISTINCT sending_id), count(*) FILTER (WHERE outcome = 'Sent'),"
            " min(started_at) FROM attempts"
        ).fetchone()
        digest = _keys_digest(connection) if receiver is not None else 0
    assert row is not None
    assert attempts is not None
    span = (row[3] - attempts[3]).total_seconds() if row[3] and attempts[3] else None
    checks: dict[str, Any] = {
        "sendings": row[0],
        "sent": row[1],
        "sendings_with_one_attempt": row[2],
        "attempt_rows": attempts[0],
        "attempt_rows_distinct_sendings": attempts[1],
        "attempt_rows_sent": attempts[2],
        "distinct_sending_times": row[4],
    }
    ok = row[0] == row[1] == row[2] == count and attempts[0] == attempts[1] == attempts[2] == count
    if receiver is not None:
        seen = receiver.counts()
        checks.update(
            receiver_requests=seen["requests"],
            receiver_distinct_keys=seen["distinct_keys"],
            receiver_duplicates=seen["duplicates"],
            receiver_missing_key=seen["missing_key"],
            receiver_keys_match_database=seen["key_digest"] == digest,
            receiver_tcp_connections=seen["connections"],
        )
        ok = ok and seen["requests"] == seen["distinct_keys"] == count
        ok = ok and seen["duplicates"] == seen["missing_key"] == 0 and seen["key_digest"] == digest
    return {"ok": ok, "span_s": span, **checks}


WARM_UP_SHARE = 0.2  # pools filled, statements cached: growth after this point is growth


def rss_summary(samples: list[dict[str, Any]], index: int, count: int) -> dict[str, Any]:
    """One process's RSS (KiB) at go, at 20/50/90 % drained, at the end, and its peak.

    `flat` holds when, after the warm-up (the first 20 % of the queue: connection pools
    filled, statements compiled and cached), the RSS grew by at most 4 MiB or 5 % (whichever
    is larger) until the end, and never rose more than twice that above its warm-up value:
    memory does not grow with the number of deliveries made.
    """
    series = [(s["sent"], s["rss_kib"][index]) for s in samples if s["rss_kib"][index]]
    if not series:
        return {"flat": False}

    def at(share: float) -> int:
        return int(next((rss for sent, rss in series if sent >= share * count), series[-1][1]))

    start, end = series[0][1], series[-1][1]
    warm = at(WARM_UP_SHARE)
    after = [rss for sent, rss in series if sent >= WARM_UP_SHARE * count] or [end]
    peak = max(rss for _, rss in series)
    allowed = max(0.05 * warm, 4096)
    flat = end - warm <= allowed and max(after) - warm <= 2 * allowed
    return {
        "start_kib": start,
        "warm_kib": warm,
        "at_50pct_kib": at(0.5),
        "at_90pct_kib": at(0.9),
        "end_kib": end,
        "peak_kib": peak,
        "growth_after_warm_up_kib": end - warm,
        "flat": flat,
    }


@dataclass(frozen=True, slots=True)
class DrainResult:
    """One contender's drain of one queue."""

    contender: str
    config: str
    count: int
    rate: float | None
    wall_rate: float | None
    span_s: float | None
    wall_s: float | None
    stopped_because: str
    cpu: dict[str, float]
    verify: dict[str, Any]
    rss: list[dict[str, Any]]
    extra: dict[str, Any]
    samples: list[dict[str, Any]]

    def as_dict(self, with_samples: bool = True) -> dict[str, Any]:
        data = {
            "contender": self.contender,
            "config": self.config,
            "count": self.count,
            "rate_per_s": self.rate,
            "wall_rate_per_s": self.wall_rate,
            "span_s": self.span_s,
            "wall_s": self.wall_s,
            "stopped_because": self.stopped_because,
            "cpu": self.cpu,
            "verify": self.verify,
            "rss": self.rss,
            "extra": self.extra,
        }
        if with_samples:
            data["samples"] = self.samples
        return data


def rates(verified: dict[str, Any], watched: Watch) -> tuple[float | None, float | None]:
    """(rate, wall rate).  An unfinished drain's rate counts the sendings Sent so far."""
    span, sent = verified.get("span_s"), int(verified.get("sent") or 0)
    rate = sent / span if span else None
    wall = watched.wall_s
    return rate, (sent / wall if wall else None)
