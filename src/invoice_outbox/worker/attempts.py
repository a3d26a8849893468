"""Making one attempt: the sending's document opened, the channel of its system, the target
check, the outcome.

The document is stored sealed (`invoice_outbox.sendings.sealing`) and opened here with the
worker's keyring, bound to the sending's own practice and invoice: one that cannot be opened
is a permanent failure ("submit the invoice again"); one sealed under a key this worker does
not hold is retryable (another worker, or this one once given the key, can send it).
Everything that can go wrong with the receiver, the network or the configuration becomes an
`Outcome` with a `DeliveryError`; a bug of ours is logged and recorded as an internal error
(retryable), never blamed on the receiver.  Cancellation (shutdown, or the system switched
off) propagates: the worker gives the sending back to the queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime

from invoice_outbox.clock import Clock
from invoice_outbox.sendings.keyring import DocumentKeyMissing, Keyring
from invoice_outbox.sendings.sealing import DocumentUnreadable, digest, unseal
from invoice_outbox.systems.channels.base import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    Verdict,
)
from invoice_outbox.systems.factory import ChannelPool, SystemConfig
from invoice_outbox.systems.targets import TargetRefused, check_target
from invoice_outbox.worker.claims import Claim, StoredDocument
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

    def __init__(
        self, *, clock: Clock, keyring: Keyring, allow_private: bool, max_connections: int
    ) -> None:
        self.clock = clock
        self.keyring = keyring
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

    def _open(self, claim: Claim, document: StoredDocument) -> tuple[bytes, str]:
        """The document's bytes, opened with the sending's own practice and invoice ids, and
        their keyed digest under the key that sealed them (what the attempt records)."""
        assert claim.document_id is not None
        key_id, nonce, body, content_type = document
        try:
            plain = unseal(
                self.keyring,
                key_id=key_id,
                nonce=nonce,
                body=body,
                document_id=claim.document_id,
                practice_id=claim.practice_id,
                invoice_id=claim.invoice_id,
                content_type=content_type,
            )
            key = self.keyring.require(key_id)
            return plain, digest(key, claim.practice_id, claim.invoice_id, plain)
        except DocumentUnreadable as exc:
            log.warning("document unreadable", extra=event("delivery.document_unreadable", claim))
            raise PermanentDeliveryError(
                f"{exc.message[:1].upper()}{exc.message[1:]}; submit the invoice again",
                cause="document-unreadable",
            ) from None
        except DocumentKeyMissing:
            log.error("document key missing", extra=event("delivery.document_key_missing", claim))
            raise RetryableDeliveryError(
                f"This worker does not hold the key the stored document is encrypted under "
                f"({key_id!r}); it will be tried again (give every worker that key)",
                cause="document-key",
            ) from None

    async def attempt(
        self, claim: Claim, config: SystemConfig | None, document: StoredDocument | None
    ) -> Outcome:
        """One attempt at delivering `claim`'s document; its outcome (never raises but for
        cancellation)."""
        started_at: datetime = self.clock.now()
        started = time.monotonic()
        delivered_digest: str | None = None
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
            plain, opened_digest = self._open(claim, document)
            await self._check_target(config)
            delivered_digest = opened_digest
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
                claim,
                started_at,
                _ms(started),
                delivered=delivered,
                document_digest=delivered_digest,
                acceptance=acceptance,
            )
        except DeliveryError as exc:
            # Handed over or not, what the receiver may have got is recorded with its digest.
            return Outcome(
                claim, started_at, _ms(started), error=exc, document_digest=delivered_digest
            )
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
