"""The list routes of the ASP.NET billing API (SPEC.md), served wire-exact.

Without query parameters each route answers exactly as the old service did.  Optional
parameters (see `sendings.list_query.read_params`) filter the list; `limit` or `cursor` pages
it; a bad one propagates as the domain's `InvalidParameter` (400, naming it).
A paged answer is still the bare legacy list, so .NET clients parse it as before; the paging
travels in headers (`X-Total-Count`, `X-Next-Cursor`, `Link: <...>; rel="next"`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import ColumnElement
from starlette.responses import Response

from invoice_outbox.api.deps import State
from invoice_outbox.api.docs import STATUS_LIST_RESPONSES
from invoice_outbox.api.list_params import PAGING_HEADERS_DOC, paging_headers, query_docs
from invoice_outbox.api.security import Admin, Caller
from invoice_outbox.api.streaming import stream_status_rows
from invoice_outbox.errors import InvalidParameter
from invoice_outbox.legacy.json_format import JSON_LIST, json_rows
from invoice_outbox.legacy.negotiation import negotiate
from invoice_outbox.legacy.xml_format import XML_LIST, xml_rows
from invoice_outbox.sendings.list_query import LEGACY_PARAMS, SENT_PARAMS, read_params, scoped
from invoice_outbox.sendings.listing import Order, Page, filtered_statement
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.pages import read_list_page
from invoice_outbox.sendings.queries import STATUS_VO_COLUMNS, sent_between, status_vo_rows
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState

router = APIRouter(tags=["legacy billing API"])
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ][0-9:.]*)?$")

_PARAMETERS = (
    " Optional query parameters (names case-insensitive; none given: the answer is exactly the "
    "old service's): `practiceId`, `system`, `sendingType`, `cause`, `from`, `to`, `q` filter "
    "(AND between parameters, OR between repeated or comma-separated values); `limit` "
    "(1 to 1000) or `cursor` pages the list in (SendingTime, id) order. A page is still the "
    'bare list; `X-Total-Count`, `X-Next-Cursor` and `Link: <...>; rel="next"` carry the '
    "paging. An invalid value is a 400 naming the parameter; unknown parameters are ignored."
)
_LIST_RESPONSES = {
    **STATUS_LIST_RESPONSES,
    200: {**STATUS_LIST_RESPONSES[200], "headers": PAGING_HEADERS_DOC},
    400: STATUS_LIST_RESPONSES[401],
}


def _page_body(request: Request, state: AppState, page: Page) -> Response:
    """One page as the bare legacy list (the exact bytes the streamed list would have)."""
    chosen = negotiate(request.headers.get("accept"))
    rows: Sequence[Sequence[Any]] = page.rows
    if chosen.format == "xml":
        frame, inner = XML_LIST, xml_rows(rows, state.settings.zone)
    else:
        frame, inner = JSON_LIST, json_rows(rows, first=True)
    body = frame.open + inner + frame.close if rows else frame.empty
    return Response(
        body, 200, headers=paging_headers(request, page), media_type=chosen.content_type
    )


async def _status_list(request: Request, state: AppState, status: Status) -> Response:
    params = read_params(request.query_params.multi_items(), LEGACY_PARAMS, state.settings.zone)
    if not params.given:
        return await stream_status_rows(request, state, status_vo_rows(status))
    selection = dataclasses.replace(params.selection, statuses=frozenset({status}))
    if not params.paged:
        statement = filtered_statement(STATUS_VO_COLUMNS, selection, Order.SENDING_TIME)
        return await stream_status_rows(request, state, statement)
    page = await read_list_page(
        state.engine,
        params,
        selection,
        signing_key=state.signing_key,
        columns=STATUS_VO_COLUMNS,
        order=Order.SENDING_TIME,
        scope_parts=(status.value,),
    )
    return _page_body(request, state, page)


@router.get(
    "/api/v1/billing/invoices/aborted",
    summary="Invoices which failed to send (no more automatic attempts)",
    description=(
        "**Admins only.** Every sending in `Aborted`, oldest `SendingTime` first, as JSON or "
        "DataContract XML by the `Accept` header (ASP.NET Web API negotiation; JSON when "
        "nothing matches). The answer is streamed." + _PARAMETERS
    ),
    response_class=Response,
    responses=_LIST_RESPONSES,
    openapi_extra=query_docs(LEGACY_PARAMS),
)
async def aborted(request: Request, state: State, _caller: Admin) -> Response:
    return await _status_list(request, state, Status.ABORTED)


@router.get(
    "/api/v1/billing/invoices/failed",
    summary="Invoices whose last attempt failed and that will be tried again",
    description=(
        "**Admins only.** Every sending in `Failed`, oldest `SendingTime` first." + _PARAMETERS
    ),
    response_class=Response,
    responses=_LIST_RESPONSES,
    openapi_extra=query_docs(LEGACY_PARAMS),
)
async def failed(request: Request, state: State, _caller: Admin) -> Response:
    return await _status_list(request, state, Status.FAILED)


def _parse_sent_date(raw: str) -> date:
    match = _DATE.match(raw.strip())
    try:
        if match is None:
            raise ValueError
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise InvalidParameter("sentDate", "is not a date (expected yyyy-MM-dd)") from None


@router.get(
    "/api/v1/billing/invoices/sent/sentDate/{sentDate}",
    summary="Invoices delivered on a calendar date (service time zone)",
    description=(
        "**Admins:** every practice. **Practice users:** their practices only. Sendings that "
        "reached `Sent` on `sentDate` (`yyyy-MM-dd`), a calendar day in the service's time "
        "zone (`INVOICE_OUTBOX_TIMEZONE`, default Africa/Johannesburg), in order of delivery. "
        "Optional query parameters (names case-insensitive): `practiceId` (a practice user "
        "naming another practice gets 403), `system`, `sendingType`; `limit` (1 to 1000) or "
        "`cursor` pages the list in (delivery time, id) order, with the paging in the headers "
        "`X-Total-Count`, `X-Next-Cursor` and `Link`."
    ),
    response_class=Response,
    responses=_LIST_RESPONSES,
    openapi_extra=query_docs(SENT_PARAMS),
)
async def sent_on(request: Request, state: State, caller: Caller, sentDate: str) -> Response:
    day = _parse_sent_date(sentDate)
    zone = state.settings.zone
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    params = read_params(request.query_params.multi_items(), SENT_PARAMS, zone)
    if not params.given:
        practices = None if caller.is_admin else caller.practices
        return await stream_status_rows(request, state, sent_between(start, end, practices))
    selection = scoped(params.selection, caller)
    extra: list[ColumnElement[bool]] = [
        Sending.sent_at >= start,
        Sending.sent_at < end,
        Sending.status == Status.SENT.value,
    ]
    if not params.paged:
        statement = filtered_statement(STATUS_VO_COLUMNS, selection, Order.SENT_AT, extra)
        return await stream_status_rows(request, state, statement)
    page = await read_list_page(
        state.engine,
        params,
        selection,
        signing_key=state.signing_key,
        columns=STATUS_VO_COLUMNS,
        order=Order.SENT_AT,
        scope_parts=("sent", day.isoformat()),
        extra=extra,
    )
    return _page_body(request, state, page)
