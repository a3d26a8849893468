"""The overview an admin lands on after signing in: ``GET /admin/``.

Who may call it: admins see the overview; practice users are redirected (303) to their own
view, ``/admin/invoices``; anyone else is sent to the sign-in page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from invoice_outbox.api.deps import State
from invoice_outbox.systems.rejections import load_catalogue
from invoice_outbox.web import overview_data as data
from invoice_outbox.web.charts import (
    OTHER_COLOUR,
    Bar,
    horizontal_bars,
    series_from,
    stable_colours,
    stacked_bars,
)
from invoice_outbox.web.paging import system_names
from invoice_outbox.web.sessions import PagePrincipal
from invoice_outbox.web.templating import day_label, render

router = APIRouter(include_in_schema=False)


@router.get("/admin")
async def admin_root() -> Response:
    """Anyone: ``/admin`` is ``/admin/``."""
    return RedirectResponse("/admin/", status_code=308)


@router.get("/admin/")
async def overview(request: Request, principal: PagePrincipal, state: State) -> Response:
    """Admins: counts by status, failures per day by system, top causes, systems not healthy.
    Practice users: redirected to ``/admin/invoices``."""
    if not principal.is_admin:
        return RedirectResponse("/admin/invoices", status_code=303)
    zone = state.settings.zone
    now = state.clock.now()
    async with state.engine.connect() as connection:
        counts = await data.status_counts(connection)
        verdicts = await data.acceptance_counts(connection)
        daily = await data.daily_failures(connection, now=now, zone=zone)
        causes = await data.top_causes(connection, catalogue=await load_catalogue(connection))
        unhealthy = await data.unhealthy_systems(connection)
    labels = [day_label(d) for d in daily.days]
    by_label = {(system, day_label(day)): count for (system, day), count in daily.counts.items()}
    colours = stable_colours([*await system_names(state), *daily.systems])
    colours[data.OTHER_SYSTEMS] = OTHER_COLOUR

    def link(system: str | None, index: int) -> str:
        day = daily.days[index].isoformat()
        query = [("show", "problems"), ("from", day), ("to", day)]
        if system is not None and system != data.OTHER_SYSTEMS:
            query.append(("system", system))
        return "/admin/invoices?" + urlencode(query)

    failures_chart = stacked_bars(
        labels,
        series_from(labels, by_label, daily.systems),
        title=f"Failed and aborted invoices per day by system, last {data.DAYS} days",
        unit="invoice",
        empty_message=f"No failures in the last {data.DAYS} days.",
        colours=colours,
        link=link,
    )
    causes_chart = horizontal_bars(
        [Bar(c.label, c.count, f"/admin/causes/{c.cause}") for c in causes],
        title="Largest groups of failures by cause",
        unit="invoice",
        empty_message="No failed or aborted invoices.",
    )
    return render(
        request,
        "overview.html",
        {
            "counts": counts,
            "verdicts": verdicts,
            "failures_chart": failures_chart,
            "causes": causes,
            "causes_chart": causes_chart,
            "unhealthy": unhealthy,
            "days": data.DAYS,
        },
    )
