"""The results table, the ratios against named baselines (each with its target), the JSON file."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.measure import Measurement


def human(n: int) -> str:
    """1000000 -> '1M', 100000 -> '100k', 1500 -> '1,500'."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return f"{n:,}"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def _opt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _num(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


COLUMNS = (
    ("phase", 8),
    ("contender", 9),
    ("fmt", 4),
    ("c", 2),
    ("done", 7),
    ("req/s", 6),
    ("p50 ms", 8),
    ("p99 ms", 8),
    ("MB/resp", 7),
    ("idle RSS", 8),
    ("peak RSS", 8),
    ("srv CPU", 7),
    ("db CPU", 6),
    ("foreign", 7),
    ("busy", 4),
)


TABLE_LEGEND = (
    "c: concurrent connections; done: completed/planned requests; p50/p99: latency (ms);\n"
    "MB/resp: response size (10^6 bytes); idle/peak RSS: server memory (MiB) before/during;\n"
    "srv/db CPU: CPU ms per request of the server process / of its database backends;\n"
    "foreign: CPU share used by other processes during the run; busy: whole machine."
)


def format_table(rows: Sequence[Measurement]) -> str:
    """A fixed-width table.

    RSS in MiB; response size in MB (10^6 bytes); srv/db CPU: CPU ms per request of the server
    process and of its database backends; foreign: CPU share used by other processes.
    """
    lines = ["  ".join(f"{name:>{width}}" for name, width in COLUMNS)]
    lines.append("  ".join("-" * width for _, width in COLUMNS))
    for m in rows:
        cells = (
            m.phase,
            m.contender,
            m.format,
            str(m.concurrency),
            f"{m.completed}/{m.planned}",
            _num(m.rps),
            _num(m.p50_ms),
            _num(m.p99_ms),
            f"{m.response_bytes / 1e6:.2f}",
            _mib(m.rss_idle_kib),
            _mib(m.rss_peak_kib),
            _opt(m.server_cpu_ms_per_req),
            _opt(m.db_cpu_ms_per_req),
            _opt(m.foreign_cpu_pct, "%", 0),
            _opt(m.machine_busy_pct, "%", 0),
        )
        lines.append("  ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)))
        if m.errors:
            lines.append(f"    errors: {'; '.join(m.errors)}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Ratio:
    """A ratio against a named baseline, its target and whether it was met (None: not run)."""

    name: str
    definition: str
    value: float | None
    target: str
    met: bool | None
    primary: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Results:
    """Looks measurements up by (phase, contender, format, concurrency)."""

    def __init__(self, rows: Sequence[Measurement]) -> None:
        self.rows = rows

    def get(self, phase: str, contender: str, fmt: str, c: int) -> Measurement | None:
        for m in self.rows:
            key = (m.phase, m.contender, m.format, m.concurrency)
            if key == (phase, contender, fmt, c) and m.completed:
                return m
        return None

    def ratio(
        self,
        name: str,
        definition: str,
        a: tuple[str, str, str, int],
        b: tuple[str, str, str, int],
        value: Callable[[Measurement, Measurement], float],
        target: str,
        meets: Callable[[float], bool],
        primary: bool = True,
    ) -> Ratio:
        first, second = self.get(*a), self.get(*b)
        if first is None or second is None:
            return Ratio(name, definition, None, target, None, primary)
        v = value(first, second)
        return Ratio(name, definition, round(v, 3), target, meets(v), primary)


@dataclass(frozen=True, slots=True)
class Phases:
    """The phase names of a run and the sizes they stand for."""

    small: str  # base table, small list
    large: str  # base table, large list
    big: str | None  # 10M table, small list (None when skipped)
    small_rows: int
    large_rows: int
    base_rows: int
    big_rows: int


def compute_ratios(results: Results, p: Phases, c: int) -> list[Ratio]:
    """The four ratios of the brief (primary) and their variants (secondary); c: concurrency."""
    s, la = f"{human(p.small_rows)} list", f"{human(p.large_rows)} list"
    ratios: list[Ratio] = []
    for fmt, primary in (("json", True), ("xml", False)):
        ratios.append(
            results.ratio(
                f"throughput ours/baseline, {s}, {fmt}",
                f"req/s of ours / req/s of the baseline, c={c}, table of {human(p.base_rows)}",
                (p.small, "ours", fmt, c),
                (p.small, "baseline", fmt, c),
                lambda a, b: a.rps / b.rps,
                ">= 5x",
                lambda v: v >= 5,
                primary,
            )
        )
    ratios.append(
        results.ratio(
            f"server CPU per request baseline/ours, {s}, json",
            f"CPU ms/req of the baseline process / of ours, c={c} (robust to other load)",
            (p.small, "baseline", "json", c),
            (p.small, "ours", "json", c),
            lambda a, b: (a.server_cpu_ms_per_req or 0) / (b.server_cpu_ms_per_req or 1),
            ">= 5x",
            lambda v: v >= 5,
            False,
        )
    )
    ratios.append(
        results.ratio(
            f"floor time / our time, {la}, json, c=1",
            "p50 of the floor / p50 of ours, one request at a time",
            (p.large, "floor", "json", 1),
            (p.large, "ours", "json", 1),
            lambda a, b: a.p50_ms / b.p50_ms,
            ">= 0.5 (ours within 2x of the floor)",
            lambda v: v >= 0.5,
        )
    )
    ratios.append(
        results.ratio(
            f"floor time / our time, {la}, json, c={c}",
            f"req/s of ours / req/s of the floor, c={c} (time per request, floor/ours)",
            (p.large, "ours", "json", c),
            (p.large, "floor", "json", c),
            lambda a, b: a.rps / b.rps,
            ">= 0.5",
            lambda v: v >= 0.5,
            False,
        )
    )
    if p.big is not None:
        for fmt, conc, primary in (("json", 1, True), ("json", c, False), ("xml", 1, False)):
            ratios.append(
                results.ratio(
                    f"p50 {human(p.big_rows)}/{human(p.base_rows)} table, {s}, {fmt}, c={conc}",
                    "p50 with the big table / p50 with the base table, same aborted rows",
                    (p.big, "ours", fmt, conc),
                    (p.small, "ours", fmt, conc),
                    lambda a, b: a.p50_ms / b.p50_ms,
                    "<= 1.2x",
                    lambda v: v <= 1.2,
                    primary,
                )
            )
    for fmt, primary in (("json", True), ("xml", False)):
        ratios.append(
            results.ratio(
                f"peak RSS {la} / {s}, ours, {fmt}, c={c}",
                "our server's peak RSS while streaming the large list / the small list",
                (p.large, "ours", fmt, c),
                (p.small, "ours", fmt, c),
                lambda a, b: (a.rss_peak_kib or 0) / (b.rss_peak_kib or 1),
                "flat: <= 1.10x",
                lambda v: v <= 1.10,
                primary,
            )
        )
    return ratios


def format_ratios(ratios: Sequence[Ratio]) -> str:
    lines = []
    for r in ratios:
        verdict = {True: "MET", False: "MISSED", None: "not measured"}[r.met]
        value = "-" if r.value is None else f"{r.value:.2f}x"
        mark = "*" if r.primary else " "
        lines.append(f"{mark} {r.name:<53} {value:>6}  target {r.target:<37} {verdict}")
    lines.append("  (* = the ratio the brief names; the others are variants for context)")
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
