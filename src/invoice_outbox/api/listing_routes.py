"""Filtered, paginated lists of sendings, cause groups, and the practice view.

Their query parameters are read by `invoice_outbox.api.list_params`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, tzinfo
from typing import Any, Final

from fastapi import APIRouter, Request
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import QueryableAttribute
from starlette.responses import Response

from invoice_outbox.api.bodies import answer
from invoice_outbox.api.deps import State
from invoice_outbox.api.docs import STATUS_VALUES
from invoice_outbox.api.errors import bad_parameter
from invoice_outbox.api.list_params import (
    CAUSE,
    CAUSE_PARAMS,
    CAUSE_STATUS_SCHEMA,
    CURSOR,
    DEFAULT_LIMIT,
    FROM,
    LEGACY_PARAMS,
    LIMIT,
    LIST_PARAMS,
    PARAM_SCHEMAS,
    PRACTICE,
    PRACTICE_CAP,
    PRACTICE_VIEW_PARAMS,
    SENDING_TYPE,
    SENT_PARAMS,
    STATUS,
    SYSTEM,
    TEXT,
    TO,
    ListParams,
    cause_slug,
    parse_moment,
    read_cause_selection,
    read_params,
    scoped,
)
from invoice_outbox.api.security import Admin, Caller, ensure_practice_access
from invoice_outbox.sendings.cause_groups import cause_groups, failure_statuses, group_view
from invoice_outbox.sendings.causes import (
    describe,
    group_key,
    practice_explanation,
)
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.listing import (
    MAX_LIMIT,
    CursorError,
    CursorSigner,
    CursorState,
    Order,
    Page,
    read_page,
    scope_of,
)
from invoice_outbox.sendings.models import Sending
from invoice_outbox.state import AppState
from invoice_outbox.systems.holds import SystemHold, held_systems

router = APIRouter(tags=["finding failures"])

# Pages -----------------------------------------------------------------------------------------


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose reads share one snapshot (PostgreSQL: REPEATABLE READ)."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execution_options(isolation_level="REPEATABLE READ")
        yield connection


async def read_list_page(
    state: AppState,
    params: ListParams,
    selection: SendingFilter,
    *,
    columns: Sequence[QueryableAttribute[Any]],
    order: Order,
    scope_parts: Sequence[str],
    extra: Sequence[ColumnElement[bool]] = (),
) -> Page:
    """The page `params` ask for (the first one without a cursor); 400 for a bad cursor."""
    signer = CursorSigner(state.signing_key)
    scope = scope_of(selection, order, *scope_parts)
    cursor: CursorState | None = None
    if params.cursor is not None:
        try:
            cursor = signer.load(params.cursor, scope)
        except CursorError as exc:
            raise bad_parameter(CURSOR, str(exc)) from None
    async with reading(state.engine) as connection:
        return await read_page(
            connection,
            columns=columns,
            selection=selection,
            order=order,
            limit=params.limit or DEFAULT_LIMIT,
            cursor=cursor,
            signer=signer,
            scope=scope,
            extra=extra,
        )


def paging_headers(request: Request, page: Page) -> dict[str, str]:
    """``X-Total-Count``, and for a page with a successor ``X-Next-Cursor`` and ``Link``."""
    headers = {"X-Total-Count": str(page.total)}
    if page.next_cursor is not None:
        sent = [key for key, _ in request.query_params.multi_items() if key.lower() == CURSOR]
        url = request.url.remove_query_params(sent).include_query_params(cursor=page.next_cursor)
        headers["X-Next-Cursor"] = page.next_cursor
        headers["Link"] = f'<{url}>; rel="next"'
    return headers


# Items -----------------------------------------------------------------------------------------

ITEM_COLUMNS: Final = (
    Sending.id,
    Sending.practice_id,
    Sending.invoice_id,
    Sending.encounter_id,
    Sending.system,
    Sending.sending_type,
    Sending.status,
    Sending.reason,
    Sending.cause,
    Sending.attempts,
    Sending.sending_time,
    Sending.next_attempt_at,
    Sending.sent_at,
)


def sending_item(row: Sequence[Any]) -> dict[str, Any]:
    """A row of `ITEM_COLUMNS` as a list item (`Cause` is its cause group, with its label)."""
    (
        sending_id,
        practice_id,
        invoice_id,
        encounter_id,
        system,
        sending_type,
        status,
        reason,
        cause,
        attempts,
        sending_time,
        next_attempt_at,
        sent_at,
    ) = row[:13]
    group = group_key(status, cause)
    return {
        "SendingId": sending_id,
        "PracticeId": practice_id,
        "InvoiceId": invoice_id,
        "EncounterId": encounter_id,
        "System": system,
        "SendingType": sending_type,
        "Status": status,
        "Reason": reason,
        "Cause": group,
        "CauseLabel": None if group is None else describe(group).label,
        "SendingAttempts": attempts,
        "SendingTime": sending_time,
        "NextAttemptAt": next_attempt_at,
        "SentAt": sent_at,
    }


def practice_item(
    row: Sequence[Any], zone: tzinfo, now: datetime, holds: Mapping[str, SystemHold] | None = None
) -> dict[str, Any]:
    """`sending_item` plus `Explanation` and `NextStep` in plain words (the practice view).

    `holds` (from `held_systems`): systems holding their queue, so waiting invoices say why.
    """
    item = sending_item(row)
    explanation, next_step = practice_explanation(
        status=item["Status"],
        cause=item["Cause"],
        next_attempt_at=item["NextAttemptAt"],
        sent_at=item["SentAt"],
        zone=zone,
        now=now,
        hold=(holds or {}).get(item["System"]),
    )
    item["Explanation"] = explanation
    item["NextStep"] = next_step
    return item


def _page_answer(
    request: Request, state: AppState, page: Page, items: list[dict[str, Any]]
) -> Response:
    value = {"Items": items, "Total": page.total, "NextCursor": page.next_cursor}
    response = answer(request, state, value, root="SendingPage")
    response.headers.update(paging_headers(request, page))
    return response


# OpenAPI ---------------------------------------------------------------------------------------

_PARAM_DOCS: Final[Mapping[str, tuple[str, dict[str, Any]]]] = {
    PRACTICE: ("Only these practices (GUID; repeat or comma-separate).", {"type": "string"}),
    SYSTEM: (
        "Only sendings to these systems (exact name; repeat or comma-separate).",
        {"type": "string"},
    ),
    SENDING_TYPE: ("`Invoice` or `Cancellation` (repeat or comma-separate).", {"type": "string"}),
    STATUS: (
        "`Pending`, `Sending`, `Sent`, `Failed`, `Aborted`, `Cancelled` (repeat or "
        "comma-separate).",
        {"type": "string"},
    ),
    CAUSE: (
        "Cause groups: slugs such as `http-503`, `timeout`, `smtp-550`, `config` (see "
        "`GET api/v1/billing/causes`); `unknown` = failures recorded without a cause.",
        {"type": "string"},
    ),
    FROM: (
        "SendingTime from (inclusive): `yyyy-MM-dd` (the start of that day in the service's "
        "time zone) or an ISO date-time (no offset: the service's zone).",
        {"type": "string"},
    ),
    TO: (
        "SendingTime up to: `yyyy-MM-dd` includes that whole day; an ISO date-time is exclusive.",
        {"type": "string"},
    ),
    TEXT: ("Text the Reason contains (case-insensitive).", {"type": "string", "maxLength": 200}),
    LIMIT: (
        f"Page size, 1 to {MAX_LIMIT}. Giving `limit` or `cursor` pages the list "
        f"(default page: {DEFAULT_LIMIT}).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    ),
    CURSOR: (
        "The opaque cursor of the next page (`X-Next-Cursor` / `NextCursor`), used with "
        "the same filters as the first page.",
        {"type": "string"},
    ),
}


def query_docs(
    names: Sequence[str], schemas: Mapping[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """OpenAPI `parameters` for the named query parameters (read by `read_params`); `schemas`
    replaces the usual schema of some (where a route accepts fewer values)."""
    schemas = {**PARAM_SCHEMAS, **(schemas or {})}
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": _PARAM_DOCS[name][0],
                "schema": schemas.get(name, _PARAM_DOCS[name][1]),
            }
            for name in names
        ]
    }


PAGING_HEADERS_DOC: Final = {
    "X-Total-Count": {
        "description": "Rows in the whole list (fixed by its first page).",
        "schema": {"type": "integer"},
    },
    "X-Next-Cursor": {
        "description": "Cursor of the next page; absent on the last page.",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page\'s URL: `<...>; rel="next"`.',
        "schema": {"type": "string"},
    },
}

_ERROR_DOC: Final = {"description": 'Web API error shape `{"Message": "..."}`'}

_ITEM_FIELDS = (
    "`SendingId`, `PracticeId`, `InvoiceId`, `EncounterId`, `System`, `SendingType`, `Status`, "
    "`Reason`, `Cause` (the cause group's slug; `unknown` for a failure recorded without one; "
    "null when nothing failed), `CauseLabel` (the group's name for admins), `SendingAttempts`, "
    "`SendingTime`, `NextAttemptAt`, `SentAt`"
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
        f"filter with OR. Always paged (default {DEFAULT_LIMIT} per page)."
    ),
    response_class=Response,
    responses=_page_responses(),
    openapi_extra=query_docs(LIST_PARAMS),
)
async def list_sendings(request: Request, state: State, caller: Caller) -> Response:
    params = read_params(request, LIST_PARAMS, state.settings.zone)
    selection = scoped(params.selection, caller)
    page = await read_list_page(
        state,
        params,
        selection,
        columns=ITEM_COLUMNS,
        order=Order.SENDING_TIME,
        scope_parts=("sendings",),
    )
    return _page_answer(request, state, page, [sending_item(row) for row in page.rows])


@router.get(
    "/api/v1/{practiceId}/billing/invoices",
    summary="A practice's invoices: where each sending stands, in plain words",
    description=(
        "**Admins, or users of that practice.** The practice's sendings with the filters and "
        "paging of `GET api/v1/billing/sendings`; each item also has `Explanation` (what "
        "happened, in plain words) and `NextStep` (what happens next, or what to do)."
    ),
    response_class=Response,
    responses=_page_responses(", `Explanation`, `NextStep`"),
    openapi_extra=query_docs(PRACTICE_VIEW_PARAMS),
)
async def practice_invoices(
    request: Request, state: State, caller: Caller, practiceId: uuid.UUID
) -> Response:
    ensure_practice_access(caller, practiceId)
    zone = state.settings.zone
    params = read_params(request, PRACTICE_VIEW_PARAMS, zone)
    selection = dataclasses.replace(params.selection, practices=frozenset({practiceId}))
    page = await read_list_page(
        state,
        params,
        selection,
        columns=ITEM_COLUMNS,
        order=Order.SENDING_TIME,
        scope_parts=("practice",),
    )
    now = state.clock.now()
    async with reading(state.engine) as connection:
        holds = await held_systems(connection)
    items = [practice_item(row, zone, now, holds) for row in page.rows]
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
        "by itself). Filters as on the lists; `status` may be `Failed` or `Aborted`."
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
    selection = read_cause_selection(request, state.settings.zone)
    async with reading(state.engine) as connection:
        groups = await cause_groups(connection, selection)
    statuses = failure_statuses(selection)
    value = {
        "Groups": [group_view(g, practice_cap=PRACTICE_CAP, statuses=statuses) for g in groups],
        "Total": sum(g.count for g in groups),
    }
    return answer(request, state, value, root="CauseGroups")


__all__ = [
    "DEFAULT_LIMIT",
    "ITEM_COLUMNS",
    "LEGACY_PARAMS",
    "SENT_PARAMS",
    "ListParams",
    "cause_slug",
    "paging_headers",
    "parse_moment",
    "practice_item",
    "query_docs",
    "read_cause_selection",
    "read_list_page",
    "read_params",
    "router",
    "scoped",
    "sending_item",
]
