"""Fault runs (issue #10): real processes, a PostgreSQL server of the run's own, namespaces."""

from __future__ import annotations

import pytest

from tests.faults.figures import REPORTED, SCALE


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTED:
        terminalreporter.section(f"fault runs (scale: {SCALE})")
        for figures in REPORTED:
            terminalreporter.write_line(figures.line())
