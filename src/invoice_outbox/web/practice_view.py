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

from invoice_outbox.admin.notifications import notified_aborts
from invoice_outbox.api.deps import State
from invoice_outbox.auth.principal import AccessDenied, Principal
from invoice_outbox.practices.service import PracticeInfo, label
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.holds import held_systems
from invoice_outbox.sendings.items import ABORTED_AT, practice_item
from invoice_outbox.sendings.list_query import PRACTICE_VIEW_PARAMS, scoped
from invoice_outbox.sendings.status import Status
from invoice_outbox.sendings.worklists import must_correct
from invoice_outbox.state import AppState
from invoice_outbox.systems.rejections import load_catalogue
from invoice_outbox.web.errors import PageError
from invoice_outbox.web.lists import csv_response
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


async def _read(
    request: Request, principal: Principal, state: AppState
) -> tuple[ListForm, SendingFilter, list[PracticeInfo], list[str], str]:
    """The form, the selection it means for `principal`, the practices and systems offered."""
    mine = None if principal.is_admin else frozenset(principal.practices)
    practices = await practice_choices(state, mine)
    systems = await system_names(state) if principal.is_admin else []
    form = await read_list_form(request, state, VIEW_FIELDS, practices=practices, systems=systems)
    show = request.query_params.get("show", "").strip() or DEFAULT_SHOW
    if show not in SHOW:
        form.errors["status"] = "Show must be one of: " + ", ".join(
            label for label, _ in SHOW.values()
        )
        show = DEFAULT_SHOW
    wanted = dataclasses.replace(form.selection, statuses=frozenset(SHOW[show][1]))
    try:
        selection = scoped(wanted, principal)
    except AccessDenied:
        raise PageError(
            403,
            "Not available to your account",
            "That practice is not one of yours. Clear the practice filter to see your invoices.",
        ) from None
    return form, selection, practices, systems, show


@router.get("/admin/invoices")
async def practice_invoices(request: Request, principal: PagePrincipal, state: State) -> Response:
    """Admins: every practice (or the one filtered); practice users: their own practices."""
    zone = state.settings.zone
    form, selection, practices, systems, show = await _read(request, principal, state)
    statuses = SHOW[show][1]
    page = await read_page(state, form, selection, scope=f"practice-{show}")
    now = state.clock.now()
    async with state.engine.connect() as connection:
        holds = await held_systems(connection)
        told = await notified_aborts(connection, [(r[0], r[ABORTED_AT]) for r in page.rows])
        catalogue = await load_catalogue(connection)
        to_correct = await must_correct(
            connection, selection.practices, catalogue=catalogue, zone=zone, now=now
        )
    names = {p.id: p.name for p in practices}
    items = []
    for row in page.rows:
        item = practice_item(row, zone, now, holds, told, catalogue)
        item["PracticeLabel"] = label(item["PracticeId"], names.get(item["PracticeId"]))
        items.append(item)
    values = form.values
    filtered_practice = form.selection.practices if principal.is_admin else None
    chosen = only(filtered_practice)
    return render(
        request,
        "practice_invoices.html",
        {
            "items": items,
            "to_correct": to_correct,
            "pager": pager(request, page, form, csv_path="/admin/invoices.csv"),
            "values": values,
            "errors": form.errors,
            "filtering": any(values[f] for f in FILTER_FIELDS) or show != DEFAULT_SHOW,
            "show": show,
            "show_choices": [(key, label) for key, (label, _) in SHOW.items()],
            "show_practice": principal.is_admin or len(principal.practices) > 1,
            "practice": chosen,
            "practice_label": label(chosen, names.get(chosen)) if chosen else None,
            "causes": await cause_choices(
                state,
                values["cause"],
                statuses=statuses or tuple(Status),
                practices=None if principal.is_admin else principal.practices,
            ),
            "systems": systems,
            "practices": practices,
            "sorts": SORTS,
            "orders": ORDERS,
            "sizes": PAGE_SIZES,
            "updated_at": now,
        },
        400 if form.errors else 200,
    )


@router.get("/admin/invoices.csv")
async def practice_invoices_csv(
    request: Request, principal: PagePrincipal, state: State
) -> Response:
    """The practice view as filtered and sorted, as CSV (every row, streamed); practice users
    get only their practices' invoices."""
    form, selection, practices, _, show = await _read(request, principal, state)
    if form.errors:
        raise bad_filter(" ".join(form.errors.values()))
    names = {p.id: p.name for p in practices}
    stamp = state.clock.now().astimezone(state.settings.zone).strftime("%Y-%m-%d-%H%M")
    return await csv_response(state, form, selection, names, f"invoices-{show}-{stamp}.csv")
