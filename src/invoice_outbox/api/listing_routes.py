"""Filtered, paginated lists of sendings, cause groups, and the practice view.

Their query parameters are read by the domain (`invoice_outbox.sendings.list_query`), their
pages by `invoice_outbox.sendings.pages`, their items built by `invoice_outbox.sendings.items`;
here are the routes, their OpenAPI description and the answers.  Bad parameters and cursors
propagate as the domain's `InvalidParameter`, practices not the caller's as `AccessDenied`.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.admin.notifications import notified_aborts
from invoice_outbox.api.bodies import answer
from invoice_outbox.api.deps import State
from invoice_outbox.api.docs import STATUS_VALUES
from invoice_outbox.api.list_params import (
    CAUSE_STATUS_SCHEMA,
    PAGING_HEADERS_DOC,
    paging_headers,
    query_docs,
)
from invoice_outbox.api.security import Admin, Caller
from invoice_outbox.sendings.cause_groups import cause_groups, failure_statuses, group_view
from invoice_outbox.sendings.filters import SendingFilter, shown_by_default
from invoice_outbox.sendings.holds import held_systems
from invoice_outbox.sendings.items import ABORTED_AT, ITEM_COLUMNS, practice_item, sending_item
from invoice_outbox.sendings.list_query import (
    CAUSE_PARAMS,
    DEFAULT_LIMIT,
    LIST_PARAMS,
    PRACTICE_CAP,
    PRACTICE_VIEW_PARAMS,
    STATUS,
    ListParams,
    read_cause_selection,
    read_params,
    scoped,
)
from invoice_outbox.sendings.listing import Order, Page
from invoice_outbox.sendings.pages import read_list_page, reading
from invoice_outbox.state import AppState
from invoice_outbox.systems.rejections import load_catalogue

router = APIRouter(tags=["finding failures"])


def _page_answer(
    request: Request, state: AppState, page: Page, items: list[dict[str, Any]]
) -> Response:
    value = {"Items": items, "Total": page.total, "NextCursor": page.next_cursor}
    response = answer(request, state, value, root="SendingPage")
    response.headers.update(paging_headers(request, page))
    return response


async def _sendings_page(
    state: AppState, params: ListParams, selection: SendingFilter, scope: str
) -> Page:
    """A page of `ITEM_COLUMNS` rows in SendingTime order; `scope` names the list."""
    return await read_list_page(
        state.engine,
        params,
        selection,
        signing_key=state.signing_key,
        columns=ITEM_COLUMNS,
        order=Order.SENDING_TIME,
        scope_parts=(scope,),
    )


# OpenAPI ---------------------------------------------------------------------------------------

_ERROR_DOC: Final = {"description": 'Web API error shape `{"Message": "..."}`'}

_ITEM_FIELDS = (
    "`SendingId`, `PracticeId`, `InvoiceId`, `EncounterId`, `System`, `SendingType`, `Status`, "
    "`Reason`, `Cause` (the cause group's slug; `unknown` for a failure recorded without one; "
    "null when nothing failed), `CauseLabel` (the group's name for admins), `SendingAttempts`, "
    "`SendingTime`, `NextAttemptAt`, `SentAt`, `Held` (true while it waits because its system "
    "is switched off or down: `Status` stays `Pending` or `Failed`), `HeldReason` (why, e.g. "
    "`MediSwitch is switched off`), `HeldSince` (since when it has waited for that), "
    "`Acceptance` (the recipient's verdict: "
    "`Awaiting`, `Accepted`, `Rejected`, `Overdue`; null for systems that do not tell one), "
    "`AcceptanceCode` (the recipient's code), `WaitsFor` (a corrected claim waits for this "
    "sending, the reversal of the accepted one)"
)
_PAGE_SHAPE = (
    '`{"Items": [...], "Total": n, "NextCursor": "..." | null}` (XML root `SendingPage`, items '
    "`Item`). Order: SendingTime, then SendingId (stable). Paging headers as on the legacy "
    "lists: `X-Total-Count`, `X-Next-Cursor`, `Link`."
)


def _page_responses(extra_fields: str = "") -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": f"{_PAGE_SHAPE} Items: {_ITEM_FIELDS}{extra_fields}. {STATUS_VALUES}",
            "headers": PAGING_HEADERS_DOC,
            "content": {"application/json": {}, "application/xml": {}},
        },
        400: _ERROR_DOC,
        401: _ERROR_DOC,
        403: _ERROR_DOC,
    }


# Routes ----------------------------------------------------------------------------------------


@router.get(
    "/api/v1/billing/sendings",
    summary="Sendings, filtered, a page at a time",
    description=(
        "**Admins:** every practice. **Practice users:** only their practices (naming another "
        f"practice in `practiceId` is 403). Filters combine with AND; repeated values of one "
        f"filter with OR. Without `status`, every status but `Discarded` (sendings given up "
        f"on for good; `status=Discarded` lists them). Always paged (default {DEFAULT_LIMIT} "
        "per page)."
    ),
    response_class=Response,
    responses=_page_responses(),
    openapi_extra=query_docs(LIST_PARAMS),
)
async def list_sendings(request: Request, state: State, caller: Caller) -> Response:
    params = read_params(request.query_params.multi_items(), LIST_PARAMS, state.settings.zone)
    selection = shown_by_default(scoped(params.selection, caller))
    page = await _sendings_page(state, params, selection, "sendings")
    now = state.clock.now()
    async with reading(state.engine) as connection:
        holds = await held_systems(connection)
        catalogue = await load_catalogue(connection)
    items = [sending_item(row, holds, now, catalogue) for row in page.rows]
    return _page_answer(request, state, page, items)


@router.get(
    "/api/v1/{practiceId}/billing/invoices",
    summary="A practice's invoices: where each sending stands, in plain words",
    description=(
        "**Admins, or users of that practice.** The practice's sendings with the filters and "
        "paging of `GET api/v1/billing/sendings`; each item also has `Explanation` (what "
        "happened, in plain words) and `NextStep` (what happens next, or what to do); a "
        "sending the recipient rejected has `WhoMustAct` (practice, administrator or software "
        "vendor) and `MustCorrect` (true: the practice must correct the invoice; `NextStep` is "
        "the fix)."
    ),
    response_class=Response,
    responses=_page_responses(", `Explanation`, `NextStep`, `WhoMustAct`, `MustCorrect`"),
    openapi_extra=query_docs(PRACTICE_VIEW_PARAMS),
)
async def practice_invoices(
    request: Request, state: State, caller: Caller, practiceId: uuid.UUID
) -> Response:
    caller.ensure_access(practiceId)
    zone = state.settings.zone
    params = read_params(request.query_params.multi_items(), PRACTICE_VIEW_PARAMS, zone)
    selection = dataclasses.replace(params.selection, practices=frozenset({practiceId}))
    page = await _sendings_page(state, params, selection, "practice")
    now = state.clock.now()
    async with reading(state.engine) as connection:
        holds = await held_systems(connection)
        told = await notified_aborts(connection, [(row[0], row[ABORTED_AT]) for row in page.rows])
        catalogue = await load_catalogue(connection)
    items = [practice_item(row, zone, now, holds, told, catalogue) for row in page.rows]
    return _page_answer(request, state, page, items)


@router.get(
    "/api/v1/billing/causes",
    summary="Failures grouped by cause, with counts",
    description=(
        "**Admins only.** `Failed` and `Aborted` sendings grouped by cause: "
        '`{"Groups": [...], "Total": n}` (XML root `CauseGroups`, items `CauseGroup`), largest '
        "group first. Each group: `Cause` (its id: a slug such as `http-503`, usable as the "
        "`cause` filter of the lists), `Count`, `Reason` (the most recent reason in the group), "
        "`Label` (the group's name), `FirstSeen` and `LastSeen` (SendingTime), `Statuses` "
        "(count per status), `Systems`, `SystemCount`, `Practices` (at most "
        f"{PRACTICE_CAP}) and `PracticeCount`, `Retryable` (the worker retries this cause "
        "by itself). A recipient's rejection (cause `code-...`, keyed on the rejection "
        "catalogue's entry) also has `Meaning`, `Fix`, `WhoMustAct`, `ResendHelps` and "
        "`Known` (false: a code the catalogue does not explain yet); `ResendAll` is false "
        "when the fix needs a correction (no blind resend of the group). Filters as on the "
        "lists; `status` may be `Failed` or `Aborted`."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "The cause groups.",
            "content": {"application/json": {}, "application/xml": {}},
        },
        400: _ERROR_DOC,
        401: _ERROR_DOC,
        403: _ERROR_DOC,
    },
    openapi_extra=query_docs(CAUSE_PARAMS, {STATUS: CAUSE_STATUS_SCHEMA}),
)
async def list_causes(request: Request, state: State, _caller: Admin) -> Response:
    selection = read_cause_selection(request.query_params.multi_items(), state.settings.zone)
    async with reading(state.engine) as connection:
        groups = await cause_groups(connection, selection)
        catalogue = await load_catalogue(connection)
    statuses = failure_statuses(selection)
    value = {
        "Groups": [
            group_view(g, practice_cap=PRACTICE_CAP, statuses=statuses, catalogue=catalogue)
            for g in groups
        ],
        "Total": sum(g.count for g in groups),
    }
    return answer(request, state, value, root="CauseGroups")
