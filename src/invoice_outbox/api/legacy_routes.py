"""The routes of the ASP.NET billing API (SPEC.md), served wire-exact."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.api.docs import STATUS_LIST_RESPONSES
from invoice_outbox.api.security import Admin
from invoice_outbox.api.state import State
from invoice_outbox.api.streaming import stream_status_rows
from invoice_outbox.sendings.queries import status_vo_rows
from invoice_outbox.sendings.status import Status

router = APIRouter(tags=["legacy billing API"])


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
