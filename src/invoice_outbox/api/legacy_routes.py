"""The routes of the ASP.NET billing API (SPEC.md), served wire-exact."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.api.docs import ENVELOPE_RESPONSES, STATUS_LIST_RESPONSES
from invoice_outbox.api.envelopes import guid_envelope, rows_envelope
from invoice_outbox.api.errors import ApiError, bad_parameter
from invoice_outbox.api.security import Admin, Caller, ensure_practice_access
from invoice_outbox.api.state import Session, State
from invoice_outbox.api.streaming import stream_status_rows
from invoice_outbox.sendings.cancellation import InvoiceNotFound, cancel_invoice
from invoice_outbox.sendings.commands import retry_all_failed
from invoice_outbox.sendings.queries import sent_between, status_vo_rows
from invoice_outbox.sendings.status import Status
from invoice_outbox.worker.waker import notify_workers

router = APIRouter(tags=["legacy billing API"])
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ][0-9:.]*)?$")


@router.get(
    "/api/v1/billing/invoices/aborted",
    summary="Invoices which failed to send (no more automatic attempts)",
    description=(
        "**Admins only.** Every sending in `Aborted`, oldest `SendingTime` first, as JSON or "
        "DataContract XML by the `Accept` header (ASP.NET Web API negotiation; JSON when "
        "nothing matches). The answer is streamed."
    ),
    response_class=Response,
    responses=STATUS_LIST_RESPONSES,
)
async def aborted(request: Request, state: State, _caller: Admin) -> Response:
    return await stream_status_rows(request, state, status_vo_rows(Status.ABORTED))


@router.get(
    "/api/v1/billing/invoices/failed",
    summary="Invoices whose last attempt failed and that will be tried again",
    description="**Admins only.** Every sending in `Failed`, oldest `SendingTime` first.",
    response_class=Response,
    responses=STATUS_LIST_RESPONSES,
)
async def failed(request: Request, state: State, _caller: Admin) -> Response:
    return await stream_status_rows(request, state, status_vo_rows(Status.FAILED))


def _parse_sent_date(raw: str) -> date:
    match = _DATE.match(raw.strip())
    try:
        if match is None:
            raise ValueError
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise bad_parameter("sentDate", "is not a date (expected yyyy-MM-dd)") from None


@router.get(
    "/api/v1/billing/invoices/sent/sentDate/{sentDate}",
    summary="Invoices delivered on a calendar date (service time zone)",
    description=(
        "**Admins:** every practice. **Practice users:** their practices only. Sendings that "
        "reached `Sent` on `sentDate` (`yyyy-MM-dd`), a calendar day in the service's time "
        "zone (`INVOICE_OUTBOX_TIMEZONE`, default Africa/Johannesburg), in order of delivery."
    ),
    response_class=Response,
    responses={**STATUS_LIST_RESPONSES, 400: STATUS_LIST_RESPONSES[401]},
)
async def sent_on(request: Request, state: State, caller: Caller, sentDate: str) -> Response:
    day = _parse_sent_date(sentDate)
    zone = state.settings.zone
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    practices = None if caller.is_admin else caller.practices
    return await stream_status_rows(request, state, sent_between(start, end, practices))


@router.post(
    "/api/v1/billing/invoices/retryallfailed",
    summary="Queue every failed and aborted sending again, due now",
    description=(
        "**Admins only.** Every `Failed` and `Aborted` sending goes back to `Pending` with a "
        "fresh attempt budget. Answers the `RestApiResult` envelope whose `Data` is those rows "
        "(now `Pending`)."
    ),
    response_class=Response,
    responses=ENVELOPE_RESPONSES,
)
async def retry_all(request: Request, state: State, session: Session, _caller: Admin) -> Response:
    rows = await retry_all_failed(session, now=state.clock.now())
    await notify_workers(session)
    await session.commit()
    state.waker.wake()
    message = f"{len(rows)} sending(s) queued again"
    return rows_envelope(request, state, rows, message=message, status_code=200)


@router.post(
    "/api/v1/{practiceid}/billing/invoices/{invoiceId}/cancel",
    summary="Cancel an invoice",
    description=(
        "**Admins, or users of that practice.** Sendings not yet delivered stop (`Cancelled`); "
        "systems that already received the invoice get a `Cancellation` sending. Cancelling "
        "again changes nothing. `Data` is the invoice id. 404 when the practice has no such "
        "invoice."
    ),
    response_class=Response,
    responses=ENVELOPE_RESPONSES,
)
async def cancel(
    request: Request,
    state: State,
    session: Session,
    caller: Caller,
    practiceid: uuid.UUID,
    invoiceId: uuid.UUID,
) -> Response:
    ensure_practice_access(caller, practiceid)
    try:
        changed = await cancel_invoice(session, practiceid, invoiceId, now=state.clock.now())
    except InvoiceNotFound:
        raise ApiError(404, f"Practice {practiceid} has no invoice {invoiceId}.") from None
    await notify_workers(session)
    await session.commit()
    state.waker.wake()
    message = f"Invoice cancelled ({len(changed)} sending(s) changed or queued)"
    return guid_envelope(request, invoiceId, message=message)
