"""The aborted and failed lists: ``GET /admin/aborted``, ``GET /admin/failed`` (and ``.csv``).

Who may call them: admins (practice users get the 403 page; without a session, the sign-in
page).  Each is the API's list of that status as a table: a page of 25 to 200 rows, sorted by
last attempt (oldest or newest first), attempts or system, with Previous and Next links
(signed keyset cursors) and the total the first page counted.  Filters are a GET form
(`invoice_outbox.web.paging`: practice and system drop-downs, causes that occur, days, and a
search that finds an invoice by its id, the id's first 8 characters as shown, or its invoice
number); a value that cannot mean anything is shown beside its field (400), keeping the form.

``show=discarded`` on the aborted list shows the Discarded ones (given up on): they are out of
the worklist, the counts and the cause groups by default.  Rows have checkboxes for the bulk
form (`invoice_outbox.web.bulk`): resend or discard the chosen rows, or every row matching the
filter.  ``/admin/aborted.csv`` and ``/admin/failed.csv`` stream the filtered list whole, in
the chosen order, from a database cursor (memory does not grow with the list).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from invoice_outbox.api.deps import State
from invoice_outbox.practices.service import PracticeInfo, label
from invoice_outbox.sendings.holds import SystemHold, held_systems
from invoice_outbox.sendings.items import ITEM_COLUMNS, sending_item
from invoice_outbox.sendings.list_query import LEGACY_PARAMS
from invoice_outbox.sendings.sorted_pages import sorted_statement
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from invoice_outbox.web.paging import (
    FILTER_FIELDS,
    ORDERS,
    PAGE_SIZES,
    SORTS,
    ListForm,
    bad_filter,
    cause_choices,
    pager,
    practice_choices,
    read_list_form,
    read_page,
    system_names,
)
from invoice_outbox.web.sessions import AdminPage
from invoice_outbox.web.templating import render

router = APIRouter(include_in_schema=False)

#: The parameters the lists read: the legacy list's filters, without ``sendingType``/``limit``.
LIST_FIELDS = tuple(name for name in LEGACY_PARAMS if name not in ("sendingType", "limit"))

_TITLES = {
    Status.ABORTED: (
        "Aborted invoices",
        "No more automatic attempts: each needs a decision (resend it, or discard it).",
    ),
    Status.FAILED: (
        "Failed invoices",
        "The last attempt failed; another is scheduled. Nothing to do unless they keep failing.",
    ),
    Status.DISCARDED: (
        "Discarded invoices",
        "Given up on for good by an admin or the practice: no more attempts, and bulk resends "
        "leave them alone. Open one to resend it, or tick them and resend them.",
    ),
}
#: ``show`` on the aborted list: those needing a decision (default), or those given up on.
ABORTED_SHOW: Final = {
    "": ("Needing a decision", Status.ABORTED),
    "discarded": ("Discarded (given up on)", Status.DISCARDED),
}
_PATHS: Final = {Status.ABORTED: "/admin/aborted", Status.FAILED: "/admin/failed"}


def row_view(
    row: Any,
    names: dict[Any, str | None],
    holds: Mapping[str, SystemHold] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A list row: the API's item (held or not, given `holds` and `now`), its practice's
    label, and whether it was discarded."""
    item = sending_item(row, holds, now)
    item["Discarded"] = item["Status"] == Status.DISCARDED.value
    item["PracticeLabel"] = label(item["PracticeId"], names.get(item["PracticeId"]))
    return item


async def list_form(request: Request, state: AppState, practices: list[PracticeInfo]) -> ListForm:
    form = await read_list_form(
        request, state, LIST_FIELDS, practices=practices, systems=await system_names(state)
    )
    show = request.query_params.get("show", "").strip()
    if (show and show not in ABORTED_SHOW) or (show and request.url.path != "/admin/aborted"):
        choices = ", ".join(label for label, _ in ABORTED_SHOW.values())
        form.errors["status"] = f"Show must be one of: {choices}."
    return form


def _status(request: Request, status: Status) -> Status:
    show = request.query_params.get("show", "").strip()
    if status is Status.ABORTED and show in ABORTED_SHOW:
        return ABORTED_SHOW[show][1]
    return status


async def _status_list(request: Request, state: AppState, status: Status) -> Response:
    practices = await practice_choices(state)
    form = await list_form(request, state, practices)
    shown = _status(request, status)
    selection = dataclasses.replace(form.selection, statuses=frozenset({shown}))
    page = await read_page(state, form, selection, scope=shown.value)
    names = {p.id: p.name for p in practices}
    title, lead = _TITLES[shown]
    show = request.query_params.get("show", "").strip() if status is Status.ABORTED else None
    values = form.values
    async with state.engine.connect() as connection:
        holds = await held_systems(connection)
    now = state.clock.now()
    return render(
        request,
        "sending_list.html",
        {
            "title": title,
            "lead": lead,
            "status": shown.value,
            "rows": [row_view(row, names, holds, now) for row in page.rows],
            "pager": pager(request, page, form, csv_path=f"{_PATHS[status]}.csv"),
            "values": values,
            "errors": form.errors,
            "filtering": any(values[f] for f in FILTER_FIELDS) or bool(show),
            "causes": await cause_choices(
                state, values["cause"], statuses=(shown,), practices=None
            ),
            "systems": await system_names(state),
            "practices": practices,
            "sorts": SORTS,
            "orders": ORDERS,
            "sizes": PAGE_SIZES,
            "bulk_query": _bulk_query(request),
            "can_discard": shown is Status.ABORTED,
            "all_matching": shown is not Status.DISCARDED,
            "updated_at": state.clock.now(),
            **(
                {}
                if show is None
                else {"show": show, "show_choices": [(k, v[0]) for k, v in ABORTED_SHOW.items()]}
            ),
        },
        400 if form.errors else 200,
    )


def _bulk_query(request: Request) -> list[tuple[str, str]]:
    """The list's filters as hidden fields of the bulk form ("every row matching")."""
    return [
        (key, value.strip())
        for key, value in request.query_params.multi_items()
        if key in (*FILTER_FIELDS, "show") and value.strip()
    ]


@router.get("/admin/aborted")
async def aborted_list(request: Request, _principal: AdminPage, state: State) -> Response:
    """Admins: Aborted sendings, filtered, sorted and paged; ``show=discarded``: Discarded."""
    return await _status_list(request, state, Status.ABORTED)


@router.get("/admin/failed")
async def failed_list(request: Request, _principal: AdminPage, state: State) -> Response:
    """Admins: Failed sendings (another attempt is scheduled), filtered, sorted and paged."""
    return await _status_list(request, state, Status.FAILED)


CSV_HEADER: Final = (
    "InvoiceId",
    "InvoiceNumber",
    "Practice",
    "PracticeId",
    "System",
    "SendingType",
    "Status",
    "Cause",
    "Reason",
    "Attempts",
    "LastAttempt",
    "NextAttempt",
)


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_line(item: dict[str, Any]) -> list[str]:
    def when(moment: Any) -> str:
        return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return [
        _cell(v)
        for v in (
            item["InvoiceId"],
            item["InvoiceNumber"],
            item["PracticeLabel"],
            item["PracticeId"],
            item["System"],
            item["SendingType"],
            item["Status"],
            item["CauseLabel"],
            item["Reason"],
            item["SendingAttempts"],
            when(item["SendingTime"]),
            when(item["NextAttemptAt"]),
        )
    ]


async def csv_response(
    state: AppState, form: ListForm, selection: Any, names: dict[Any, str | None], filename: str
) -> Response:
    """The whole filtered list as CSV, streamed from a database cursor in the form's order."""
    statement = sorted_statement(ITEM_COLUMNS, selection, form.sort)
    batch = state.settings.stream_batch_rows

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_HEADER)
        async with state.engine.connect() as connection:
            result = await connection.stream(statement.execution_options(yield_per=batch))
            async for partition in result.partitions(batch):
                for row in partition:
                    writer.writerow(csv_line(row_view(row, names)))
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _csv(request: Request, state: AppState, status: Status) -> Response:
    practices = await practice_choices(state)
    form = await list_form(request, state, practices)
    if form.errors:
        raise bad_filter(" ".join(form.errors.values()))
    shown = _status(request, status)
    selection = dataclasses.replace(form.selection, statuses=frozenset({shown}))
    names = {p.id: p.name for p in practices}
    stamp = state.clock.now().astimezone(state.settings.zone).strftime("%Y-%m-%d-%H%M")
    return await csv_response(state, form, selection, names, f"{shown.value.lower()}-{stamp}.csv")


@router.get("/admin/aborted.csv")
async def aborted_csv(request: Request, _principal: AdminPage, state: State) -> Response:
    """Admins: the aborted list as it is filtered and sorted, as CSV (every row, streamed)."""
    return await _csv(request, state, Status.ABORTED)


@router.get("/admin/failed.csv")
async def failed_csv(request: Request, _principal: AdminPage, state: State) -> Response:
    """Admins: the failed list as it is filtered and sorted, as CSV (every row, streamed)."""
    return await _csv(request, state, Status.FAILED)
