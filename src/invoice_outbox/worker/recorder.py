"""Writing outcomes in batches: one transaction, one commit, for outcomes that finish together.

Per-delivery commits made the database's commit latency the worker's speed limit, and
per-outcome statements made SQLAlchemy's statement building its CPU limit.  Outcomes that
arrive while a batch is being written wait for the next one (at most `max_batch`).  The batch
is handed to `write` whole, so it can use one statement for many rows.  If a batch fails, its
outcomes are written one by one, so one bad outcome cannot lose the others.  Every guarantee
of `outcomes.record` (guarded by the claim) holds per outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
R = TypeVar("R")
#: Writes a batch in the given transaction; returns one result per item, in order.
WriteBatch = Callable[[AsyncConnection, Sequence[T]], Awaitable[Sequence[R]]]


class BatchRecorder(Generic[T, R]):
    """Queue items; a single writer task writes them in batches with `write`."""

    def __init__(
        self, engine: AsyncEngine, write: WriteBatch[T, R], *, max_batch: int = 256
    ) -> None:
        self._engine = engine
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: Batches written and items in them so far (their ratio says how well batching works).
        self.batches = 0
        self.items = 0

    async def record(self, item: T) -> R:
        """Write `item` (in some batch) and return what `write` returned for it."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="outcome-writer")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let outcomes finishing in this loop turn join the batch
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self.batches += 1
            self.items += len(batch)
            try:
                async with self._engine.begin() as connection:
                    results = await self._write(connection, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} outcomes")
            except Exception:
                await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        for item, future in batch:
            try:
                async with self._engine.begin() as connection:
                    (result,) = await self._write(connection, [item])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        """Wait for everything queued to be written."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
