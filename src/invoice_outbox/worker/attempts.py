"""Making one attempt: the channel of the sending's system, the target check, the outcome.

Everything that can go wrong with the receiver, the network or the configuration becomes an
`Outcome` with a `DeliveryError`; a bug of ours is logged and recorded as an internal error
(retryable), never blamed on the receiver.  Cancellation (shutdown, or the system switched
off) propagates: the worker gives the sending back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from invoice_outbox.clock import Clock
from invoice_outbox.systems.channels.base import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from invoice_outbox.systems.factory import ChannelPool, SystemConfig
from invoice_outbox.systems.targets import TargetRefused, check_target
from invoice_outbox.worker.claims import Body, Claim
from invoice_outbox.worker.outcomes import Outcome

log = logging.getLogger(__name__)
TARGET_CHECK_TTL = 60.0


def event(action: str, claim: Claim) -> dict[str, str]:
    """Log fields for a sending: ids and the action, never patient data."""
    return {"action": action, "sending_id": str(claim.sending_id), "system": claim.system}


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class Attempts:
    """Makes attempts for one worker: shares its channels and its cache of checked targets."""

    def __init__(self, *, clock: Clock, allow_private: bool, max_connections: int) -> None:
        self.clock = clock
        self.allow_private = allow_private
        self.channels = ChannelPool(clock=clock, max_connections=max_connections)
        self._checked: dict[tuple[str, int], tuple[float, str | None]] = {}

    async def _check_target(self, config: SystemConfig) -> None:
        """Refuse internal addresses at delivery time too (a name may re-resolve)."""
        try:
            host, port = config.target()
        except TargetRefused as exc:
            raise PermanentDeliveryError(
                f"{config.name} is misconfigured: {exc}", cause="config"
            ) from None
        cached = self._checked.get((host, port))
        if cached is None or time.monotonic() - cached[0] > TARGET_CHECK_TTL:
            try:
                await check_target(host, port, allow_private=self.allow_private)
                problem = None
            except TargetRefused as exc:
                problem = str(exc)
            cached = (time.monotonic(), problem)
            self._checked[(host, port)] = cached
        if cached[1] is not None:
            raise PermanentDeliveryError(f"{config.name} is refused: {cached[1]}", cause="config")

    async def attempt(
        self, claim: Claim, config: SystemConfig | None, document: Body | None
    ) -> Outcome:
        """One attempt at delivering `claim`'s document; its outcome (never raises but for
        cancellation)."""
        started_at: datetime = self.clock.now()
        started = time.monotonic()
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
            await self._check_target(config)
            delivered = await self.channels.channel_for(config).deliver(
                Delivery(
                    sending_id=claim.sending_id,
                    idempotency_key=claim.idempotency_key,
                    practice_id=claim.practice_id,
                    invoice_id=claim.invoice_id,
                    sending_type=claim.sending_type,
                    attempt=claim.attempt,
                    document=document[0],
                    content_type=document[1],
                )
            )
            return Outcome(claim, started_at, _ms(started), delivered=delivered)
        except DeliveryError as exc:
            return Outcome(claim, started_at, _ms(started), error=exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery crashed", extra=event("delivery.internal_error", claim))
            error = RetryableDeliveryError(
                "invoice-outbox hit an internal error delivering this; it will try again",
                cause="internal",
            )
            return Outcome(claim, started_at, _ms(started), error=error)

    async def aclose(self) -> None:
        await self.channels.aclose()
