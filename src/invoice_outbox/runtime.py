"""Process-level tuning for the long-running commands (serve, worker)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Young-generation threshold: a 10k-row answer allocates ~100k short-lived objects; the
#: default (700) ran ~64 collections per answer and made GC over half its CPU.
GC_THRESHOLD = (50_000, 20, 20)


def tune_garbage_collector() -> None:
    """Call once start-up is done: move everything loaded so far out of the collector's view
    (it is never freed anyway) and collect the young generation less often.  Measured on the
    10k aborted list: server CPU per answer 93 ms → 44 ms (benchmarks/README.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop where it is installed (as uvicorn uses for `serve`), else asyncio's.

    The worker spends much of its CPU in the event loop and socket calls; uvloop does those
    in C.
    """
    try:
        import uvloop
    except ImportError:  # e.g. Windows: uvloop does not exist there
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the loop of `event_loop_factory`."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)
