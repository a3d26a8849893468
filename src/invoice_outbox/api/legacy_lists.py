"""The list routes of the ASP.NET billing API (SPEC.md), served wire-exact."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.api.docs import STATUS_LIST_RESPONSES
from invoice_outbox.api.errors import bad_parameter
from invoice_outbox.api.security import Admin, Caller
from invoice_outbox.api.state import State
from invoice_outbox.api.streaming import stream_status_rows
from invoice_outbox.sendings.queries import sent_between, status_vo_rows
from invoice_outbox.sendings.status import Status

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
