"""The worker: claims due sendings lane by lane, delivers them concurrently, records outcomes.

Lifecycle: `run()` until `stop()`.  Stopping ends claiming at once, lets deliveries in flight
finish for up to `shutdown_grace_seconds`, then interrupts the rest and gives them back to the
queue (recorded, budget not spent).  Outcomes are saved even while shutting down.
`drain()` runs rounds until nothing is due *now* (tests and simulations with a moved clock).

A turn of the loop claims (when there is reason to), then waits.  Reasons to claim: work was
signalled (intake, a resend, a NOTIFY), a timer fired (something falls due, a lane reopens,
the poll interval), or enough slots freed up in lanes that have work waiting
(`invoice_outbox.worker.lanes.LaneBook`): a delivery finishing nudges the loop, but one freed
slot is not worth a database round trip while twenty will soon be.  Held systems' queues are
never a reason: a worker with only held work waits the whole poll interval.

Any error in a turn (the database restarting, say) is logged at error level and the turn is
retried with backoff; `health` says whether the worker is working (`/health/ready`, `/metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from invoice_outbox.clock import Clock
from invoice_outbox.db.waker import Waker
from invoice_outbox.metrics import DeliveryMetrics
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.retention import purge_documents
from invoice_outbox.settings import Settings
from invoice_outbox.systems.factory import SystemConfig, load_system_configs
from invoice_outbox.worker import claims, sweeps
from invoice_outbox.worker.attempts import Attempts
from invoice_outbox.worker.health import WorkerHealth
from invoice_outbox.worker.lanes import LaneBook
from invoice_outbox.worker.outcomes import INTERRUPTED_REASON, Outcome, switched_off_reason
from invoice_outbox.worker.recording import Recording

log = logging.getLogger(__name__)
PROBE_INTERVAL = timedelta(seconds=30)
#: Expired leases, down systems' probes and switched-off systems are looked for at most this
#: often while busy (by the worker's clock): minutes-scale events, each look a transaction.
SWEEP_INTERVAL = timedelta(seconds=1)
MAINTENANCE_SECONDS = 3600.0
#: The shortest idle wait: something due now that a claim round could not take is retried
#: after this, not in a tight loop.
MIN_WAIT_SECONDS = 0.05


def worker_name() -> str:
    """host:pid:random — unique per process, readable in attempt records."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """One worker process's delivery loop (async; at most `cap` deliveries in flight)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        keyring: Keyring,
        waker: Waker | None = None,
        metrics: DeliveryMetrics | None = None,
        max_in_flight: int | None = None,
        concurrency: int | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
        probe_interval: timedelta = PROBE_INTERVAL,
        health: WorkerHealth | None = None,
    ) -> None:
        self.engine = engine
        # PostgreSQL: the lane claim and the idle look-ahead are one statement each, so they
        # run without BEGIN/COMMIT round trips (a statement is its own transaction).
        self._single: AsyncEngine = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self.settings = settings
        self.clock = clock
        self.keyring = keyring
        self.waker = waker or Waker()
        self.metrics = metrics
        #: The worker's own cap on deliveries in flight (`concurrency` is its older name).
        self.cap = max_in_flight or concurrency or settings.worker_cap
        self.name = name or worker_name()
        self.rng = rng or random.Random()  # noqa: S311 -- jitter, not secrets
        self.probe_interval = probe_interval
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.health = health or WorkerHealth()
        self.book = LaneBook(self.cap)
        self.attempts = Attempts(
            clock=clock,
            keyring=keyring,
            allow_private=settings.allow_private_targets,
            max_connections=max(self.cap, 16),
        )
        #: Claim rounds, sweeps and idle waits so far (how busy the loop is, for tests/logs).
        self.claim_rounds = 0
        self.sweeps = 0
        self.idle_waits = 0
        self.last_idle_wait: float | None = None
        #: Set while the loop waits with nothing in flight (what tests synchronise on).
        self.idle = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], claims.Claim] = {}
        self._switched_off: set[asyncio.Task[None]] = set()
        self._configs: dict[str, SystemConfig] = {}
        self._stopping = asyncio.Event()
        self._next_maintenance = 0.0
        self._next_sweep: datetime | None = None
        self._signals_seen = self.waker.signals
        self.recording = Recording(
            engine,
            worker=self.name,
            clock=clock,
            keyring=keyring,
            rng=self.rng,
            threshold=settings.circuit_failure_threshold,
            probe_interval=probe_interval,
            metrics=metrics,
        )

    @property
    def concurrency(self) -> int:
        """The older name of `cap`."""
        return self.cap

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; `run` returns once in-flight deliveries are finished or released."""
        self._stopping.set()
        self.waker.nudge()

    async def run(self) -> None:
        log.info(
            "worker started",
            extra={"action": "worker.start", "worker": self.name, "max_in_flight": self.cap},
        )
        claim, sweep = True, True
        try:
            while not self._stopping.is_set():
                try:
                    claim, sweep = await self._turn(claim, sweep)
                except Exception as exc:
                    claim, sweep = True, True
                    delay = self.health.failed(self.clock.now(), exc)
                    if self.metrics is not None:
                        self.metrics.loop_failed()
                    log.error(
                        "worker turn failed; retrying",
                        exc_info=True,
                        extra={
                            "action": "worker.error",
                            "worker": self.name,
                            "errors_in_a_row": self.health.errors_in_a_row,
                            "retry_in_s": delay,
                        },
                    )
                    await self.waker.wait(delay)
                else:
                    now = self.clock.now()
                    self.health.succeeded(now)
                    if self.metrics is not None:
                        self.metrics.loop_succeeded(now)
        finally:
            await self._shutdown()

    async def _turn(self, claim: bool, sweep: bool) -> tuple[bool, bool]:
        """Claim if `claim` (sweeping first if `sweep`), then wait; returns (claim, sweep) for
        the next turn."""
        await self._maintain()
        if claim:
            await self._fill(sweep=sweep)
            if self.book.refill_due(self.in_flight):
                return True, False
        now = self.clock.now()
        if self._inflight:
            # Busy: a delivery finishing nudges the loop; the next sweep is due within a second
            # (a system switched off meanwhile gets its deliveries back promptly).
            waits = [self.settings.poll_seconds, self._seconds_to_sweep(now)]
            timer = self.book.seconds_to_next(now, self.in_flight)
            timeout = max(0.001, min([*waits, *([timer] if timer is not None else [])]))
        else:
            timeout = await self._idle_seconds(now)
            self.idle_waits += 1
            self.last_idle_wait = timeout
        if not self._inflight:
            self.idle.set()
        try:
            woken = await self.waker.wait(timeout)
        finally:
            self.idle.clear()
        if self._stopping.is_set():
            return False, False
        news = self.waker.signals != self._signals_seen
        self._signals_seen = self.waker.signals
        if news or not woken:
            return True, not woken  # work arrived, or a timer fired (sweep: leases may be due)
        now = self.clock.now()
        return self.book.refill_due(self.in_flight) or self.book.reopened(now), False

    def _seconds_to_sweep(self, now: datetime) -> float:
        if self._next_sweep is None:
            return 0.0
        return max(0.0, (self._next_sweep - now).total_seconds())

    async def drain(self) -> int:
        """Deliver everything due now (at the clock's time), round after round; count attempts."""
        total = 0
        while True:
            started = await self._fill()
            total += started
            if self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
            elif not started:
                return total

    async def aclose(self) -> None:
        await self.recording.aclose()
        await self.attempts.aclose()

    async def _shutdown(self) -> None:
        if self._inflight:
            grace = self.settings.shutdown_grace_seconds
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.recording.aclose()
        await self.attempts.aclose()
        log.info(
            "worker stopped",
            extra={
                "action": "worker.stop",
                "worker": self.name,
                "outcomes": self.recording.items,
                "outcome_batches": self.recording.batches,
                "claim_rounds": self.claim_rounds,
                "sweeps": self.sweeps,
                "idle_waits": self.idle_waits,
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

    async def _idle_seconds(self, now: datetime) -> float:
        """How long to wait with nothing in flight: until the next thing falls due (at most the
        poll interval)."""
        async with self._single.connect() as connection:
            due = await sweeps.next_due_time(connection, now)
        waits = [self.settings.poll_seconds]
        if due is not None:
            waits.append((due - now).total_seconds())
        reopen = self.book.seconds_to_next(now, 0)
        if reopen is not None:
            waits.append(reopen)
        return max(MIN_WAIT_SECONDS, min(waits))

    # -- claiming --------------------------------------------------------------------------

    async def _fill(self, *, sweep: bool = False) -> int:
        """Sweep (when due or asked), then one lane claim round; start what was claimed."""
        if self._stopping.is_set():
            return 0
        now = self.clock.now()
        taken: list[claims.Claim] = []
        documents: dict[uuid.UUID, claims.StoredDocument] = {}
        if sweep or self._next_sweep is None or now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            taken, documents = await self._sweep(now)
        free = self.cap - self.in_flight - len(taken)
        if free > 0:
            self.claim_rounds += 1
            async with self._single.begin() as connection:
                lane_round = await claims.claim_lanes(
                    connection, worker=self.name, now=now, lease=self.lease, limit=free
                )
            self.book.rounded(lane_round.lanes, now)
            if any(
                system not in self._configs or self._configs[system].updated_at != version
                for system, version in lane_round.versions.items()
            ):
                async with self.engine.connect() as connection:
                    self._use_configs(await load_system_configs(connection))
            taken += lane_round.claims
            documents.update(lane_round.documents)
        for claim in taken:
            self._start(claim, documents.get(claim.sending_id))
        return len(taken)

    async def _sweep(
        self, now: datetime
    ) -> tuple[list[claims.Claim], dict[uuid.UUID, claims.StoredDocument]]:
        """Expired leases (released when held, else taken over), due probes, configurations;
        deliveries to systems switched off meanwhile are interrupted and given back."""
        self.sweeps += 1
        free = self.cap - self.in_flight
        worker, lease = self.name, self.lease
        async with self.engine.begin() as connection:
            configs = await load_system_configs(connection)
            released = await sweeps.release_held_expired(connection, now=now)
            taken = await sweeps.take_over_expired(
                connection, worker=worker, now=now, lease=lease, limit=free
            )
            if len(taken) < free:
                taken += await sweeps.claim_probes(
                    connection,
                    worker=worker,
                    now=now,
                    lease=lease,
                    probe_interval=self.probe_interval,
                )
            documents = await claims.load_documents(connection, taken)
        if released:
            log.info(
                "expired leases of held systems released",
                extra={"action": "worker.released_held", "count": released},
            )
        self._use_configs(configs)
        self._interrupt_switched_off()
        return taken, documents

    def _use_configs(self, configs: dict[str, SystemConfig]) -> None:
        self._configs = configs
        self.book.limits = {name: c.max_in_flight for name, c in configs.items()}

    def _interrupt_switched_off(self) -> None:
        for task, claim in self._inflight.items():
            config = self._configs.get(claim.system)
            if config is not None and not config.enabled and task not in self._switched_off:
                self._switched_off.add(task)
                task.cancel()

    def _start(self, claim: claims.Claim, document: claims.StoredDocument | None) -> None:
        task = asyncio.create_task(self._deliver(claim, document))
        self._inflight[task] = claim
        self.book.started(claim.system)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        claim = self._inflight.pop(task, None)
        self._switched_off.discard(task)
        if claim is not None:
            self.book.finished(claim.system)
        self.waker.nudge()

    # -- delivering ------------------------------------------------------------------------

    async def _deliver(self, claim: claims.Claim, document: claims.StoredDocument | None) -> None:
        config = self._configs.get(claim.system)
        started_at, claimed = self.clock.now(), time.monotonic()
        try:
            outcome = await self.attempts.attempt(claim, config, document)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task in self._switched_off:
                await self._release(claim, started_at, switched_off_reason(claim.system))
                return  # interrupted on purpose: the task ends normally
            await self._release(claim, started_at, INTERRUPTED_REASON)
            raise
        await self._save(outcome, config, lease_ends=claimed + self.lease.total_seconds())

    async def _save(
        self, outcome: Outcome, config: SystemConfig | None, *, lease_ends: float
    ) -> None:
        recorded = await self.recording.save(outcome, config, lease_ends=lease_ends)
        if recorded is None:
            return
        claim = outcome.claim
        if recorded.paused_until is not None:
            self.book.paused(claim.system, recorded.paused_until)
        if recorded.recovered_system and claim.probe:
            self.waker.wake()  # its held queue is claimable again

    async def _release(self, claim: claims.Claim, started_at: datetime, reason: str) -> None:
        await self.recording.release(claim, started_at, reason)
