"""The intake benchmark's table and its ratios against the targets of issue #15."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.intake.floor import FloorRun
from benchmarks.intake.load import HttpRun


@dataclass(slots=True)
class Row:
    """One HTTP run: invoices per second, CPU per invoice, latency per request (ms)."""

    contender: str
    engine: str
    concurrency: int
    invoices_per_request: int
    invoices: int
    errors: int
    invoices_per_s: float
    server_cpu_ms: float
    db_cpu_ms: float
    p50_ms: float
    p99_ms: float
    foreign_pct: float
    busy_before_pct: float

    @classmethod
    def of(
        cls,
        contender: str,
        engine: str,
        run: HttpRun,
        *,
        invoices_per_request: int,
        busy_before: float,
    ) -> Row:
        result, cpu = run.result, run.cpu
        invoices = result.completed * invoices_per_request
        per = 1000 / invoices if invoices else 0.0
        return cls(
            contender=contender,
            engine=engine,
            concurrency=result.concurrency,
            invoices_per_request=invoices_per_request,
            invoices=invoices,
            errors=len(result.errors),
            invoices_per_s=invoices / result.elapsed_s if result.elapsed_s else 0.0,
            server_cpu_ms=cpu.server_s * per,
            db_cpu_ms=cpu.backends_s * per,
            p50_ms=result.percentile_ms(50),
            p99_ms=result.percentile_ms(99),
            foreign_pct=100 * cpu.share(cpu.foreign_s),
            busy_before_pct=100 * busy_before,
        )

    def line(self) -> str:
        return (
            f"{self.invoices_per_s:,.0f} invoices/s, server CPU {self.server_cpu_ms:.3f} ms and "
            f"db {self.db_cpu_ms:.3f} ms per invoice, p50 {self.p50_ms:.1f} ms, p99 "
            f"{self.p99_ms:.1f} ms per request, foreign {self.foreign_pct:.0f}%"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Ratio:
    name: str
    value: float | None
    target: str
    met: bool | None


def _find(rows: list[Row], contender: str, engine: str = "postgresql") -> Row | None:
    return next((r for r in rows if r.contender == contender and r.engine == engine), None)


def _floor(floors: list[FloorRun], name: str) -> FloorRun | None:
    return next((f for f in floors if f.name == name), None)


def ratios(rows: list[Row], floors: list[FloorRun]) -> list[Ratio]:
    """Each target of the issue, judged on this run's numbers (None: not measured)."""
    single, batch = _find(rows, "ours single"), _find(rows, "ours batch")
    baseline, sqlite = _find(rows, "baseline single"), _find(rows, "ours single", "sqlite")
    floor_single, floor_batch = _floor(floors, "floor-single"), _floor(floors, "floor-batch")
    found: list[Ratio] = []

    def at_least(name: str, value: float | None, target: float, unit: str = "") -> None:
        met = None if value is None else value >= target
        found.append(Ratio(name, value, f">= {target:,g}{unit}", met))

    def rate(row: Row | None) -> float | None:
        return None if row is None else row.invoices_per_s

    at_least("ours single, PostgreSQL, invoices/s", rate(single), 1000)
    value = None if single is None else single.server_cpu_ms
    met = None if value is None else value <= 0.8
    found.append(Ratio("ours single, server CPU ms per invoice", value, "<= 0.8", met))
    at_least("ours single, SQLite, invoices/s", rate(sqlite), 500)
    at_least("ours batch, PostgreSQL, invoices/s", rate(batch), 20000)
    at_least(
        "ours single / baseline (throughput)",
        single.invoices_per_s / baseline.invoices_per_s if single and baseline else None,
        5,
        "x",
    )
    at_least(
        "ours batch / batch floor (throughput)",
        batch.invoices_per_s / floor_batch.invoices_per_s
        if batch and floor_batch and floor_batch.invoices_per_s
        else None,
        0.5,
        "x",
    )
    single_floor = (
        single.invoices_per_s / floor_single.invoices_per_s
        if single and floor_single and floor_single.invoices_per_s
        else None
    )
    found.append(Ratio("ours single / single floor (for context)", single_floor, "-", None))
    cpu_ratio = (
        baseline.server_cpu_ms / single.server_cpu_ms
        if single and baseline and single.server_cpu_ms
        else None
    )
    found.append(Ratio("server CPU per invoice, baseline / ours", cpu_ratio, "-", None))
    return found


def format_table(rows: list[Row], floors: list[FloorRun]) -> str:
    header = (
        f"{'contender':<16} {'db':<10} {'c':>3} {'per req':>7} {'invoices':>9} {'err':>3} "
        f"{'invoices/s':>10} {'srv CPU ms':>10} {'db CPU ms':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'foreign':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.contender:<16} {r.engine:<10} {r.concurrency:>3} {r.invoices_per_request:>7} "
            f"{r.invoices:>9,} {r.errors:>3} {r.invoices_per_s:>10,.0f} "
            f"{r.server_cpu_ms:>10.3f} {r.db_cpu_ms:>9.3f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
            f"{r.foreign_pct:>6.0f}%"
        )
    for f in floors:
        rate = f"{f.invoices_per_s:,.0f}" if f.invoices_per_s else "-"
        per = 1000 if f.name == "floor-batch" else 1
        latency = f"{f.latency_ms:.1f}" if f.latency_ms is not None else "-"
        db = f"{f.db_cpu_ms_per_invoice:.3f}" if f.db_cpu_ms_per_invoice is not None else "-"
        lines.append(
            f"{f.name:<16} {'postgresql':<10} {f.clients:>3} {per:>7} {f.invoices:>9,} {'':>3} "
            f"{rate:>10} {'-':>10} {db:>9} {latency:>8} {'-':>8} {'':>7}"
        )
    lines.append(
        "CPU is per invoice; latency per request (a batch request carries 1,000 invoices; "
        "the floor's is pgbench's mean per transaction). foreign = CPU used by other processes."
    )
    return "\n".join(lines)


def format_ratios(found: list[Ratio]) -> str:
    lines = []
    for r in found:
        value = "-" if r.value is None else f"{r.value:,.2f}"
        verdict = "" if r.met is None else ("MET" if r.met else "NOT MET")
        lines.append(f"{r.name:<45} {value:>10}  target {r.target:<10} {verdict}")
    return "\n".join(lines)
