"""The aborted and failed lists: ``GET /admin/aborted`` and ``GET /admin/failed``.

Who may call them: admins (practice users get the 403 page; without a session, the sign-in
page).  Each is the API's list (``GET api/v1/billing/invoices/aborted`` / ``failed`` with
parameters) as a table: `PAGE_SIZE` rows a page in (SendingTime, id) order, oldest first, a
"Next page" link carrying the API's signed cursor, and the total the first page counted.
Filters are a GET form with the API's parameter names (practice, system, cause, from/to as
days in the service's time zone, and ``q``: an invoice id, or words in the reason); a value
that cannot mean anything is a 400 page naming the field.  Each row links to the invoice's
timeline (``/admin/invoices/{invoice_id}``).  Cost: two index reads per page, whatever the
number of failures (see `invoice_outbox.sendings.listing`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.api.deps import State
from invoice_outbox.sendings.items import sending_item
from invoice_outbox.sendings.list_query import LEGACY_PARAMS
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from invoice_outbox.systems.holds import SystemHold, held_systems
from invoice_outbox.systems.service import list_systems
from invoice_outbox.web.paging import (
    FILTER_FIELDS,
    bad_filter,
    cause_choices,
    form_values,
    page_number,
    pager,
    read_filters,
    read_sendings_page,
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
        "leave them alone. Open one to resend it.",
    ),
}
#: ``show`` on the aborted list: those needing a decision (default), or those given up on.
ABORTED_SHOW = {
    "": ("Needing a decision", Status.ABORTED),
    "discarded": ("Discarded (given up on)", Status.DISCARDED),
}


async def system_names(state: AppState) -> list[str]:
    """The configured systems' names (suggestions for the system filter)."""
    async with state.sessions() as session:
        return [system.name for system in await list_systems(session)]


def row_view(
    row: Any, holds: Mapping[str, SystemHold] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """A list row: the API's item (held or not, given `holds` and `now`), and whether it was
    discarded."""
    item = sending_item(row, holds, now)
    item["Discarded"] = item["Status"] == Status.DISCARDED.value
    return item


async def _status_list(
    request: Request, state: AppState, status: Status, show: str | None = None
) -> Response:
    params = read_filters(request, LIST_FIELDS, state.settings.zone)
    number = page_number(request)
    selection = dataclasses.replace(params.selection, statuses=frozenset({status}))
    page = await read_sendings_page(state, params, selection, scope=status.value)
    values = form_values(request, FILTER_FIELDS)
    title, lead = _TITLES[status]
    async with state.engine.connect() as connection:
        holds = await held_systems(connection)
    now = state.clock.now()
    return render(
        request,
        "sending_list.html",
        {
            "title": title,
            "lead": lead,
            "status": status.value,
            "rows": [row_view(row, holds, now) for row in page.rows],
            "pager": pager(request, page, number),
            "values": values,
            "filtering": any(values.values()) or bool(show),
            "causes": cause_choices(values["cause"]),
            "systems": await system_names(state),
            **(
                {}
                if show is None
                else {"show": show, "show_choices": [(k, v[0]) for k, v in ABORTED_SHOW.items()]}
            ),
        },
    )


@router.get("/admin/aborted")
async def aborted_list(request: Request, _principal: AdminPage, state: State) -> Response:
    """Admins: Aborted sendings, filtered and paged; ``show=discarded``: Discarded ones."""
    show = request.query_params.get("show", "").strip()
    if show not in ABORTED_SHOW:
        choices = ", ".join(label for label, _ in ABORTED_SHOW.values())
        raise bad_filter(f"Show must be one of: {choices}.")
    return await _status_list(request, state, ABORTED_SHOW[show][1], show)


@router.get("/admin/failed")
async def failed_list(request: Request, _principal: AdminPage, state: State) -> Response:
    """Admins: Failed sendings (another attempt is scheduled), filtered and paged."""
    return await _status_list(request, state, Status.FAILED)
