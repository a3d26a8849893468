"""The figures of each fault run: printed as the run ends and again in pytest's summary.

Figures are measured and reported, never asserted as timing (speed is not what a fault run
tests; recovery bounds in the issue are read off these lines).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

#: `make chaos` sets FAULTS_SCALE=chaos: the issue's full sizes.  `make test` runs the smaller.
SCALE = os.environ.get("FAULTS_SCALE", "test")


def size(name: str, test: int, chaos: int) -> int:
    """A run's size: FAULTS_<NAME> if set, else the scale's value."""
    value = os.environ.get(f"FAULTS_{name.upper()}")
    if value:
        return int(value)
    return chaos if SCALE == "chaos" else test


@dataclass
class Figures:
    """One run's numbers: invoices, faults injected, lost, repeats, recovery seconds."""

    run: str
    invoices: int = 0
    faults: int = 0
    fault_kind: str = "faults"
    lost: int = 0
    repeats: int = 0
    recovery: list[float] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        recovery = (
            f"recovery s: max {max(self.recovery):.1f}, mean "
            f"{sum(self.recovery) / len(self.recovery):.1f} over {len(self.recovery)}"
            if self.recovery
            else "recovery s: -"
        )
        notes = "".join(f"; {k}: {v}" for k, v in self.notes.items())
        return (
            f"{self.run}: {self.invoices} invoices, {self.faults} {self.fault_kind}, "
            f"{self.lost} lost, {self.repeats} repeats, {recovery}{notes}"
        )


REPORTED: list[Figures] = []


def report(figures: Figures) -> None:
    REPORTED.append(figures)
    print(f"\n[fault run] {figures.line()}", flush=True)
