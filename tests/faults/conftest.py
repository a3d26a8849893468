"""Fault runs (issue #10): real processes, a PostgreSQL server of the run's own, namespaces.

A run owns processes, a server and namespaces that must not outlive it.  Each is removed in a
`finally`; so that those run when the run is stopped with SIGTERM (a CI timeout, a `kill`),
SIGTERM is turned into KeyboardInterrupt while a fault run is going.  The service processes
die with the run even when it is SIGKILLed (`processes.py`), and what a killed run left
(servers, namespaces) is removed by the next run (`tests/private_postgres.py`, `netns.py`).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.faults.figures import REPORTED, SCALE


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(autouse=True)
def _clean_up_on_sigterm() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTED:
        terminalreporter.section(f"fault runs (scale: {SCALE})")
        for figures in REPORTED:
            terminalreporter.write_line(figures.line())
