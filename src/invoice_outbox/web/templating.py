"""Rendering pages: one Jinja2 environment (autoescaped), date filters, and `render`.

Every page is rendered with `render(request, name, context)`, which adds what the layout
(``base.html``) needs: ``principal`` (None on the sign-in page), ``csrf_token`` (the session's
token, for forms: ``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">``),
``nav`` (the key of the current navigation item), ``zone`` (the service's time zone, which is
the practices' time zone) and ``nav_items`` for the signed-in role.  It also sets the headers
every page gets: a strict Content-Security-Policy (our own scripts and styles only, no inline
script), no framing, no caching of signed-in content.

Filters: ``{{ moment | local_time(zone) }}`` (``5 Feb 2026, 18:06 SAST``),
``{{ moment | local_date(zone) }}`` (``5 Feb 2026``), ``{{ n | thousands }}`` (``12 345``),
``{{ n | plural("failure") }}`` (``1 failure``, ``2 failures``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from invoice_outbox.auth.principal import Principal
from invoice_outbox.web.sessions import signed_in_of

TEMPLATES_DIR: Final = Path(__file__).with_name("templates")
STATIC_DIR: Final = Path(__file__).with_name("static")

_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)

PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class NavItem:
    """One link of the navigation bar.  `key` is what pages pass as ``nav``."""

    key: str
    label: str
    href: str


ADMIN_NAV: Final = (
    NavItem("overview", "Overview", "/admin/"),
    NavItem("aborted", "Aborted", "/admin/aborted"),
    NavItem("failed", "Failed", "/admin/failed"),
    NavItem("causes", "Causes", "/admin/causes"),
    NavItem("jobs", "Jobs", "/admin/jobs"),
    NavItem("audit", "Audit", "/admin/audit"),
    NavItem("systems", "Systems", "/admin/systems"),
)
PRACTICE_NAV: Final = (NavItem("invoices", "My invoices", "/admin/invoices"),)


def nav_items(principal: Principal | None) -> tuple[NavItem, ...]:
    """The navigation a principal sees (none before sign-in)."""
    if principal is None:
        return ()
    return ADMIN_NAV if principal.is_admin else PRACTICE_NAV


def current_nav(path: str, items: tuple[NavItem, ...]) -> str | None:
    """The key of the item whose link is the longest prefix of `path` (``/admin/`` exactly)."""
    best: NavItem | None = None
    for item in items:
        matches = path == item.href if item.href == "/admin/" else path.startswith(item.href)
        if matches and (best is None or len(item.href) > len(best.href)):
            best = item
    return best.key if best else None


def _zone(zone: tzinfo | str | None) -> tzinfo:
    if zone is None:
        return ZoneInfo("UTC")
    return ZoneInfo(zone) if isinstance(zone, str) else zone


def local_time(moment: datetime | None, zone: tzinfo | str | None = None) -> str:
    """``5 Feb 2026, 18:06 SAST``: an aware datetime in `zone`; empty for None."""
    if moment is None:
        return ""
    local = moment.astimezone(_zone(zone))
    return (
        f"{local.day} {_MONTHS[local.month - 1]} {local.year}, "
        f"{local:%H:%M} {local.tzname() or ''}".rstrip()
    )


def local_date(moment: datetime | None, zone: tzinfo | str | None = None) -> str:
    """``5 Feb 2026``: the calendar day of an aware datetime in `zone`; empty for None."""
    if moment is None:
        return ""
    local = moment.astimezone(_zone(zone))
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


def day_label(day: date) -> str:
    """``5 Feb``: a calendar day, short (chart axes)."""
    return f"{day.day} {_MONTHS[day.month - 1]}"


def thousands(value: int) -> str:
    """``12 345``: a thin-spaced count (the SI style, unambiguous in every locale)."""
    return f"{value:,}".replace(",", "\u202f")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 failure``, ``2 failures``, ``12 345 invoices``: a count with its noun agreeing."""
    word = noun if count == 1 else (nouns or noun + "s")
    return f"{thousands(count)} {word}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local_time"] = local_time
    env.filters["local_date"] = local_date
    env.filters["thousands"] = thousands
    env.filters["plural"] = plural
    return env


templates: Final = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The page `name` rendered with `context` plus the layout's variables (see the module doc).

    The signed-in principal and CSRF token come from the request (set by `PagePrincipal` /
    `AdminPage`); pages never pass them.  `context` may set ``nav`` to pick the highlighted item.
    """
    signed_in = signed_in_of(request)
    principal = signed_in.principal if signed_in else None
    items = nav_items(principal)
    values: dict[str, Any] = {
        "request": request,
        "principal": principal,
        "csrf_token": signed_in.csrf_token if signed_in else "",
        "nav_items": items,
        "nav": current_nav(request.url.path, items),
        "zone": _service_zone(request),
    }
    values.update(context or {})
    return templates.TemplateResponse(
        request, name, values, status_code=status, headers={**PAGE_HEADERS, **(headers or {})}
    )


def _service_zone(request: Request) -> tzinfo:
    runtime = getattr(request.app.state, "runtime", None)
    return runtime.settings.zone if runtime is not None else ZoneInfo("UTC")
