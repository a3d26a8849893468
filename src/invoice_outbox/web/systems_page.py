"""The external systems and their health: ``GET /admin/systems``.

Who may call it: admins (practice users get a 403 page; nobody signed in goes to sign-in).

Each configured system with its channel, where it delivers (the host only: a URL may carry
credentials, and secrets are never read here), whether it is enabled, how many practices it
serves, its health as deliveries see it (Healthy; Degraded after n failures in a row; Down
since ..., with the last failure's reason; last success and last failure), its lane (in flight
against its limit, rate limit, due now, held and why, oldest due, throttled until) and its
queued, failed and aborted counts.

Read with aggregate queries: the systems table (a few rows, its practice links counted, not
loaded), and GROUP BYs over the sendings that are queued, in flight or failed.  Enabling and
disabling is not offered: the API has no such command (``PUT`` replaces a whole
configuration), and the dashboard adds no capability the API lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from invoice_outbox.api.deps import State
from invoice_outbox.sendings.lanes import LaneStats, lane_stats, lane_view
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.models import System, SystemPractice
from invoice_outbox.web.sessions import AdminPage
from invoice_outbox.web.templating import render

router = APIRouter(include_in_schema=False)

_COUNTED: Final = (Status.PENDING.value, Status.FAILED.value, Status.ABORTED.value)


@dataclass(frozen=True, slots=True)
class SystemRow:
    """One system as the page shows it (no settings beyond the host, no secret)."""

    name: str
    channel: str
    destination: str
    enabled: bool
    practices: int
    circuit: str
    consecutive_failures: int
    down_since: datetime | None
    last_failure_reason: str | None
    queued: int
    failed: int
    aborted: int
    #: The lane: `invoice_outbox.sendings.lanes.lane_view` (in flight, limit, rate, due, held).
    lane: dict[str, Any]
    last_success_at: datetime | None
    last_failure_at: datetime | None


def destination(channel: str, settings: dict[str, Any]) -> str:
    """Where a system delivers, without credentials: the URL's host (and a non-default port)
    or the mail server's host.  "" when it cannot be read."""
    if channel == "Http":
        try:
            parts = urlsplit(str(settings.get("Url") or ""))
            host = parts.hostname or ""
            port = parts.port
        except ValueError:
            return ""
        return f"{host}:{port}" if host and port else host
    host = str(settings.get("Host") or "")
    return f"mail server {host}" if host else ""


async def system_rows(session: AsyncSession, now: datetime) -> list[SystemRow]:
    """Every configured system, by name, with its practice count, sending counts and lane."""
    practices = dict(
        (
            await session.execute(
                select(SystemPractice.system, func.count()).group_by(SystemPractice.system)
            )
        ).all()
    )
    counts: dict[tuple[str, str], int] = {}
    for name, status, number in await session.execute(
        select(Sending.system, Sending.status, func.count())
        .where(Sending.status.in_(_COUNTED))
        .group_by(Sending.system, Sending.status)
    ):
        counts[(name, status)] = int(number)
    lanes = await lane_stats(session, now)
    found: list[SystemRow] = []
    for system in (await session.scalars(select(System).order_by(System.name))).all():
        name = system.name
        failed = counts.get((name, Status.FAILED.value), 0)
        found.append(
            SystemRow(
                name=name,
                channel=system.channel,
                destination=destination(system.channel, system.settings or {}),
                enabled=bool(system.enabled),
                practices=int(practices.get(name, 0)),
                circuit=system.circuit,
                consecutive_failures=int(system.consecutive_failures or 0),
                down_since=system.down_since,
                last_failure_reason=system.last_failure_reason,
                queued=counts.get((name, Status.PENDING.value), 0) + failed,
                failed=failed,
                aborted=counts.get((name, Status.ABORTED.value), 0),
                lane=lane_view(system, lanes.get(name, LaneStats()), now=now),
                last_success_at=system.last_success_at,
                last_failure_at=system.last_failure_at,
            )
        )
    return found


@router.get("/admin/systems")
async def systems_page(request: Request, principal: AdminPage, state: State) -> Response:
    """Admins: every external system with its health and queue."""
    async with state.sessions() as session:
        rows = await system_rows(session, state.clock.now())
    return render(request, "systems.html", {"systems": rows})
