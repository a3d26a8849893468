"""A worker's outcomes on their way to the database: batched, retried, logged, counted.

`Recording.save` writes one attempt's outcome (in a batch with the others that finish
meanwhile, `BatchRecorder`), logs it (ids, never patient data) and counts it in the metrics.
While the database refuses the write (a restart, a failover), it keeps trying with backoff
until the claim's lease runs out: the receiver has the document, and giving up early would
leave the sending in flight until the lease expires, then deliver it again.  After the lease
another worker may take the sending over; the fence in `outcomes` then decides whose outcome
stands.  `Recording.release` gives an interrupted attempt back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from invoice_outbox.clock import Clock
from invoice_outbox.metrics import DeliveryMetrics
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.systems.factory import SystemConfig
from invoice_outbox.systems.retry import RetryPolicy, sample_jitter
from invoice_outbox.worker.attempts import event
from invoice_outbox.worker.claims import Claim
from invoice_outbox.worker.outcomes import Outcome, Recorded, record_batch, release
from invoice_outbox.worker.recorder import BatchRecorder

log = logging.getLogger("invoice_outbox.worker.loop")
DEFAULT_POLICY = RetryPolicy()
#: Recording an outcome the database refused: first wait, longest wait, tries before giving up
#: is considered (see `Recording.save`).
RECORD_RETRY_FIRST = 0.5
RECORD_RETRY_MAX = 5.0
RECORD_TRIES_AT_LEAST = 3


class Recording:
    """Writes the outcomes of one worker (named `worker`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        worker: str,
        clock: Clock,
        keyring: Keyring,
        rng: random.Random,
        threshold: int,
        probe_interval: timedelta,
        metrics: DeliveryMetrics | None,
    ) -> None:
        self.engine = engine
        self.worker = worker
        self.clock = clock
        self.keyring = keyring
        self.rng = rng
        self.threshold = threshold
        self.probe_interval = probe_interval
        self.metrics = metrics
        #: When this worker last stamped each system's last success (see `circuit`).
        self._stamped: dict[str, datetime] = {}
        self.recorder: BatchRecorder[tuple[Outcome, SystemConfig | None], Recorded] = BatchRecorder(
            engine, self._write
        )

    async def _write(
        self, connection: AsyncConnection, items: Sequence[tuple[Outcome, SystemConfig | None]]
    ) -> list[Recorded]:
        policies = {id(outcome): config.retry for outcome, config in items if config is not None}
        return await record_batch(
            connection,
            [outcome for outcome, _ in items],
            worker=self.worker,
            now=self.clock.now(),
            policy_of=lambda outcome: policies.get(id(outcome), DEFAULT_POLICY),
            jitter=lambda: sample_jitter(self.rng),
            threshold=self.threshold,
            probe_interval=self.probe_interval,
            stamped=self._stamped,
            keyring=self.keyring,
        )

    async def save(
        self, outcome: Outcome, config: SystemConfig | None, *, lease_ends: float
    ) -> Recorded | None:
        """Write `outcome`, retrying with backoff until the claim's lease runs out
        (`lease_ends`, monotonic; at least `RECORD_TRIES_AT_LEAST` tries); None when it could
        not be written (the lease then expires and another worker takes the sending over,
        visibly)."""
        claim = outcome.claim
        delay, tries = RECORD_RETRY_FIRST, 0
        while True:
            tries += 1
            try:
                recorded = await self.recorder.record((outcome, config))
                break
            except Exception as exc:
                if tries >= RECORD_TRIES_AT_LEAST and time.monotonic() + delay > lease_ends:
                    log.exception(
                        "could not record outcome; its lease runs out and it is sent again",
                        extra=event("delivery.record_error", claim),
                    )
                    return None
                log.warning(
                    "could not record outcome yet; trying again",
                    extra={
                        **event("delivery.record_retry", claim),
                        "error": type(exc).__name__,
                        "retry_in": delay,
                    },
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX)
        if self.metrics is not None:
            self.metrics.observe(claim.system, recorded.status, outcome.duration_ms / 1000)
        aborted = recorded.status == "Aborted"
        cause = outcome.error.cause if outcome.error else None
        log.log(
            logging.WARNING if aborted else logging.INFO,
            "delivery aborted: no more automatic attempts" if aborted else "attempt recorded",
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
        if recorded.system_down:
            log.warning(
                "system down: its queue is held and probed",
                extra={"action": "circuit.down", "system": claim.system, "cause": cause},
            )
        if recorded.system_back:
            log.warning(
                "system answering again: its queue is released",
                extra={"action": "circuit.recovered", "system": claim.system},
            )
        return recorded

    async def release(self, claim: Claim, started_at: datetime, reason: str) -> None:
        """Give `claim` back to the queue (recorded with `reason`, no attempt spent)."""
        try:
            async with self.engine.begin() as connection:
                await release(
                    connection,
                    claim,
                    worker=self.worker,
                    now=self.clock.now(),
                    started_at=started_at,
                    reason=reason,
                )
            log.info("released", extra=event("delivery.released", claim))
        except Exception:
            log.exception("could not release", extra=event("delivery.release_error", claim))

    @property
    def batches(self) -> int:
        return self.recorder.batches

    @property
    def items(self) -> int:
        return self.recorder.items

    async def aclose(self) -> None:
        await self.recorder.aclose()
