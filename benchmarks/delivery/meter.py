"""CPU and memory accounting from ``/proc`` (Linux), per role, around one drain.

The machine has two cores shared by everything a delivery touches: the contender's processes,
PostgreSQL, the receiver, RabbitMQ (Celery only) and this harness -- and anything else running.
A `CpuSnapshot` reads, at one moment, the CPU seconds (user + system) of:

* ``contender``: the given pids and all their descendants (Celery's prefork children);
* ``postgres``: every ``postgres`` process, plus the CPU of backends that exited during the
  interval (accumulated in the postmaster's ``cutime``/``cstime``), so connections opened and
  closed during a drain count in full.  It includes other databases' backends, if anyone else
  uses the server meanwhile (the machine is shared);
* ``postgres_tracked`` (a lower bound, for comparison): the benchmark database's backends and
  PostgreSQL's background processes, sampled by a `PgCpu` tracker on every poll; backends
  that live shorter than a poll interval are missed;
* ``receiver``: the receiver process;
* ``rabbitmq``: ``beam.smp`` (the broker), always measured, whether or not Celery runs;
* ``harness``: this process (the poller);
* ``machine``: busy jiffies of all CPUs, from which ``foreign`` (anything else) is derived.

The difference of two snapshots is a `CpuUsage`.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from benchmarks.cpu import process_cpu_s

TICKS = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after "(comm)": state is index 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    return text[text.rindex(")") + 2 :].split()


def _processes() -> dict[int, tuple[str, int]]:
    """pid -> (comm, ppid) of every process visible now."""
    table: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        fields = _stat_fields(pid)
        if fields is not None:
            table[pid] = (comm, int(fields[1]))
    return table


def descendants(pid: int, table: dict[int, tuple[str, int]] | None = None) -> list[int]:
    """`pid`'s children, grandchildren, ... (not `pid` itself)."""
    table = table if table is not None else _processes()
    children: dict[int, list[int]] = {}
    for child, (_comm, parent) in table.items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _tree_cpu_s(pids: Iterable[int], table: dict[int, tuple[str, int]]) -> float:
    seen: set[int] = set()
    for pid in pids:
        seen.add(pid)
        seen.update(descendants(pid, table))
    return sum(process_cpu_s(pid) for pid in seen)


def _postgres_cpu_s(table: dict[int, tuple[str, int]]) -> float:
    total = 0.0
    for pid, (comm, parent) in table.items():
        if comm != "postgres":
            continue
        fields = _stat_fields(pid)
        if fields is None:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
        if table.get(parent, ("", 0))[0] != "postgres":  # the postmaster: reaped backends
            total += (int(fields[13]) + int(fields[14])) / TICKS
    return total


def _machine_busy_s() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(values[:8]) - values[3] - values[4]  # minus idle and iowait
    return busy / TICKS


def _self_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float
    contender: float
    postgres: float
    receiver: float
    rabbitmq: float
    harness: float
    machine: float


def snapshot(contender_pids: Iterable[int], receiver_pid: int | None) -> CpuSnapshot:
    table = _processes()
    rabbit = [pid for pid, (comm, _) in table.items() if comm.startswith("beam")]
    return CpuSnapshot(
        at=time.perf_counter(),
        contender=_tree_cpu_s(contender_pids, table),
        postgres=_postgres_cpu_s(table),
        receiver=process_cpu_s(receiver_pid) if receiver_pid else 0.0,
        rabbitmq=_tree_cpu_s(rabbit, table),
        harness=_self_cpu_s(),
        machine=_machine_busy_s(),
    )


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """CPU seconds per role over one interval, and the interval's length."""

    elapsed_s: float
    contender_s: float
    postgres_s: float
    postgres_tracked_s: float
    receiver_s: float
    rabbitmq_s: float
    harness_s: float
    machine_busy_s: float

    @property
    def foreign_s(self) -> float:
        known = (
            self.contender_s + self.postgres_s + self.receiver_s + self.rabbitmq_s + self.harness_s
        )  # postgres_tracked_s is part of postgres_s: not added
        return max(0.0, self.machine_busy_s - known)

    def as_dict(self) -> dict[str, float]:
        values = {k: round(v, 3) for k, v in asdict(self).items()}
        values["foreign_s"] = round(self.foreign_s, 3)
        values["machine_busy_share"] = round(
            self.machine_busy_s / (self.elapsed_s * CPUS) if self.elapsed_s else 0.0, 3
        )
        return values


def usage(before: CpuSnapshot, after: CpuSnapshot, postgres_tracked_s: float) -> CpuUsage:
    return CpuUsage(
        elapsed_s=after.at - before.at,
        contender_s=after.contender - before.contender,
        postgres_s=after.postgres - before.postgres,
        postgres_tracked_s=postgres_tracked_s,
        receiver_s=after.receiver - before.receiver,
        rabbitmq_s=after.rabbitmq - before.rabbitmq,
        harness_s=after.harness - before.harness,
        machine_busy_s=after.machine - before.machine,
    )


class PgCpu:
    """CPU of the benchmark database's backends and PostgreSQL's background processes.

    `sample` reads them now; the first sample is the baseline.  A backend first seen later
    (a new connection) counts from zero; one that exits keeps its last sampled value.
    """

    def __init__(self, conninfo: str) -> None:
        self._connection = psycopg.connect(conninfo, autocommit=True)
        self._base: dict[int, float] | None = None
        self._last: dict[int, float] = {}

    def sample(self) -> None:
        rows = self._connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND (datname = current_database() OR datname IS NULL)"
        ).fetchall()
        now = {int(pid): process_cpu_s(int(pid)) for (pid,) in rows}
        if self._base is None:
            self._base = now
        self._last.update({pid: cpu for pid, cpu in now.items() if cpu > 0})

    @property
    def seconds(self) -> float:
        base = self._base or {}
        return sum(max(0.0, cpu - base.get(pid, 0.0)) for pid, cpu in self._last.items())

    def close(self) -> None:
        self._connection.close()


def sessions(conninfo: str) -> int:
    """Connections ever opened to the database (``pg_stat_database.sessions``, counted so far)."""
    with psycopg.connect(conninfo) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB; (0, 0) when it is gone."""
    rss = hwm = 0
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        name, _, rest = line.partition(":")
        if name == "VmRSS":
            rss = int(rest.split()[0])
        elif name == "VmHWM":
            hwm = int(rest.split()[0])
    return rss, hwm


def machine_busy_fraction(window_s: float = 1.0) -> float:
    """How busy the whole machine was over a short window (0..1)."""
    before = _machine_busy_s()
    time.sleep(window_s)
    return (_machine_busy_s() - before) / (window_s * CPUS)


def wait_for_quiet(max_wait_s: float = 120.0, busy_below: float = 0.15) -> float:
    """Wait (bounded) for a 1-second window with the machine less than `busy_below` busy."""
    deadline = time.monotonic() + max_wait_s
    while True:
        fraction = machine_busy_fraction()
        if fraction < busy_below or time.monotonic() > deadline:
            return fraction
