"""The command routes of the ASP.NET billing API (SPEC.md): retry all, cancel.

A practice without the invoice propagates as the domain's `InvoiceNotFound` (404).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.admin import audit
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import ENVELOPE_RESPONSES
from invoice_outbox.api.envelopes import guid_envelope, rows_envelope
from invoice_outbox.api.security import Admin, Caller
from invoice_outbox.db.waker import commit_and_wake
from invoice_outbox.sendings.cancellation import cancel_invoice
from invoice_outbox.sendings.commands import retry_all_failed

router = APIRouter(tags=["legacy billing API"])


@router.post(
    "/api/v1/billing/invoices/retryallfailed",
    summary="Queue every failed and aborted sending again, due now",
    description=(
        "**Admins only.** Every `Failed` and `Aborted` sending goes back to `Pending` with a "
        "fresh attempt budget. Answers the `RestApiResult` envelope whose `Data` is those rows "
        "(now `Pending`). Sendings an admin discarded (given up for good) are left alone. "
        "Recorded in the audit log (`sendings.retry_all`)."
    ),
    response_class=Response,
    responses=ENVELOPE_RESPONSES,
)
async def retry_all(request: Request, state: State, session: Session, caller: Admin) -> Response:
    now = state.clock.now()
    requeued = await retry_all_failed(session, now=now)
    rows = requeued.rows
    await audit.record(
        session,
        principal=caller,
        action="sendings.retry_all",
        reason="retry all failed (legacy route)",
        affected=requeued.ids,
        now=now,
    )
    await commit_and_wake(session, state.waker)
    message = f"{len(rows)} sending(s) queued again"
    return rows_envelope(request, state, rows, message=message, status_code=200)


@router.post(
    "/api/v1/{practiceid}/billing/invoices/{invoiceId}/cancel",
    summary="Cancel an invoice",
    description=(
        "**Admins, or users of that practice.** Sendings not yet delivered stop (`Cancelled`); "
        "systems that already received the invoice get a `Cancellation` sending. Cancelling "
        "again changes nothing. `Data` is the invoice id. 404 when the practice has no such "
        "invoice. Recorded in the audit log (`invoice.cancel`)."
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
    caller.ensure_access(practiceid)
    now = state.clock.now()
    changed = await cancel_invoice(session, practiceid, invoiceId, now=now, keyring=state.keyring)
    await audit.record(
        session,
        principal=caller,
        action="invoice.cancel",
        reason="cancel invoice (legacy route)",
        practice_id=practiceid,
        target=str(invoiceId),
        affected=[s.id for s in changed],
        details={
            "Cancelled": sum(s.sending_type == "Invoice" for s in changed),
            "Cancellations": sum(s.sending_type == "Cancellation" for s in changed),
        },
        now=now,
    )
    await commit_and_wake(session, state.waker)
    message = f"Invoice cancelled ({len(changed)} sending(s) changed or queued)"
    return guid_envelope(request, invoiceId, message=message)
