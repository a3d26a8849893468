"""Submitting invoices for delivery, and reading one invoice's sendings and attempts.

Intake's refusals (`IntakeError`, `IntakeConflict`, `InvoiceNotFound`, and `IntakeKeyMissing`
when a stored document is sealed under a key this process lacks) propagate to the error mapping
of `api.errors`; the routes only parse the body and write the answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.api.bodies import answer, read_body, xml_children
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import ENVELOPE_RESPONSES, body_doc
from invoice_outbox.api.envelopes import rows_envelope
from invoice_outbox.api.openapi import DOCUMENT_SCHEMA
from invoice_outbox.api.security import Caller
from invoice_outbox.sendings.cancellation import InvoiceNotFound
from invoice_outbox.sendings.holds import SystemHold, held_fields, held_systems
from invoice_outbox.sendings.intake import SendingRow, Submission, submit_invoices
from invoice_outbox.sendings.invoice_history import (
    acknowledgements_of,
    attempts_of,
    invoice_sendings,
)
from invoice_outbox.sendings.models import Acknowledgement, Attempt, Sending
from invoice_outbox.sendings.submissions import InvoiceIn, document_bytes

router = APIRouter(tags=["invoices"])


def xml_invoice(root: Element) -> dict[str, Any]:
    values = xml_children(root)
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == "Document":
            elements = list(child)
            values["Document"] = elements[0] if len(elements) == 1 else None
    if isinstance(values.get("Systems"), str):
        values["Systems"] = [values["Systems"]] if values["Systems"] else []
    return values


@router.post(
    "/api/v1/{practiceId}/billing/invoices",
    status_code=202,
    summary="Submit an invoice for delivery to the practice's systems",
    description=(
        "**Admins, or users of that practice.** JSON or XML body with `InvoiceId`, "
        "`EncounterId`, `Document` (the invoice, delivered as given and stored encrypted "
        "until then), optional `Systems` (default: the systems configured for the "
        "practice) and optional `InvoiceNumber` (the practice's own reference, shown and "
        "searchable). Answers 202 with the envelope whose `Data` is the invoice's sendings. "
        "Submitting the same document again creates nothing; a corrected document replaces "
        "one not yet delivered (409 if it is being delivered right now or was already "
        "delivered; 503 with `Retry-After` if this server does not yet hold the key the "
        "stored document is encrypted under)."
    ),
    response_class=Response,
    responses={**ENVELOPE_RESPONSES, 409: ENVELOPE_RESPONSES[400], 503: ENVELOPE_RESPONSES[400]},
    openapi_extra=body_doc(InvoiceIn, properties={"Document": DOCUMENT_SCHEMA}),
)
async def submit_invoice(
    request: Request, state: State, caller: Caller, practiceId: uuid.UUID
) -> Response:
    caller.ensure_access(practiceId)
    body, _ = await read_body(request, InvoiceIn, xml_invoice)
    document, content_type = document_bytes(body.Document)
    submission = Submission(
        practice_id=practiceId,
        invoice_id=body.InvoiceId,
        encounter_id=body.EncounterId,
        document=document,
        content_type=content_type,
        systems=tuple(body.Systems) if body.Systems is not None else None,
        invoice_number=body.InvoiceNumber,
    )
    [result] = await submit_invoices(
        state.engine,
        state.systems,
        [submission],
        now=state.clock.now(),
        keyring=state.keyring,
        waker=state.waker,
        slots=state.intake_slots,
        autocommit=state.intake_engine,
    )
    result.raise_refusal()
    rows = [vo_row(s) for s in result.sendings]
    return rows_envelope(
        request, state, rows, message="Invoice accepted for delivery", status_code=202
    )


def vo_row(s: SendingRow) -> tuple[Any, ...]:
    return (
        s.practice_id,
        s.encounter_id,
        s.invoice_id,
        s.reason,
        s.status,
        s.system,
        s.sending_time,
        s.attempts,
        s.sending_type,
    )


@router.get(
    "/api/v1/{practiceId}/billing/invoices/{invoiceId}",
    summary="One invoice: its sendings and every attempt",
    description=(
        "**Admins, or users of that practice.** 404 when the practice has no such invoice. "
        "Each sending: `Status` (the legacy statuses) and `Held`, `HeldReason`, `HeldSince`: "
        "whether it waits because its system is switched off or down, why, and since when. "
        "Each sending has its transport `Status` and, for systems that tell one, the "
        "recipient's verdict: `Acceptance` (`Awaiting`, `Accepted`, `Rejected`, `Overdue`; "
        "null for Transport systems), `AcceptanceCode`, `AcceptanceReference` (the "
        "recipient's own reference), `AcceptanceAt`, `AcceptanceDueAt`; `Revision` (a "
        "correction after acceptance is a Cancellation of revision r, then an Invoice of "
        "revision r + 1) and `WaitsFor`. Attempts carry `RecipientCode`; admins also see the "
        "recipient's own words (`RecipientMessage`) and each sending's `Acknowledgements` "
        "(applied or not, with a note): they may carry patient data, so practices never do."
    ),
    response_class=Response,
)
async def invoice_detail(
    request: Request,
    state: State,
    session: Session,
    caller: Caller,
    practiceId: uuid.UUID,
    invoiceId: uuid.UUID,
) -> Response:
    caller.ensure_access(practiceId)
    sendings = await invoice_sendings(session, invoiceId, practices=frozenset({practiceId}))
    if not sendings:
        raise InvoiceNotFound(practiceId, invoiceId)
    history = await attempts_of(session, [s.id for s in sendings])
    holds = await held_systems(session)
    now = state.clock.now()
    admin = caller.is_admin
    acks = await acknowledgements_of(session, [s.id for s in sendings]) if admin else {}
    value = {
        "PracticeId": practiceId,
        "InvoiceId": invoiceId,
        "EncounterId": sendings[0].encounter_id,
        "InvoiceNumber": sendings[0].invoice_number,
        "Sendings": [
            _sending_view(
                s,
                [_attempt_view(a, admin) for a in history[s.id]],
                [_ack_view(a) for a in acks.get(s.id, [])] if admin else None,
                holds.get(s.system),
                now,
            )
            for s in sendings
        ],
    }
    return answer(request, state, value, root="Invoice")


def _attempt_view(a: Attempt, admin: bool) -> dict[str, Any]:
    view = {
        "Number": a.number,
        "StartedAt": a.started_at,
        "DurationMs": a.duration_ms,
        "Outcome": a.outcome,
        "Code": a.code,
        "Reason": a.reason,
        "Worker": a.worker,
        "RecipientCode": a.recipient_code,
    }
    if admin:  # the recipient's own words may carry patient data: admins only
        view["RecipientMessage"] = a.recipient_message
    return view


def _ack_view(a: Acknowledgement) -> dict[str, Any]:
    return {
        "ReceivedAt": a.received_at,
        "Accepted": a.accepted,
        "Code": a.code,
        "Reference": a.reference,
        "Message": a.message,
        "Applied": a.applied,
        "Note": a.note,
    }


def _sending_view(
    s: Sending,
    attempts: list[dict[str, Any]],
    acks: list[dict[str, Any]] | None,
    hold: SystemHold | None,
    now: datetime,
) -> dict[str, Any]:
    held = held_fields(
        status=s.status,
        lease_expires_at=s.lease_expires_at,
        waiting_since=s.sending_time,
        hold=hold,
        now=now,
    )
    view = {
        "SendingId": s.id,
        "System": s.system,
        "SendingType": s.sending_type,
        "Status": s.status,
        "Reason": s.reason,
        "Cause": s.cause,
        "SendingAttempts": s.attempts,
        "SendingTime": s.sending_time,
        "NextAttemptAt": s.next_attempt_at,
        "SentAt": s.sent_at,
        "IdempotencyKey": s.idempotency_key,
        **held,
        "Acceptance": s.acceptance,
        "AcceptanceCode": s.acceptance_code,
        "AcceptanceReference": s.acceptance_reference,
        "AcceptanceAt": s.acceptance_at,
        "AcceptanceDueAt": s.acceptance_due_at,
        "Revision": s.revision,
        "WaitsFor": s.follows_id,
        "Attempts": attempts,
    }
    if acks is not None:
        view["Acknowledgements"] = acks
    return view
