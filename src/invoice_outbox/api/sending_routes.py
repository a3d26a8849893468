"""Fixing one sending: resend it now, or give up on it for good (discard).

Commands answer the `RestApiResult` envelope (``Sucess``, ``ResponseCode``,
``ResponseMessage``, ``Data``, ``Links``) in JSON or XML, as the legacy commands do.  The
change and its audit entry are made by `invoice_outbox.admin.sending_actions` in one
transaction; its refusals (`SendingNotFound`, `ResendConflict`, `ForceNotAllowed`) propagate to
the error mapping of `api.errors`.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.admin.schemas import DiscardIn, ResendIn
from invoice_outbox.admin.sending_actions import discard_one, resend_one, sending_view
from invoice_outbox.api.bodies import read_body, xml_flat
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import COMMAND_RESPONSES, body_doc
from invoice_outbox.api.envelopes import command_envelope
from invoice_outbox.api.security import Caller
from invoice_outbox.db.waker import commit_and_wake
from invoice_outbox.sendings.status import Status

router = APIRouter(tags=["fixing failures"])


@router.post(
    "/api/v1/billing/sendings/{sendingId}/resend",
    summary="Resend one sending now",
    description=(
        "**Admins; practice users for their own practices' sendings** (another practice's "
        "sending answers 404, as a missing one). A `Failed` or `Aborted` sending goes back to "
        "`Pending`, due now, with a fresh attempt budget (same idempotency key, so a receiver "
        "can drop a repeat). A `Discarded` sending can be resent here by an admin (a "
        "practice user gets 403). A `Sent` "
        'one answers 409 (it was already delivered) unless `"Force": true` (**admins only**); '
        "the audit log records forced resends as such. `Pending`, `Sending` and `Cancelled` "
        "answer 409 with the reason. Body: `Reason` (required), `Force`. JSON or XML "
        "(`<ResendRequest><Reason>…</Reason><Force>false</Force></ResendRequest>`). `Data`: "
        "`SendingId`, `PracticeId`, `InvoiceId`, `System`, `SendingType`, `PreviousStatus`, "
        "`Status`, `Reason`, `SendingAttempts`, `NextAttemptAt`, `DiscardedAt`, `DiscardedBy`, "
        "`DiscardReason`."
    ),
    response_class=Response,
    responses=COMMAND_RESPONSES,
    openapi_extra=body_doc(ResendIn, {"Reason": "MediSwitch is back up", "Force": False}),
)
async def resend_sending(
    request: Request, state: State, session: Session, caller: Caller, sendingId: uuid.UUID
) -> Response:
    body, _ = await read_body(request, ResendIn, xml_flat)
    sending, previous = await resend_one(
        session,
        principal=caller,
        sending_id=sendingId,
        reason=body.Reason,
        force=body.Force,
        now=state.clock.now(),
    )
    await commit_and_wake(session, state.waker)
    forced = " (forced: it had been delivered)" if previous == Status.SENT.value else ""
    return command_envelope(
        request,
        state,
        sending_view(sending, previous),
        root="RestApiResultOfSendingResend",
        message=f"Sending queued again{forced}",
    )


@router.post(
    "/api/v1/billing/sendings/{sendingId}/discard",
    summary="Give up on an aborted sending for good",
    description=(
        "**Admins; practice users for their own practices' sendings** (another practice's "
        "sending answers 404). Only an `Aborted` sending can be discarded (409 otherwise, "
        "also when already discarded). It becomes `Discarded`: `DiscardedAt`, `DiscardedBy` "
        "and `DiscardReason` (your reason) say when, who and why, its `Reason` (the failure) "
        "stays, no attempt is scheduled, the legacy `aborted` list and the worklists leave it "
        "out, and bulk resends by cause or filter (and `retryallfailed`) leave it alone; an "
        "admin naming it in a resend still sends it. Body: `Reason` (required)."
    ),
    response_class=Response,
    responses=COMMAND_RESPONSES,
    openapi_extra=body_doc(DiscardIn, {"Reason": "Duplicate invoice; the practice re-issued"}),
)
async def discard_sending(
    request: Request, state: State, session: Session, caller: Caller, sendingId: uuid.UUID
) -> Response:
    body, _ = await read_body(request, DiscardIn, xml_flat)
    sending, _previous_reason = await discard_one(
        session,
        principal=caller,
        sending_id=sendingId,
        reason=body.Reason,
        now=state.clock.now(),
    )
    await session.commit()
    return command_envelope(
        request,
        state,
        sending_view(sending, Status.ABORTED.value),
        root="RestApiResultOfSendingDiscard",
        message="Sending discarded",
    )
