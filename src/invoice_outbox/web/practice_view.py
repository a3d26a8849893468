"""The practice view: ``GET /admin/invoices``, a practice's invoices in plain words.

Who may call it: any signed-in user.  A practice user sees only their practices' sendings
(they land here from ``/admin/``); naming another practice in the practice filter is the API's
403.  Admins see every practice, or one with the practice filter.  It is the API's practice
view (``GET api/v1/{practiceId}/billing/invoices``): each sending with its `Explanation`
("The system the invoice is sent to is temporarily unavailable.") and `NextStep` ("We will
keep trying automatically ...") from `practice_item`, dates in the service's (the practices')
time zone, `PAGE_SIZE` a page with the API's cursor, oldest first.

``show`` picks the statuses: ``problems`` (default: Failed and Aborted, what did not get
through), ``waiting`` (Pending, Sending), ``sent``, ``discarded`` (given up on for good),
``all``; the other filters are the lists' (`invoice_outbox.web.paging`).  Each item links
to the invoice's timeline.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.api.deps import State
from invoice_outbox.auth.principal import AccessDenied
from invoice_outbox.sendings.items import practice_item
from invoice_outbox.sendings.list_query import PRACTICE_VIEW_PARAMS, scoped
from invoice_outbox.sendings.status import Status
from invoice_outbox.sendings.worklists import must_correct
from invoice_outbox.systems.holds import held_systems
from invoice_outbox.systems.rejections import load_catalogue
from invoice_outbox.web.errors import PageError
from invoice_outbox.web.lists import system_names
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
from invoice_outbox.web.sessions import PagePrincipal
from invoice_outbox.web.templating import render

router = APIRouter(include_in_schema=False)

#: The practice view's parameters: the API's, with the practice filter and without ``limit``.
VIEW_FIELDS: Final = (
    "practiceId",
    *(name for name in PRACTICE_VIEW_PARAMS if name not in ("sendingType", "status", "limit")),
)
#: ``show`` -> (label, statuses).
SHOW: Final = {
    "problems": ("Not delivered", (Status.FAILED, Status.ABORTED)),
    "waiting": ("Waiting to be sent", (Status.PENDING, Status.SENDING)),
    "sent": ("Delivered", (Status.SENT,)),
    "discarded": ("Given up on (discarded)", (Status.DISCARDED,)),
    "all": ("All", ()),
}
DEFAULT_SHOW: Final = "problems"


def only(practices: frozenset[uuid.UUID] | None) -> uuid.UUID | None:
    """The practice a filter names when it names exactly one."""
    return next(iter(practices)) if practices and len(practices) == 1 else None


def _show(request: Request) -> str:
    show = request.query_params.get("show", "").strip() or DEFAULT_SHOW
    if show not in SHOW:
        raise bad_filter("Show must be one of: " + ", ".join(label for label, _ in SHOW.values()))
    return show


@router.get("/admin/invoices")
async def practice_invoices(request: Request, principal: PagePrincipal, state: State) -> Response:
    """Admins: every practice (or the one filtered); practice users: their own practices."""
    zone = state.settings.zone
    params = read_filters(request, VIEW_FIELDS, zone)
    show = _show(request)
    number = page_number(request)
    wanted = dataclasses.replace(params.selection, statuses=frozenset(SHOW[show][1]))
    try:
        selection = scoped(wanted, principal)
    except AccessDenied:
        raise PageError(
            403,
            "Not available to your account",
            "That practice is not one of yours. Clear the practice filter to see your invoices.",
        ) from None
    page = await read_sendings_page(state, params, selection, scope=f"practice-{show}")
    now = state.clock.now()
    async with state.engine.connect() as connection:
        holds = await held_systems(connection)
        catalogue = await load_catalogue(connection)
        to_correct = await must_correct(
            connection, selection.practices, catalogue=catalogue, zone=zone, now=now
        )
    items = [practice_item(row, zone, now, holds, catalogue) for row in page.rows]
    values = form_values(request, FILTER_FIELDS)
    filtered_practice = params.selection.practices if principal.is_admin else None
    return render(
        request,
        "practice_invoices.html",
        {
            "items": items,
            "to_correct": to_correct,
            "pager": pager(request, page, number),
            "values": values,
            "filtering": any(values.values()) or show != DEFAULT_SHOW,
            "show": show,
            "show_choices": [(key, label) for key, (label, _) in SHOW.items()],
            "show_practice": principal.is_admin or len(principal.practices) > 1,
            "practice": only(filtered_practice),
            "causes": cause_choices(values["cause"]),
            "systems": await system_names(state) if principal.is_admin else [],
        },
    )
