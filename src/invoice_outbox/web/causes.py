"""Cause groups: failures grouped by what went wrong, and "resend all" of a group.

Routes (admins only: practice users get a 403 page, nobody signed in goes to sign-in):

- ``GET /admin/causes[?system=NAME&status=Failed|Aborted]``: the groups as the API's
  ``GET api/v1/billing/causes`` computes them (`cause_groups`, same filters, same 400s),
  largest first, as a bar chart and a table.
- ``GET /admin/causes/{cause}[?system=&status=]``: one group: what the cause means, counts,
  systems, the most recent reason, the first page of its sendings (links to the aborted and
  failed lists for the rest), and the "Resend all" form.
- ``POST /admin/causes/{cause}/resend`` (CSRF): the API's bulk resend (`create_job` with the
  API's own body model, `admin.schemas.BulkResendIn`), a dry run when "preview" is ticked;
  then 303 to the job's page.
  The job runs in the background (the resend-job runner next to each worker), never here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from invoice_outbox.admin.resends import ResendRefused, create_job
from invoice_outbox.admin.schemas import BulkResendIn, FilterIn
from invoice_outbox.api.deps import Session, State
from invoice_outbox.errors import InvalidParameter
from invoice_outbox.practices.service import label, practice_names
from invoice_outbox.sendings.cause_groups import CauseGroup, cause_groups, failure_statuses
from invoice_outbox.sendings.causes import describe
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.items import ITEM_COLUMNS, sending_item
from invoice_outbox.sendings.list_query import (
    STATUS,
    SYSTEM,
    ListParams,
    cause_slug,
    read_cause_selection,
)
from invoice_outbox.sendings.listing import Order
from invoice_outbox.sendings.pages import read_list_page, reading
from invoice_outbox.systems.models import System
from invoice_outbox.systems.rejections import Catalogue, load_catalogue
from invoice_outbox.web.charts import Bar, horizontal_bars
from invoice_outbox.web.csrf import CsrfForm
from invoice_outbox.web.errors import PageError, bad_form, page_error_of
from invoice_outbox.web.params import checked, form_text, required_reason
from invoice_outbox.web.sessions import AdminPage
from invoice_outbox.web.templating import render

router = APIRouter(include_in_schema=False)

#: Sendings shown on a group's page (the lists page through the rest).
SAMPLE: Final = 20
#: Groups drawn in the chart (the table lists them all).
CHART_GROUPS: Final = 12
_FILTERS: Final = (SYSTEM, STATUS)
_FAILURE_VALUES: Final = ("Failed", "Aborted")


def _no_such_cause() -> PageError:
    return PageError(
        404,
        "No such cause",
        "No failed or aborted invoice has this cause. Check the link, or pick a group from "
        "the causes page.",
    )


def _filter_query(selection: SendingFilter) -> str:
    """The page's filters as a query string ("" without any), for links that keep them."""
    pairs = [("system", s) for s in sorted(selection.systems)]
    pairs += [("status", s.value) for s in sorted(selection.statuses)]
    return urlencode(pairs)


def _read_filters(request: Request, state: State) -> SendingFilter:
    """``system`` and ``status`` as the causes route reads them (a bad one is the domain's
    400); the page's form sends one system at a time, and so does a bulk resend."""
    items = request.query_params.multi_items()
    selection = read_cause_selection(items, state.settings.zone, _FILTERS)
    if len(selection.systems) > 1:
        raise PageError(400, "Please check the request", "Choose one system at a time.")
    return selection


def _group_row(group: CauseGroup, query: str, catalogue: Catalogue | None = None) -> dict[str, Any]:
    suffix = f"?{query}" if query else ""
    return {
        "cause": group.cause,
        "label": describe(group.cause, catalogue).label,
        "count": group.count,
        "failed": group.statuses.get("Failed", 0),
        "aborted": group.statuses.get("Aborted", 0),
        "systems": sorted(group.systems),
        "practices": len(group.practices),
        "last_seen": group.last_seen,
        "reason": group.reason,
        "href": f"/admin/causes/{quote(group.cause, safe='')}{suffix}",
    }


async def _system_names(db: Session) -> list[str]:
    """Configured systems (a short table), offered as suggestions in the filter."""
    return list((await db.scalars(select(System.name).order_by(System.name))).all())


@router.get("/admin/causes")
async def causes_page(
    request: Request, principal: AdminPage, state: State, db: Session
) -> Response:
    """Admins: every cause group with counts (filters ``system``, ``status``)."""
    selection = _read_filters(request, state)
    async with reading(state.engine) as connection:
        groups = await cause_groups(connection, selection)
        catalogue = await load_catalogue(connection)
    query = _filter_query(selection)
    rows = [_group_row(g, query, catalogue) for g in groups]
    chart = horizontal_bars(
        [Bar(r["label"], r["count"], r["href"]) for r in rows[:CHART_GROUPS]],
        title="Failed and aborted invoices by cause",
        unit="invoice",
        empty_message="No failed or aborted invoices match.",
    )
    return render(
        request,
        "causes.html",
        {
            "rows": rows,
            "chart": chart,
            "chart_groups": CHART_GROUPS,
            "total": sum(g.count for g in groups),
            "system": next(iter(selection.systems), ""),
            "status": next((s.value for s in selection.statuses), "")
            if len(selection.statuses) == 1
            else "",
            "statuses": _FAILURE_VALUES,
            "system_names": await _system_names(db),
            "filtered": bool(query),
        },
    )


@router.get("/admin/causes/{cause}")
async def cause_page(request: Request, cause: str, principal: AdminPage, state: State) -> Response:
    """Admins: one cause group, the first `SAMPLE` of its sendings, and "Resend all".

    404 for a cause that is neither known nor seen among the failures (a mistyped link)."""
    try:
        slug = cause_slug(cause)
    except InvalidParameter:
        raise _no_such_cause() from None
    selection = dataclasses.replace(_read_filters(request, state), causes=frozenset({slug}))
    async with reading(state.engine) as connection:
        groups = await cause_groups(connection, selection)
        catalogue = await load_catalogue(connection)
    if not groups and not describe(slug, catalogue).known:
        raise _no_such_cause()
    group = groups[0] if groups else CauseGroup(slug)
    listed = dataclasses.replace(selection, statuses=frozenset(failure_statuses(selection)))
    page = await read_list_page(
        state.engine,
        ListParams(listed, SAMPLE, None, given=True),
        listed,
        signing_key=state.signing_key,
        columns=ITEM_COLUMNS,
        order=Order.SENDING_TIME,
        scope_parts=("sendings",),
    )
    query = _filter_query(selection)
    list_query = urlencode([("cause", slug), *[("system", s) for s in sorted(selection.systems)]])
    statuses = [s.value for s in sorted(selection.statuses)]
    return render(
        request,
        "cause.html",
        {
            "slug": slug,
            "info": describe(slug, catalogue),
            "group": _group_row(group, query, catalogue),
            "statuses_shown": [s.value for s in failure_statuses(selection)],
            "sample": [sending_item(row, catalogue=catalogue) for row in page.rows],
            "listed": page.total,
            "list_query": list_query,
            "system": next(iter(selection.systems), ""),
            "status_filter": statuses[0] if len(statuses) == 1 else "",
            "back": "/admin/causes" + (f"?{query}" if query else ""),
            "practice_links": await _practice_links(state, group, slug),
        },
    )


async def _practice_links(state: State, group: CauseGroup, slug: str) -> list[tuple[str, str]]:
    """(label, link to what the practice is told about this cause) for each practice affected."""
    async with state.engine.connect() as connection:
        names = await practice_names(connection, group.practices)
    ordered = sorted(group.practices, key=lambda p: label(p, names.get(p)).lower())
    return [
        (
            label(p, names.get(p)),
            f"/admin/invoices?{urlencode({'practiceId': str(p), 'cause': slug})}",
        )
        for p in ordered[:20]
    ]


def _resend_body(slug: str, form: Any, reason: str) -> BulkResendIn:
    """The API's bulk-resend body for this form: the cause, the page's filters, dry run."""
    system = form_text(form, "system") or None
    status = form_text(form, "status") or None
    if status is not None and status not in _FAILURE_VALUES:
        raise bad_form("Status must be Failed or Aborted.")
    try:
        given = system is not None or status is not None
        flt = FilterIn(System=system, Status=[status] if status else None) if given else None
        return BulkResendIn(Cause=slug, Filter=flt, DryRun=checked(form, "dry_run"), Reason=reason)
    except ValidationError:
        raise bad_form("The system or status of this form is not valid; reload the page.") from None


@router.post("/admin/causes/{cause}/resend")
async def resend_cause(
    cause: str, principal: AdminPage, form: CsrfForm, state: State, db: Session
) -> Response:
    """Admins, with the CSRF token and a reason: start the API's background resend job for
    the group (or only a dry run), audited as the API audits it; 303 to ``/admin/jobs/{id}``."""
    slug = cause_slug(cause)
    body = _resend_body(slug, form, required_reason(form))
    try:
        job = await create_job(
            db,
            principal=principal,
            selection=body.selection(),
            force=body.Force,
            dry_run=body.DryRun,
            reason=body.Reason,
            now=state.clock.now(),
            rate_per_second=body.RatePerSecond,
        )
    except ResendRefused as exc:
        raise page_error_of(exc, "The resend was not started") from None
    await db.commit()
    return RedirectResponse(f"/admin/jobs/{job.id}", status_code=303)
