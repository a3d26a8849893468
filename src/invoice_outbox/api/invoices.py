"""Submitting invoices for delivery, and reading one invoice's sendings and attempts."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from typing import Any
from xml.etree.ElementTree import Element, tostring

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from invoice_outbox.api.bodies import answer, read_body, xml_children
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import ENVELOPE_RESPONSES
from invoice_outbox.api.envelopes import rows_envelope
from invoice_outbox.api.errors import ApiError
from invoice_outbox.api.security import Caller, ensure_practice_access
from invoice_outbox.sendings.intake import IntakeConflict, IntakeError, Submission, submit
from invoice_outbox.sendings.keyring import DocumentKeyMissing
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.state import AppState
from invoice_outbox.systems.schemas import Name
from invoice_outbox.worker.waker import notify_workers

log = logging.getLogger(__name__)
router = APIRouter(tags=["invoices"])


class InvoiceIn(BaseModel):
    """An invoice to deliver.  `Document` is the invoice itself, kept as given."""

    model_config = ConfigDict(extra="forbid")

    InvoiceId: uuid.UUID
    EncounterId: uuid.UUID
    Systems: list[Name] | None = Field(default=None, max_length=50)
    Document: Any = Field(description="JSON: any object. XML: one child element of <Document>.")


def _xml_invoice(root: Element) -> dict[str, Any]:
    values = xml_children(root)
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == "Document":
            elements = list(child)
            values["Document"] = elements[0] if len(elements) == 1 else None
    if isinstance(values.get("Systems"), str):
        values["Systems"] = [values["Systems"]] if values["Systems"] else []
    return values


def _document(body: InvoiceIn) -> tuple[bytes, str]:
    if isinstance(body.Document, Element):
        return tostring(body.Document, encoding="utf-8", xml_declaration=False), "application/xml"
    if body.Document is None:
        raise ApiError(400, "The request is invalid: Document is required (the invoice itself).")
    return orjson.dumps(body.Document), "application/json"


@router.post(
    "/api/v1/{practiceId}/billing/invoices",
    status_code=202,
    summary="Submit an invoice for delivery to the practice's systems",
    description=(
        "**Admins, or users of that practice.** JSON or XML body with `InvoiceId`, "
        "`EncounterId`, `Document` (the invoice, kept as given) and optional `Systems` "
        "(default: the systems configured for the practice). Answers 202 with the envelope "
        "whose `Data` is the invoice's sendings. Submitting the same document again creates "
        "nothing; a corrected document replaces one not yet delivered (409 if it is being "
        "delivered right now or was already delivered)."
    ),
    response_class=Response,
    responses={**ENVELOPE_RESPONSES, 409: ENVELOPE_RESPONSES[400]},
)
async def submit_invoice(
    request: Request,
    state: State,
    session: Session,
    caller: Caller,
    practiceId: uuid.UUID,
) -> Response:
    ensure_practice_access(caller, practiceId)
    body, _ = await read_body(request, InvoiceIn, _xml_invoice)
    document, content_type = _document(body)
    submission = Submission(
        practice_id=practiceId,
        invoice_id=body.InvoiceId,
        encounter_id=body.EncounterId,
        document=document,
        content_type=content_type,
        systems=tuple(body.Systems) if body.Systems is not None else None,
    )
    sendings = await _submit_once_more_if_raced(session, submission, state)
    await notify_workers(session)
    await session.commit()
    state.waker.wake()
    rows = [_vo_row(s) for s in sendings]
    return rows_envelope(
        request, state, rows, message="Invoice accepted for delivery", status_code=202
    )


async def _submit_once_more_if_raced(
    session: AsyncSession, submission: Submission, state: AppState
) -> list[Sending]:
    """Submit; if an identical submission won a race to insert first, read its rows instead.

    The unique (invoice, system, type) key makes the loser's INSERT fail; submitting again
    then finds the winner's sendings, which is the idempotent answer.
    """
    for last_try in (False, True):
        try:
            sendings = await submit(
                session, submission, now=state.clock.now(), keyring=state.keyring
            )
            await session.flush()
            return sendings
        except IntakeConflict as exc:
            raise ApiError(409, str(exc)) from None
        except IntakeError as exc:
            raise ApiError(400, f"The request is invalid: {exc}.") from None
        except DocumentKeyMissing:
            log.error("document key missing at intake", extra={"action": "intake.key_missing"})
            raise ApiError(
                503,
                "The invoice's stored document cannot be compared now (this server lacks its "
                "key); try again later.",
                headers={"Retry-After": "30"},
            ) from None
        except IntegrityError:
            await session.rollback()
            if last_try:
                raise ApiError(
                    409, "The invoice is being submitted concurrently; try again."
                ) from None
    raise AssertionError("unreachable")


def _vo_row(s: Sending) -> tuple[Any, ...]:
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
    description="**Admins, or users of that practice.** 404 when the practice has no such invoice.",
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
    ensure_practice_access(caller, practiceId)
    sendings = await invoice_sendings(session, invoiceId, practices=frozenset({practiceId}))
    if not sendings:
        raise ApiError(404, f"Practice {practiceId} has no invoice {invoiceId}.")
    history = await attempts_of(session, [s.id for s in sendings])
    value = {
        "PracticeId": practiceId,
        "InvoiceId": invoiceId,
        "EncounterId": sendings[0].encounter_id,
        "Sendings": [_sending_view(s, [_attempt_view(a) for a in history[s.id]]) for s in sendings],
    }
    return answer(request, state, value, root="Invoice")


async def invoice_sendings(
    session: AsyncSession, invoice_id: uuid.UUID, *, practices: Collection[uuid.UUID] | None
) -> list[Sending]:
    """The sendings of `invoice_id`, by system and type: only of `practices` (None: any
    practice, for admins).  Empty when there is none the caller may see."""
    statement = select(Sending).where(Sending.invoice_id == invoice_id)
    if practices is not None:
        statement = statement.where(Sending.practice_id.in_(sorted(practices)))
    statement = statement.order_by(Sending.system, Sending.sending_type, Sending.id)
    return list((await session.scalars(statement)).all())


async def attempts_of(
    session: AsyncSession, sending_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[Attempt]]:
    """Every attempt of each sending (first attempt first); every id is a key."""
    attempts: dict[uuid.UUID, list[Attempt]] = {sending_id: [] for sending_id in sending_ids}
    if not attempts:
        return attempts
    statement = (
        select(Attempt)
        .where(Attempt.sending_id.in_(sorted(attempts)))
        .order_by(Attempt.sending_id, Attempt.number)
    )
    for attempt in (await session.scalars(statement)).all():
        attempts[attempt.sending_id].append(attempt)
    return attempts


def _attempt_view(a: Attempt) -> dict[str, Any]:
    return {
        "Number": a.number,
        "StartedAt": a.started_at,
        "DurationMs": a.duration_ms,
        "Outcome": a.outcome,
        "Code": a.code,
        "Reason": a.reason,
        "Worker": a.worker,
    }


def _sending_view(s: Sending, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
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
        "Attempts": attempts,
    }
