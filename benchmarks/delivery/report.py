"""The results table, the ratios against their targets, and the JSON file."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg

from benchmarks.delivery.drain import DrainResult

TARGET_VS_CELERY = 3.0
TARGET_VS_CEILING = 0.5


def _mib(kib: int | None) -> str:
    return "-" if not kib else f"{kib / 1024:.0f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _per_delivery_ms(result: DrainResult, key: str) -> str:
    sent = int(result.verify.get("sent") or 0)
    seconds = result.cpu.get(key)
    return "-" if not sent or seconds is None else f"{seconds * 1000 / sent:.2f}"


def _rss(result: DrainResult) -> str:
    if not result.rss or "start_kib" not in result.rss[0]:
        return "-"
    parts = [
        f"{_mib(r['start_kib'])}/{_mib(r['peak_kib'])}/{_mib(r['end_kib'])}" for r in result.rss
    ]
    return parts[0] if len(parts) == 1 else f"{parts[0]} (x{len(parts)})"


HEADER = (
    f"{'contender':<8} {'config':<52} {'n':>7} {'del/s':>7} {'wall/s':>7} "
    f"{'cpu ms/del: own':>15} {'pg':>5} {'recv':>5} {'mq':>5} {'foreign':>7} "
    f"{'RSS MiB st/pk/end':>18} {'ok':>3}"
)

LEGEND = (
    "del/s: sendings / (last sent_at - first attempt start), from the rows themselves (headline);\n"
    "wall/s: sendings / (go -> poller saw all Sent; Celery's includes its worker start-up);\n"
    "cpu ms/del: CPU ms per delivery of the contender's processes (own), PostgreSQL (pg, all\n"
    "  backends and background processes), the receiver (recv), RabbitMQ (mq); foreign: share\n"
    "  of the machine's 2 CPUs used by anything else during the drain;\n"
    "RSS: contender process memory at go / peak / end (per worker for ours; Celery: main\n"
    "  process only); ok: every sending Sent once, one attempt row each, receiver saw every key\n"
    "  exactly once (pgbench: database checks only)."
)


def format_table(results: list[DrainResult]) -> str:
    lines = [HEADER, "-" * len(HEADER)]
    for r in results:
        foreign = (
            r.cpu.get("foreign_s", 0.0) / (r.cpu.get("elapsed_s") or 1) / (os.cpu_count() or 1)
        )
        lines.append(
            f"{r.contender:<8} {r.config[:52]:<52} {r.count:>7,} {_rate(r.rate):>7} "
            f"{_rate(r.wall_rate):>7} {_per_delivery_ms(r, 'contender_s'):>15} "
            f"{_per_delivery_ms(r, 'postgres_s'):>5} {_per_delivery_ms(r, 'receiver_s'):>5} "
            f"{_per_delivery_ms(r, 'rabbitmq_s'):>5} {foreign * 100:>6.0f}% "
            f"{_rss(r):>18} {'yes' if r.verify.get('ok') else 'NO':>3}"
        )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Ratio:
    name: str
    value: float | None
    target: str
    met: bool | None
    detail: str

    def line(self) -> str:
        value = "-" if self.value is None else f"{self.value:.2f}"
        verdict = {True: "MET", False: "MISSED", None: "(info)"}[self.met]
        return f"  {self.name:<44} {value:>7}  target {self.target:<8} {verdict:<7} {self.detail}"


def _find(results: list[DrainResult], contender: str, **extra: Any) -> DrainResult | None:
    for r in results:
        if r.contender == contender and all(r.extra.get(k) == v for k, v in extra.items()):
            return r
    return None


def rate(result: DrainResult | None) -> float | None:
    return result.rate if result is not None else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _label(r: DrainResult) -> str:
    workers, concurrency = r.extra["workers"], r.extra["concurrency"]
    return f"ours {workers}x{concurrency}"


def compute_ratios(results: list[DrainResult]) -> list[Ratio]:
    """The targets, judged for every worker configuration (1 process first: the headline)."""
    ours = sorted(
        (r for r in results if r.contender == "ours"), key=lambda r: r.extra["workers"] != 1
    )
    celery = _find(results, "celery")
    ceilings = [r for r in results if r.contender == "pgbench" and r.rate is not None]
    ceiling = max(ceilings, key=lambda r: r.rate or 0.0) if ceilings else None
    ratios = []
    for r in ours:
        v = _div(rate(r), rate(celery))
        ratios.append(
            Ratio(
                f"{_label(r)} / Celery",
                v,
                f">= {TARGET_VS_CELERY:.0f}x",
                None if v is None else v >= TARGET_VS_CELERY,
                f"{_rate(rate(r))} vs {_rate(rate(celery))} del/s",
            )
        )
        v = _div(rate(r), rate(ceiling))
        ratios.append(
            Ratio(
                f"{_label(r)} / pgbench ceiling",
                v,
                f">= {TARGET_VS_CEILING}",
                None if v is None else v >= TARGET_VS_CEILING,
                f"{_rate(rate(r))} vs {_rate(rate(ceiling))} del/s "
                f"({ceiling.config if ceiling else '-'})",
            )
        )
    for r in [*ours, *([celery] if celery else [])]:
        tcp = r.verify.get("receiver_tcp_connections")
        sent = r.verify.get("sent") or 0
        if tcp is not None and sent:
            name = _label(r) if r.contender == "ours" else "celery"
            detail = f"{tcp:,} connections, {r.extra.get('db_connections_opened')} new DB ones"
            ratios.append(
                Ratio(
                    f"{name}: receiver TCP connections per delivery",
                    tcp / sent,
                    "(info)",
                    None,
                    detail,
                )
            )
    if celery is not None and celery.extra.get("enqueue_per_s"):
        ratios.append(
            Ratio(
                "celery: enqueue (not in its drain rate)",
                None,
                "(info)",
                None,
                f"{celery.count:,} tasks in {celery.extra['enqueue_s']:.1f} s, "
                f"{celery.extra['enqueue_per_s']:,.0f}/s",
            )
        )
    for r in ours:
        if not r.rss:
            continue
        flat = all(x.get("flat") for x in r.rss)
        detail = "; ".join(
            f"{x['start_kib'] / 1024:.0f} MiB at go, {x['warm_kib'] / 1024:.0f} at 20 %, "
            f"peak {x['peak_kib'] / 1024:.0f}, end {x['end_kib'] / 1024:.0f}"
            for x in r.rss[:2]
            if "start_kib" in x
        )
        more = f" (+{len(r.rss) - 2} more)" if len(r.rss) > 2 else ""
        ratios.append(Ratio(f"worker memory flat ({_label(r)})", None, "flat", flat, detail + more))
    return ratios


def format_ratios(ratios: list[Ratio]) -> str:
    return "\n".join(r.line() for r in ratios)


def machine_info(conninfo: str) -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
    names = (
        "server_version",
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "max_connections",
        "wal_level",
    )
    settings: dict[str, str] = {}
    with psycopg.connect(conninfo) as connection:
        for name in names:
            row = connection.execute(f"SHOW {name}").fetchone()
            settings[name] = str(row[0]) if row else "?"
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    packages = {
        name: installed(name)
        for name in ("celery", "kombu", "amqp", "httpx", "psycopg", "SQLAlchemy", "py-spy")
    }
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": settings,
        "packages": packages,
    }


def source_version(repo: Path) -> dict[str, Any]:
    """The commit measured and whether src/ had uncommitted changes (read-only git calls)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "src_changes": git("status", "--porcelain", "--", "src").splitlines(),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str))
