"""Sampling a worker with py-spy while it drains, and summarising where its CPU went.

`PySpy` runs ``py-spy record --pid P --rate 100 --gil --format raw`` (collapsed stacks) until
stopped with SIGINT.  Only samples of the thread holding the GIL are recorded (the event loop
waiting in epoll releases it), so shares below are shares of the Python time of the worker.

`summarise` reads the collapsed stacks and reports, as shares of all samples:

* ``self``: the leaf frame's function (where the CPU was actually spent);
* ``inclusive``: every function on the stack (once per sample), i.e. the cost of a call tree;
* ``areas``: the leaf frame's library (SQLAlchemy, psycopg, httpx/httpcore/h11, asyncio,
  logging, invoice_outbox, ...);
* ``activities``: what the worker was doing, from the whole stack (first match of
  `ACTIVITIES` wins).  SQLAlchemy's asyncio layer runs each statement in a greenlet, which
  py-spy shows as a separate stack rooted in SQLAlchemy or psycopg: those samples are
  "SQL statement execution (greenlet side)", whichever statement it was.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE_HZ = 100
STOP_TIMEOUT_S = 30.0
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")

#: Leaf-frame file prefixes -> area, first match wins.
AREAS = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("psycopg", "psycopg"),
    ("httpx/", "httpx"),
    ("httpcore/", "httpcore"),
    ("h11/", "h11"),
    ("anyio/", "anyio"),
    ("asyncio/", "asyncio (stdlib)"),
    ("logging/", "logging (stdlib)"),
    ("invoice_outbox/logs.py", "invoice_outbox JSON log formatter"),
    ("invoice_outbox/", "invoice_outbox (other)"),
    ("ssl.py", "ssl"),
    ("socket.py", "socket"),
    ("selectors.py", "selectors"),
    ("typing.py", "typing"),
    ("uuid.py", "uuid"),
    ("datetime.py", "datetime"),
    ("enum.py", "enum"),
)


#: (activity, patterns): a sample belongs to the first activity with a pattern in its stack.
ACTIVITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "database connect/close (pool overflow churn)",
        (
            "_connect_gen (psycopg",
            "connect (psycopg/connection_async.py",
            "AsyncConnection.close (psycopg",
            "_ConnectionRecord.__connect",
        ),
    ),
    ("pool checkout pre-ping", ("_do_ping", "do_ping")),
    (
        "recording outcomes (Worker._save, BatchRecorder, outcomes.record)",
        (
            "Worker._save",
            "BatchRecorder",
            "Worker._write_outcome",
            "record (invoice_outbox/worker/outcomes.py",
        ),
    ),
    (
        "HTTP POST (aiohttp; httpx, httpcore, h11, anyio before)",
        (
            "HttpChannel.deliver",
            "aiohttp/",
            "yarl/",
            "multidict/",
            "httpx/",
            "httpcore/",
            "h11/",
            "anyio/",
        ),
    ),
    ("claim round (Worker._fill)", ("Worker._fill",)),
    ("logging (stdlib logging, JSON formatter)", ("logging/", "invoice_outbox/logs.py")),
    ("thread pool (getaddrinfo for each new HTTP connection)", ("concurrent/futures/thread.py",)),
    ("idle-time check (Worker._idle_seconds)", ("Worker._idle_seconds",)),
)
GREENLET = "SQL statement execution (greenlet side: SQLAlchemy + psycopg)"
EVENT_LOOP = "event loop and task switching (asyncio, selectors)"


def activity(stack: str, root_file: str) -> str:
    for name, patterns in ACTIVITIES:
        if any(p in stack for p in patterns):
            return name
    if root_file.startswith(("sqlalchemy/", "psycopg")) or "greenlet" in root_file:
        return GREENLET
    if "asyncio/" in stack or "selectors.py" in stack:
        return EVENT_LOOP
    return "other"


@dataclass(slots=True)
class PySpy:
    """A running py-spy recorder."""

    process: subprocess.Popen[bytes] | None
    output: Path

    @classmethod
    def start(cls, pid: int, output: Path) -> PySpy:
        # Blocking mode (py-spy pauses the worker for each sample): with --nonblocking a third
        # of the samples failed on this worker, which biases the profile.  --gil: only the
        # thread holding the GIL, i.e. Python actually running (idle executor threads waiting
        # on their queue were otherwise counted as busy).
        command = [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(RATE_HZ),
            "--gil",
            "--format",
            "raw",
            "--output",
            str(output),
        ]
        log = output.with_suffix(".py-spy.log").open("wb")
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        return cls(process=process, output=output)

    def stop(self) -> None:
        """Stop sampling (py-spy writes its file on SIGINT).  Safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text)
    if match is None:
        return text, ""
    return match["name"], match["file"]


def _area(path: str) -> str:
    for prefix, area in AREAS:
        if prefix in path:
            return area
    return "other"


def summarise(path: Path, top: int = 25) -> dict[str, Any]:
    """Self, inclusive and per-area shares of the samples in a py-spy raw file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        leaf_name, leaf_file = frames[-1]
        own[f"{leaf_name} ({leaf_file})"] += count
        areas[_area(leaf_file)] += count
        doing = activity(stack, frames[0][1])
        activities[doing] += count
        leaves.setdefault(doing, Counter())[f"{leaf_name} ({leaf_file})"] += count
        for label in {f"{name} ({file})" for name, file in frames}:
            inclusive[label] += count

    def shares(counter: Counter[str], n: int) -> list[dict[str, Any]]:
        return [
            {"what": what, "samples": c, "share": round(c / total, 4) if total else 0.0}
            for what, c in counter.most_common(n)
        ]

    log = path.with_suffix(".py-spy.log")
    tail = log.read_text(errors="replace")[-1000:] if log.exists() else ""
    errors = re.search(r"Samples: (\d+) Errors: (\d+)", tail)
    return {
        "samples": total,
        "py_spy_errors": int(errors[2]) if errors else None,
        "rate_hz": RATE_HZ,
        "self": shares(own, top),
        "inclusive": shares(inclusive, top * 2),
        "areas": shares(areas, len(AREAS) + 1),
        "activities": shares(activities, len(ACTIVITIES) + 3),
        "activity_leaves": {doing: shares(counter, 6) for doing, counter in leaves.items()},
    }


def format_summary(summary: dict[str, Any], top: int = 12) -> str:
    """A few readable lines: areas, then the top self and inclusive functions."""
    lines = [
        f"py-spy: {summary['samples']:,} on-CPU samples at {summary['rate_hz']} Hz "
        f"({summary.get('py_spy_errors')} failed samples)"
    ]
    lines.append("  by activity (whole stack):")
    for a in summary["activities"]:
        lines.append(f"    {a['share'] * 100:5.1f} %  {a['what']}")
        lines += [
            f"             {leaf['share'] * 100:5.1f} %  {leaf['what']}"
            for leaf in summary["activity_leaves"].get(a["what"], [])[:4]
        ]
    lines.append("  by library (leaf frame):")
    lines += [f"    {a['share'] * 100:5.1f} %  {a['what']}" for a in summary["areas"] if a["share"]]
    lines.append("  self (leaf function):")
    lines += [f"    {s['share'] * 100:5.1f} %  {s['what']}" for s in summary["self"][:top]]
    lines.append("  inclusive (on the stack):")
    lines += [
        f"    {s['share'] * 100:5.1f} %  {s['what']}" for s in summary["inclusive"][: top * 2]
    ]
    return "\n".join(lines)
