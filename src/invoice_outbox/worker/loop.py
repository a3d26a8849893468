"""The worker: claims due sendings, delivers them concurrently, records every outcome.

Lifecycle: `run()` until `stop()`.  Stopping ends claiming at once, lets deliveries in flight
finish for up to `shutdown_grace_seconds`, then interrupts the rest and gives them back to the
queue (recorded, budget not spent).  Outcomes are saved even while shutting down.
`drain()` runs rounds until nothing is due *now* (tests and simulations with a moved clock).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from invoice_outbox.clock import Clock
from invoice_outbox.metrics import DeliveryMetrics
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import DocumentKeyMissing, Keyring
from invoice_outbox.sendings.retention import purge_documents
from invoice_outbox.sendings.retry import RetryPolicy, sample_jitter
from invoice_outbox.sendings.sealing import DocumentUnreadable, unseal
from invoice_outbox.settings import Settings
from invoice_outbox.systems.channels.base import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    Verdict,
)
from invoice_outbox.systems.factory import ChannelPool, SystemConfig, load_system_configs
from invoice_outbox.systems.targets import TargetRefused, check_target
from invoice_outbox.worker import claims
from invoice_outbox.worker.outcomes import Outcome, Recorded, record_batch, release
from invoice_outbox.worker.recorder import BatchRecorder
from invoice_outbox.worker.waker import Waker

log = logging.getLogger(__name__)
DEFAULT_POLICY = RetryPolicy()
PROBE_INTERVAL = timedelta(seconds=30)
#: Expired leases and due probes are looked for at most this often (by the worker's clock):
#: both are minutes-scale events, and looking costs two statements per claim round.
SWEEP_INTERVAL = timedelta(seconds=1)
TARGET_CHECK_TTL = 60.0
MAINTENANCE_SECONDS = 3600.0
#: A claimed sending's document as stored: (key id, nonce, sealed body, content type).
StoredDocument = tuple[str, bytes, bytes, str]


def worker_name() -> str:
    """host:pid:random — unique per process, readable in attempt records."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """One worker process's delivery loop (async; `concurrency` deliveries at once)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        keyring: Keyring,
        waker: Waker | None = None,
        metrics: DeliveryMetrics | None = None,
        concurrency: int | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
        probe_interval: timedelta = PROBE_INTERVAL,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.keyring = keyring
        self.waker = waker or Waker()
        self.metrics = metrics
        self.concurrency = concurrency or settings.worker_concurrency
        self.name = name or worker_name()
        self.rng = rng or random.Random()  # noqa: S311 -- jitter, not secrets
        self.probe_interval = probe_interval
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.channels = ChannelPool(clock=clock)
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._checked_targets: dict[tuple[str, int], tuple[float, str | None]] = {}
        self._next_maintenance = 0.0
        self._next_sweep: datetime | None = None
        self._claim_rounds = 0
        # Claim in rounds of at least this many (or when idle): a claim round costs the same
        # three statements for one sending as for sixteen.
        self.refill_at = max(1, self.concurrency // 4)
        self._recorder: BatchRecorder[tuple[Outcome, SystemConfig | None], Recorded] = (
            BatchRecorder(engine, self._write_outcomes)
        )

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; `run` returns once in-flight deliveries are finished or released."""
        self._stopping.set()
        self.waker.wake()

    async def run(self) -> None:
        log.info(
            "worker started",
            extra={"action": "worker.start", "worker": self.name, "concurrency": self.concurrency},
        )
        try:
            while not self._stopping.is_set():
                await self._maintain()
                if self._inflight and self.concurrency - len(self._inflight) < self.refill_at:
                    # Busy: the next delivery to finish wakes us (poll as a safety net).
                    await self.waker.wait(self.settings.poll_seconds)
                    continue
                try:
                    started = await self._fill()
                except Exception:  # the database may be briefly away: keep the worker alive
                    log.exception("claim round failed", extra={"action": "worker.claim_error"})
                    started = 0
                    await self.waker.wait(self.settings.poll_seconds)
                    continue
                if started and len(self._inflight) < self.concurrency:
                    continue  # there may be more due right now
                if self._inflight:
                    # The next delivery to finish wakes us; no need to ask what is due when.
                    await self.waker.wait(self.settings.poll_seconds)
                else:
                    await self.waker.wait(await self._idle_seconds())
        finally:
            await self._shutdown()

    async def drain(self) -> int:
        """Deliver everything due now (at the clock's time), round after round; count attempts."""
        total = 0
        while True:
            started = await self._fill()
            total += started
            if self._inflight:
                await asyncio.gather(*self._inflight)
            elif not started:
                return total

    async def aclose(self) -> None:
        await self._recorder.aclose()
        await self.channels.aclose()

    async def _shutdown(self) -> None:
        if self._inflight:
            grace = self.settings.shutdown_grace_seconds
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._recorder.aclose()
        await self.channels.aclose()
        log.info(
            "worker stopped",
            extra={
                "action": "worker.stop",
                "worker": self.name,
                "outcomes": self._recorder.items,
                "outcome_batches": self._recorder.batches,
                "claim_rounds": self._claim_rounds,
            },
        )

    async def _maintain(self) -> None:
        """Housekeeping at most once an hour: purge documents delivery no longer needs."""
        if time.monotonic() < self._next_maintenance:
            return
        self._next_maintenance = time.monotonic() + MAINTENANCE_SECONDS
        keep = timedelta(days=self.settings.document_retention_days)
        try:
            async with self.engine.begin() as connection:
                purged = await purge_documents(connection, now=self.clock.now(), keep=keep)
            if purged:
                log.info("documents purged", extra={"action": "retention.purge", "count": purged})
        except Exception:
            log.exception("purge failed", extra={"action": "retention.purge_error"})

    async def _idle_seconds(self) -> float:
        async with self.engine.connect() as connection:
            due = await claims.next_due_time(connection)
        if due is None:
            return self.settings.poll_seconds
        wait = (due - self.clock.now()).total_seconds()
        return min(self.settings.poll_seconds, max(0.05, wait))

    # -- claiming --------------------------------------------------------------------------

    async def _fill(self) -> int:
        free = self.concurrency - len(self._inflight)
        if free <= 0 or self._stopping.is_set():
            return 0
        now = self.clock.now()
        common: dict[str, Any] = {"worker": self.name, "now": now, "lease": self.lease}
        sweep = self._next_sweep is None or now >= self._next_sweep
        self._claim_rounds += 1
        async with self.engine.begin() as connection:
            taken: list[claims.Claim] = []
            if sweep:
                self._next_sweep = now + SWEEP_INTERVAL
                taken += await claims.take_over_expired(connection, limit=free, **common)
            if sweep and len(taken) < free:
                probes = await claims.claim_probes(
                    connection, probe_interval=self.probe_interval, **common
                )
                taken += probes
            if len(taken) < free:
                taken += await claims.claim_due(connection, limit=free - len(taken), **common)
            if not taken:
                return 0
            configs = await load_system_configs(connection)
            ids = [c.document_id for c in taken if c.document_id is not None]
            rows = await connection.execute(
                select(
                    Document.id,
                    Document.key_id,
                    Document.nonce,
                    Document.body,
                    Document.content_type,
                ).where(Document.id.in_(ids))
            )
            documents: dict[uuid.UUID, StoredDocument] = {
                row.id: (row.key_id, row.nonce, row.body, row.content_type) for row in rows
            }
        for claim in taken:
            document = documents.get(claim.document_id) if claim.document_id else None
            task = asyncio.create_task(self._deliver(claim, configs.get(claim.system), document))
            self._inflight.add(task)
            task.add_done_callback(self._finished)
        return len(taken)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.waker.wake()

    # -- delivering ------------------------------------------------------------------------

    async def _check_target(self, config: SystemConfig) -> None:
        """Refuse internal addresses at delivery time too (a name may re-resolve)."""
        try:
            host, port = config.target()
        except TargetRefused as exc:
            raise PermanentDeliveryError(
                f"{config.name} is misconfigured: {exc}", cause="config"
            ) from None
        cached = self._checked_targets.get((host, port))
        if cached is None or time.monotonic() - cached[0] > TARGET_CHECK_TTL:
            try:
                await check_target(host, port, allow_private=self.settings.allow_private_targets)
                problem = None
            except TargetRefused as exc:
                problem = str(exc)
            cached = (time.monotonic(), problem)
            self._checked_targets[(host, port)] = cached
        if cached[1] is not None:
            raise PermanentDeliveryError(f"{config.name} is refused: {cached[1]}", cause="config")

    def _open(self, claim: claims.Claim, document: StoredDocument) -> bytes:
        """The document's bytes, opened with the sending's own practice and invoice ids."""
        assert claim.document_id is not None
        key_id, nonce, body, content_type = document
        try:
            return unseal(
                self.keyring,
                key_id=key_id,
                nonce=nonce,
                body=body,
                document_id=claim.document_id,
                practice_id=claim.practice_id,
                invoice_id=claim.invoice_id,
                content_type=content_type,
            )
        except DocumentUnreadable as exc:
            log.warning("document unreadable", extra=_event("delivery.document_unreadable", claim))
            raise PermanentDeliveryError(
                f"{exc.message[:1].upper()}{exc.message[1:]}; submit the invoice again",
                cause="document-unreadable",
            ) from None
        except DocumentKeyMissing:
            log.error("document key missing", extra=_event("delivery.document_key_missing", claim))
            raise RetryableDeliveryError(
                f"This worker does not hold the key the stored document is encrypted under "
                f"({key_id!r}); it will be tried again (give every worker that key)",
                cause="document-key",
            ) from None

    async def _attempt(
        self, claim: claims.Claim, config: SystemConfig | None, document: StoredDocument | None
    ) -> Outcome:
        started_at, started = self.clock.now(), time.monotonic()
        try:
            if config is None:
                raise PermanentDeliveryError(
                    f"{claim.system} is not configured; configure it, then resend", cause="config"
                )
            if document is None:
                raise PermanentDeliveryError(
                    "The invoice document is no longer stored; submit the invoice again",
                    cause="no-document",
                )
            plain = self._open(claim, document)
            await self._check_target(config)
            delivered = await self.channels.channel_for(config).deliver(
                Delivery(
                    sending_id=claim.sending_id,
                    idempotency_key=claim.idempotency_key,
                    practice_id=claim.practice_id,
                    invoice_id=claim.invoice_id,
                    sending_type=claim.sending_type,
                    attempt=claim.attempt,
                    document=plain,
                    content_type=document[3],
                )
            )
            acceptance = None if config.acceptance.transport_only else config.acceptance
            if acceptance is not None and delivered.verdict is None:
                # Acknowledgement mode (or a Response system's channel that read nothing):
                # delivered, the verdict comes later.
                delivered = dataclasses.replace(delivered, verdict=Verdict("pending"))
            return Outcome(
                claim, started_at, _ms(started), delivered=delivered, acceptance=acceptance
            )
        except DeliveryError as exc:
            return Outcome(claim, started_at, _ms(started), error=exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery crashed", extra=_event("delivery.internal_error", claim))
            error = RetryableDeliveryError(
                "invoice-outbox hit an internal error delivering this; it will try again",
                cause="internal",
            )
            return Outcome(claim, started_at, _ms(started), error=error)

    async def _deliver(
        self, claim: claims.Claim, config: SystemConfig | None, document: StoredDocument | None
    ) -> None:
        started_at = self.clock.now()
        try:
            outcome = await self._attempt(claim, config, document)
        except asyncio.CancelledError:
            await self._release(claim, started_at)
            raise
        await self._save(outcome, config)

    async def _write_outcomes(
        self, connection: AsyncConnection, items: Sequence[tuple[Outcome, SystemConfig | None]]
    ) -> list[Recorded]:
        policies = {id(outcome): config.retry for outcome, config in items if config is not None}
        return await record_batch(
            connection,
            [outcome for outcome, _ in items],
            worker=self.name,
            now=self.clock.now(),
            policy_of=lambda outcome: policies.get(id(outcome), DEFAULT_POLICY),
            jitter=lambda: sample_jitter(self.rng),
            threshold=self.settings.circuit_failure_threshold,
            probe_interval=self.probe_interval,
            keyring=self.keyring,
        )

    async def _save(self, outcome: Outcome, config: SystemConfig | None) -> None:
        claim = outcome.claim
        for attempt in range(3):
            try:
                recorded = await self._recorder.record((outcome, config))
                break
            except Exception:
                log.exception(
                    "could not record outcome",
                    extra={"action": "delivery.record_error", "sending_id": str(claim.sending_id)},
                )
                if attempt == 2:
                    return  # the lease expires and another worker takes over, visibly
                await asyncio.sleep(0.5 * (attempt + 1))
        cause = outcome.error.cause if outcome.error else None
        if self.metrics is not None:
            self.metrics.observe(claim.system, recorded.status, outcome.duration_ms / 1000)
        log.info(
            "attempt recorded",
            extra={
                "action": "delivery.recorded",
                "sending_id": str(claim.sending_id),
                "system": claim.system,
                "attempt": claim.attempt,
                "status": recorded.status,
                "cause": cause,
                "duration_ms": outcome.duration_ms,
                "probe": claim.probe,
            },
        )
        if recorded.recovered_system:
            self.waker.wake()  # its held queue is claimable again

    async def _release(self, claim: claims.Claim, started_at: datetime) -> None:
        try:
            async with self.engine.begin() as connection:
                await release(
                    connection, claim, worker=self.name, now=self.clock.now(), started_at=started_at
                )
            log.info("released at shutdown", extra=_event("delivery.released", claim))
        except Exception:
            log.exception("could not release", extra=_event("delivery.release_error", claim))


def _event(action: str, claim: claims.Claim) -> dict[str, str]:
    """Log fields for a sending: ids and the action, never patient data."""
    return {"action": action, "sending_id": str(claim.sending_id), "system": claim.system}


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
