"""Cancelling an invoice: stop what has not been delivered, tell systems that received it.

Pending, Failed, Aborted and Discarded sendings (and one in flight) become Cancelled.  A system that
already received the invoice gets a `Cancellation` sending (created once; cancelling twice
changes nothing).  Functions never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from xml.sax.saxutils import escape

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.errors import NotFound
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.sealing import new_document
from invoice_outbox.sendings.status import SendingType, Status
from invoice_outbox.sendings.transitions import cancel_loaded, create_pending


class InvoiceNotFound(NotFound):
    """The practice has no invoice with that id (or none the caller may see)."""

    def __init__(self, practice_id: uuid.UUID, invoice_id: uuid.UUID) -> None:
        super().__init__(f"Practice {practice_id} has no invoice {invoice_id}.")


def cancellation_document(sending: Sending, content_type: str, *, reversal: bool = False) -> bytes:
    """What a receiver gets to cancel an invoice: ids only, no patient data.  A `reversal`
    (a correction after acceptance) also names the claim it reverses: the idempotency key its
    delivery carried (``Reverses``) and the recipient's own reference when it gave one."""
    ids = {
        "InvoiceId": str(sending.invoice_id),
        "EncounterId": str(sending.encounter_id),
        "PracticeId": str(sending.practice_id),
    }
    if reversal:
        ids["Reverses"] = sending.idempotency_key
        if sending.acceptance_reference:
            ids["Reference"] = sending.acceptance_reference
    if content_type == "application/xml":
        fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in ids.items())
        return f"<InvoiceCancellation>{fields}</InvoiceCancellation>".encode()
    return orjson.dumps({**ids, "Cancelled": True})


async def add_cancellation(
    session: AsyncSession,
    delivered: Sending,
    *,
    content_type: str,
    now: datetime,
    keyring: Keyring,
    reversal: bool = False,
) -> Sending:
    """Queue a Cancellation for the system that received `delivered` (once per system and
    revision of the claim; see `cancellation_document` for `reversal`)."""
    existing = await session.scalar(
        select(Sending).where(
            Sending.invoice_id == delivered.invoice_id,
            Sending.system == delivered.system,
            Sending.sending_type == SendingType.CANCELLATION.value,
            Sending.revision == delivered.revision,
        )
    )
    if existing is not None:
        return existing
    body = cancellation_document(delivered, content_type, reversal=reversal)
    document = new_document(
        keyring,
        practice_id=delivered.practice_id,
        invoice_id=delivered.invoice_id,
        content_type=content_type,
        body=body,
        now=now,
    )
    cancellation = create_pending(
        practice_id=delivered.practice_id,
        encounter_id=delivered.encounter_id,
        invoice_id=delivered.invoice_id,
        system=delivered.system,
        sending_type=SendingType.CANCELLATION,
        document_id=document.id,
        now=now,
        revision=delivered.revision,
    )
    session.add_all([document, cancellation])
    return cancellation


async def _content_type(session: AsyncSession, sending: Sending) -> str:
    if sending.document_id is None:
        return "application/json"
    found = await session.scalar(
        select(Document.content_type).where(Document.id == sending.document_id)
    )
    return found or "application/json"


async def cancel_invoice(
    session: AsyncSession,
    practice_id: uuid.UUID,
    invoice_id: uuid.UUID,
    *,
    now: datetime,
    keyring: Keyring,
) -> list[Sending]:
    """Cancel the invoice's sendings; returns the sendings changed or created."""
    sendings = (
        await session.scalars(
            select(Sending)
            .where(Sending.practice_id == practice_id, Sending.invoice_id == invoice_id)
            .with_for_update()
        )
    ).all()
    if not sendings:
        raise InvoiceNotFound(practice_id, invoice_id)
    changed: list[Sending] = []
    for sending in sendings:
        status = Status(sending.status)
        if sending.sending_type != SendingType.INVOICE.value:
            continue
        if status is Status.SENT:
            content_type = await _content_type(session, sending)
            changed.append(
                await add_cancellation(
                    session, sending, content_type=content_type, now=now, keyring=keyring
                )
            )
        elif cancel_loaded(sending, now=now):
            changed.append(sending)
    await session.flush()
    return changed
