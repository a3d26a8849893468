"""A recipient's acknowledgement: its verdict on a delivered sending, applied once.

The caller (the API) has verified the Standard Webhooks signature.  Here:

- the sending is found by the ``IdempotencyKey`` its delivery carried, or by the recipient's
  own ``Reference`` recorded earlier, among the system's sendings only; none is
  `AcknowledgementNotFound`, whose message names nothing;
- a webhook-id already received from the system is `Replayed` (nothing applied again);
- an open verdict (none yet, Awaiting, Overdue) of a Sent sending takes it: Accepted, or
  Rejected with the catalogue's words (the sending is then Aborted, as the legacy list shows);
- the same verdict again is a repeat: answered as applied before, changing nothing;
- a verdict contradicting the recorded one, or one for a sending that is not delivered, is
  recorded (``applied`` false, with a note) for an administrator, never applied: `receive`
  returns it with `AckResult.refused` set, for the caller to commit the record and then raise;
- one naming no sending (neither ``IdempotencyKey`` nor ``Reference``) is
  `AcknowledgementUnnamed`.

Every acknowledgement that names a sending is kept (table ``acknowledgements``), with the
recipient's own words, capped and cleaned: administrators see them, logs never do.
Functions never commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.errors import Conflict, Invalid, NotFound
from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.models import Acknowledgement, Sending, WebhookReceipt
from invoice_outbox.sendings.status import Acceptance, Status
from invoice_outbox.systems.acceptance import (
    MAX_CODE,
    MAX_MESSAGE,
    MAX_REFERENCE,
    AcceptanceConfig,
    clean_text,
)
from invoice_outbox.systems.rejections import Catalogue, rejection_reason

__all__ = [
    "Ack",
    "AckResult",
    "AcknowledgementNotFound",
    "AcknowledgementRefused",
    "AcknowledgementUnnamed",
    "Replayed",
    "forget_old_receipts",
    "receive",
]


class AcknowledgementNotFound(NotFound):
    """No sending of the system matches (the message reveals nothing more)."""

    def __init__(self) -> None:
        super().__init__("No sending matches this acknowledgement.")


class Replayed(Conflict):
    """This webhook-id was already received from the system: nothing is applied twice."""

    def __init__(self) -> None:
        super().__init__(
            "This acknowledgement (its webhook-id) was already received; it is not applied "
            "again. A new acknowledgement needs a new webhook-id."
        )


class AcknowledgementRefused(Conflict):
    """Recorded for an administrator, not applied (a contradiction, or not delivered yet)."""


class AcknowledgementUnnamed(Invalid):
    """The acknowledgement names no sending: neither IdempotencyKey nor Reference."""

    def __init__(self) -> None:
        super().__init__("name the sending by IdempotencyKey or Reference")


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledgement as the recipient sent it (raw values; `receive` cleans them)."""

    accepted: bool
    idempotency_key: str | None = None
    reference: str | None = None
    code: str | None = None
    message: str | None = None

    def __repr__(self) -> str:  # the message may carry patient data
        return f"Ack(accepted={self.accepted!r}, code={self.code!r})"


@dataclass(frozen=True, slots=True)
class AckResult:
    """What an acknowledgement did: applied, a repeat, or refused (recorded, not applied:
    `refused` is the error to answer once the record is committed)."""

    sending_id: uuid.UUID
    applied: bool
    acceptance: str
    outcome: Literal["applied", "repeat", "refused"]
    refused: AcknowledgementRefused | None = None


async def _find(session: AsyncSession, system: str, ack: Ack) -> Sending | None:
    if ack.idempotency_key:
        match = Sending.idempotency_key == ack.idempotency_key[:64]
    elif ack.reference:
        match = Sending.acceptance_reference == ack.reference[:MAX_REFERENCE]
    else:
        return None
    statement = (
        select(Sending)
        .where(Sending.system == system, match)
        .order_by(Sending.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    return (await session.scalars(statement)).first()


async def _take_webhook_id(
    session: AsyncSession, system: str, webhook_id: str, now: datetime
) -> None:
    """Record the webhook-id as received; `Replayed` when another request took it meanwhile
    (the same message, received twice at once: one wins, the other applies nothing)."""
    session.add(WebhookReceipt(system=system, webhook_id=webhook_id[:200], seen_at=now))
    try:
        await session.flush()
    except IntegrityError:
        raise Replayed() from None


async def _refused(session: AsyncSession, sending: Sending, message: str) -> AckResult:
    """The acknowledgement is recorded (with its note), not applied."""
    await session.flush()
    refused = AcknowledgementRefused(message)
    return AckResult(sending.id, False, sending.acceptance or "", "refused", refused)


def _same_verdict(sending: Sending, accepted: bool, code: str | None) -> bool:
    if accepted:
        return sending.acceptance == Acceptance.ACCEPTED.value
    return sending.acceptance == Acceptance.REJECTED.value and (
        code is None or code == sending.acceptance_code
    )


async def receive(
    session: AsyncSession,
    *,
    system: str,
    config: AcceptanceConfig,
    ack: Ack,
    webhook_id: str,
    catalogue: Catalogue,
    now: datetime,
) -> AckResult:
    """Apply `ack` from `system` (signature already verified).  See the module docstring.

    Raises `AcknowledgementUnnamed`, `AcknowledgementNotFound`, `Replayed`, or
    `AcknowledgementRefused` when nothing is recorded (an attempt is in flight).  A refusal
    that is recorded comes back as `AckResult.refused`: the caller commits, then raises it.
    """
    if not ack.idempotency_key and not ack.reference:
        raise AcknowledgementUnnamed()
    seen = await session.get(WebhookReceipt, (system, webhook_id))
    if seen is not None:
        raise Replayed()
    sending = await _find(session, system, ack)
    if sending is None:
        raise AcknowledgementNotFound()
    code = clean_text(ack.code, MAX_CODE)
    reference = clean_text(ack.reference, MAX_REFERENCE)
    record = Acknowledgement(
        sending_id=sending.id,
        system=system,
        webhook_id=webhook_id[:200],
        received_at=now,
        accepted=ack.accepted,
        code=code,
        reference=reference,
        message=clean_text(ack.message, MAX_MESSAGE),
        applied=False,
    )
    status = Status(sending.status)
    if status is Status.SENDING:
        # The delivery's outcome is being recorded right now: nothing is kept, so the same
        # message can come again (with its webhook-id) in a moment.
        raise AcknowledgementRefused(
            "The invoice is being delivered right now; send the acknowledgement again shortly."
        )
    await _take_webhook_id(session, system, webhook_id, now)
    session.add(record)
    if _same_verdict(sending, ack.accepted, code):
        record.note = "a repeat of the verdict already recorded"
        await session.flush()
        return AckResult(sending.id, False, sending.acceptance or "", "repeat")
    if sending.acceptance in (Acceptance.ACCEPTED.value, Acceptance.REJECTED.value):
        recorded = sending.acceptance
        record.note = f"contradicts the verdict recorded earlier ({recorded}): not applied"
        return await _refused(
            session,
            sending,
            f"This acknowledgement contradicts the verdict recorded earlier ({recorded}); it "
            "is recorded for an administrator, not applied.",
        )
    if status is not Status.SENT:
        record.note = f"arrived while the sending was {status.value}: not applied"
        return await _refused(
            session,
            sending,
            f"The sending is {status.value}, not delivered; the acknowledgement is recorded "
            "for an administrator, not applied.",
        )
    reason = cause = None
    if not ack.accepted:
        shown = code or "(none)"
        cause, entry = catalogue.lookup(system, config.kind, shown)
        reason = rejection_reason(system, sending.sending_type.lower(), shown, entry)
    await session.flush()
    moved = await transitions.acknowledge(
        session,
        sending.id,
        accepted=ack.accepted,
        code=code,
        reference=reference,
        reason=reason,
        cause=cause,
        now=now,
    )
    if not moved:  # changed between the read and the write (the row lock makes this rare)
        record.note = "the sending changed meanwhile: not applied"
        return await _refused(
            session, sending, "The sending changed meanwhile; send it again shortly."
        )
    record.applied = True
    if ack.accepted and sending.sending_type == "Cancellation":
        await transitions.release_followers(session, [sending.id], now=now)
    await session.flush()
    verdict = Acceptance.ACCEPTED if ack.accepted else Acceptance.REJECTED
    return AckResult(sending.id, True, verdict.value, "applied")


async def forget_old_receipts(session: AsyncSession, *, now: datetime, keep: timedelta) -> int:
    """Drop webhook-ids older than `keep` (past the timestamp tolerance a replay of them is
    refused for its timestamp anyway).  Returns how many."""
    result = await session.execute(
        delete(WebhookReceipt).where(WebhookReceipt.seen_at < now - keep)
    )
    return int(getattr(result, "rowcount", 0) or 0)
