"""Waking idle workers when work arrives, instead of making them poll fast.

In one process (API and worker together) an `asyncio.Event` is enough.  Across processes and
hosts, PostgreSQL's LISTEN/NOTIFY carries the signal: intake sends ``NOTIFY`` in the same
transaction that creates the sendings, so a worker never wakes before the rows are visible.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

CHANNEL = "invoice_outbox_due"
log = logging.getLogger(__name__)


class Waker:
    """A level-triggered wake-up signal for the worker loop.

    `wake` says work may have arrived (intake, a resend, a NOTIFY); `signals` counts those, so
    the worker can tell them from a `nudge` (its own deliveries finishing: a slot is free,
    which is worth a claim round only when enough are, see `worker.lanes.LaneBook`).
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        #: How many times work was signalled (by `wake`) so far.
        self.signals = 0

    def wake(self) -> None:
        self.signals += 1
        self._event.set()

    def nudge(self) -> None:
        """Wake the waiting worker without news of work."""
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Wait until woken or `seconds` pass; True when woken.  Clears the signal."""
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


async def notify_workers(session: AsyncSession) -> None:
    """Queue a NOTIFY for other processes' workers; delivered when the session commits."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


async def notify_connection(connection: AsyncConnection) -> None:
    """`notify_workers` on a Core connection (delivered when its transaction commits)."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


async def commit_and_wake(session: AsyncSession, waker: Waker, *, wake: bool = True) -> None:
    """Commit a change that made sendings due, and wake the workers that deliver them.

    The one way to end such a transaction (intake, resend, retry-all, cancel, resend jobs):
    other processes' workers by a NOTIFY that PostgreSQL delivers with the commit, this
    process's own through `waker` once the commit is done, so no worker looks before the rows
    are visible.  `wake=False` (all of it is for held systems): commit only.
    """
    if not wake:
        await session.commit()
        return
    await notify_workers(session)
    await session.commit()
    waker.wake()


async def listen(
    conninfo: str,
    waker: Waker,
    *,
    retry_seconds: float = 5.0,
    connect_args: Mapping[str, Any] | None = None,
) -> None:
    """Forward PostgreSQL notifications on `CHANNEL` to `waker` until cancelled.

    A lost connection is re-opened; the worker's own periodic check covers the gap.
    `connect_args`: further libpq parameters (`invoice_outbox.db.liveness`).
    """
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, **(connect_args or {})
            ) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                waker.wake()  # anything queued while we were not listening
                async for _ in conn.notifies():
                    waker.wake()
        except psycopg.Error as exc:
            log.warning(
                "listen connection lost",
                extra={"action": "worker.listen_lost", "error": type(exc).__name__},
            )
        await asyncio.sleep(retry_seconds)
