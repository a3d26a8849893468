"""CPU accounting around a measured run (Linux ``/proc``), so contention is visible.

The machine has two cores shared by the load client, the server, PostgreSQL -- and anything
else running.  For every run we record:

* the server process's CPU time per request (user + system): what one answer costs it,
  largely independent of other load;
* the CPU time of the database backends connected to the benchmark database that live through
  the run (the server's pooled connections) per request;
* how busy the whole machine was, and how much of that was *foreign* (neither this process and
  its children, nor the server, nor those backends).  A run with much foreign CPU was disturbed.

`wait_for_quiet` delays a run (bounded) until the machine is nearly idle.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

TICKS = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def _self_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def backend_pids(conninfo: str) -> list[int]:
    """PostgreSQL backends connected to the benchmark database (other than this query's)."""
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


@dataclass(slots=True)
class CpuUsage:
    """CPU seconds spent during one run."""

    elapsed_s: float = 0.0
    server_s: float = 0.0
    backends_s: float = 0.0
    bench_s: float = 0.0
    machine_busy_s: float = 0.0

    @property
    def foreign_s(self) -> float:
        return max(0.0, self.machine_busy_s - self.server_s - self.backends_s - self.bench_s)

    def share(self, seconds: float) -> float:
        """`seconds` as a fraction of the machine's capacity over the run."""
        return seconds / (self.elapsed_s * CPUS) if self.elapsed_s else 0.0


class CpuMeter:
    """``with CpuMeter(server_pid, conninfo) as cpu: ...`` then read ``cpu.usage``."""

    def __init__(self, server_pid: int | None, conninfo: str) -> None:
        self.server_pid = server_pid
        self.conninfo = conninfo
        self.usage = CpuUsage()
        self._start: tuple[float, float, float, tuple[int, int], dict[int, float]] | None = None

    def _backends(self) -> dict[int, float]:
        return {pid: process_cpu_s(pid) for pid in backend_pids(self.conninfo)}

    def __enter__(self) -> CpuMeter:
        backends = self._backends()
        server = process_cpu_s(self.server_pid) if self.server_pid else 0.0
        self._start = (time.perf_counter(), server, _self_cpu_s(), _machine_jiffies(), backends)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._start is not None
        started, server, own, (busy, _total), backends = self._start
        end_busy, _ = _machine_jiffies()
        now = time.perf_counter()
        after = self._backends()
        self.usage = CpuUsage(
            elapsed_s=now - started,
            server_s=(process_cpu_s(self.server_pid) - server) if self.server_pid else 0.0,
            backends_s=sum(after[pid] - backends[pid] for pid in after if pid in backends),
            bench_s=_self_cpu_s() - own,
            machine_busy_s=(end_busy - busy) / TICKS,
        )


def wait_for_quiet(max_wait_s: float = 15.0, busy_below: float = 0.2) -> float:
    """Wait until a 1-second window has the machine less than `busy_below` busy.

    Returns the last window's busy fraction (0..1); gives up after `max_wait_s`.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        busy0, total0 = _machine_jiffies()
        time.sleep(1.0)
        busy1, total1 = _machine_jiffies()
        fraction = (busy1 - busy0) / max(total1 - total0, 1)
        if fraction < busy_below or time.monotonic() > deadline:
            return fraction
