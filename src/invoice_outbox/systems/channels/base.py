"""What a delivery channel is: its input, its result, and the errors it may raise.

A channel carries one sending's document to one external system (an HTTP API, an SMTP
mailbox, ...).  Every failure is translated *at the channel boundary* into the most specific
`DeliveryError` subclass, so the worker never sees transport exceptions and never parses
error text: it reads `kind` (retry or not), `cause` (a stable key for grouping failures),
`code` and `retry_after`, and shows `reason` to admins.

The exception tree (httpx style)::

    DeliveryError                    never raised itself; catch it to catch every delivery failure
    ├── RetryableDeliveryError       try again later: timeouts, connection errors, HTTP 408/429/5xx,
    │                                SMTP 4xx
    └── PermanentDeliveryError       trying again cannot help until someone changes something:
                                     other HTTP 4xx, redirects, SMTP 5xx, bad configuration,
                                     certificate errors

Privacy contract (POPIA): a `reason` names the system and says what went wrong in words an
admin can act on.  It never contains the document, nor a receiver's response body; a
receiver's short status text (an HTTP standard phrase, an SMTP reply line) is allowed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal, Protocol

__all__ = [
    "Delivered",
    "Delivery",
    "DeliveryChannel",
    "DeliveryError",
    "ErrorKind",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "Verdict",
]

ErrorKind = Literal["retryable", "permanent"]

# A cause key is a lower-case slug such as "http-503" or "connection-refused": the failures
# of many sendings are grouped and filtered by it, so it must never carry free text.
_CAUSE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one sending's document; everything a channel may send.

    `idempotency_key` is the same for every attempt of a sending, so a receiver can drop
    the duplicates that at-least-once delivery may produce.  `attempt` is 1-based.
    `content_type` is a bare media type (`application/json` or `application/xml`); the
    document is UTF-8 encoded.
    """

    sending_id: uuid.UUID
    idempotency_key: str
    practice_id: uuid.UUID
    invoice_id: uuid.UUID
    sending_type: str
    attempt: int
    document: bytes
    content_type: str

    def __repr__(self) -> str:
        # The document may hold patient data: keep it out of reprs (and so out of logs and
        # tracebacks that print locals).
        return (
            f"Delivery(sending_id={self.sending_id}, sending_type={self.sending_type!r}, "
            f"attempt={self.attempt}, content_type={self.content_type!r}, "
            f"document=<{len(self.document)} bytes>)"
        )


VerdictOutcome = Literal["accepted", "rejected", "pending", "missing"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the recipient said about the claim in its answer (systems in Response mode).

    `outcome`: accepted, rejected, pending (an acknowledgement follows) or missing (no
    verdict where the system's settings say it is).  `code` and `reference` are cleaned and
    capped; `message` is the recipient's own words: administrators only, never logged,
    never part of a reason (it may carry patient data).
    """

    outcome: VerdictOutcome
    code: str | None = None
    message: str | None = None
    reference: str | None = None

    def __repr__(self) -> str:  # the message may carry patient data
        return f"Verdict(outcome={self.outcome!r}, code={self.code!r})"


@dataclass(frozen=True, slots=True)
class Delivered:
    """The receiver took the document (transport succeeded).

    `code` is the HTTP status or SMTP reply code when there is one; `detail` is a short
    human line for the attempt timeline (e.g. "HTTP 201 Created"), free of patient data.
    `verdict` is what the recipient said of the claim, for systems that answer with one
    (None otherwise); a verdict may come with a 4xx answer, which is then a rejection.
    """

    code: int | None
    detail: str
    verdict: Verdict | None = None


class DeliveryError(Exception):
    """A delivery failed; raised only as `RetryableDeliveryError` or `PermanentDeliveryError`.

    Attributes:
        reason: short, human, names the system, says what to do where possible; shown to
            admins as the sending's Reason.  Never the document, never a response body.
        cause: a normalised lower-case slug for grouping failures: `http-503`, `http-422`,
            `timeout`, `connection-refused`, `connection-closed`, `dns`, `tls`, `smtp-451`,
            `smtp-550`, `smtp-auth`, `config`, ...
        code: the HTTP status or SMTP reply code when the receiver answered, else None.
        retry_after: how long the receiver asked us to wait (HTTP Retry-After), else None.
        kind: "retryable" or "permanent"; what `invoice_outbox.systems.retry.decide` takes.
    """

    # Raising the base class directly is a bug; if it happens anyway, retrying is the safe
    # reading for at-least-once delivery (the attempt limit still ends it).
    kind: ClassVar[ErrorKind] = "retryable"

    def __init__(
        self,
        reason: str,
        *,
        cause: str,
        code: int | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        if not _CAUSE.fullmatch(cause):
            raise ValueError(f"cause must be a lower-case slug like 'http-503', got {cause!r}")
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
        self.code = code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, cause={self.cause!r}, "
            f"code={self.code!r}, retry_after={self.retry_after!r})"
        )


class RetryableDeliveryError(DeliveryError):
    """The failure may go away by itself; the retry policy schedules another attempt."""

    kind: ClassVar[ErrorKind] = "retryable"


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help until someone changes the document, the receiver or the config."""

    kind: ClassVar[ErrorKind] = "permanent"


class DeliveryChannel(Protocol):
    """A way to deliver documents to one configured external system.

    A channel is built once per system configuration and used for many deliveries,
    possibly concurrently; `aclose` releases what it holds (connection pools).
    """

    async def deliver(self, delivery: Delivery) -> Delivered:
        """Deliver `delivery.document` once; return how the receiver acknowledged it.

        Raises only `DeliveryError` subclasses for anything that can go wrong with the
        receiver, the network or the system's configuration.  Exceptions that mean a bug in
        this service (TypeError, AssertionError, ...) and `asyncio.CancelledError` propagate
        unchanged: the worker records them as an internal error rather than blaming the
        receiver.
        """
        ...

    async def aclose(self) -> None:
        """Release the channel's resources; it must not be used afterwards. Idempotent."""
        ...
