"""``GET /metrics``: Prometheus text format (anyone who can reach the port; no patient data)."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from starlette.responses import Response

from invoice_outbox.api.deps import State
from invoice_outbox.sendings.holds import held_systems
from invoice_outbox.sendings.lanes import lane_stats
from invoice_outbox.sendings.models import Sending
from invoice_outbox.systems.models import System

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (anyone may call; counts only, no invoice data)",
    description=(
        "Deliveries by system and outcome, attempt durations, sendings by status, the age of "
        "the oldest due sending that could be delivered, held sendings by system and reason "
        "(`disabled`, `down`), deliveries in flight by system, each system's circuit, and the "
        "time this process's worker last finished a turn without an error."
    ),
    response_class=Response,
)
async def metrics(state: State) -> Response:
    snapshot = state.metrics.queue
    now = state.clock.now()
    async with state.engine.connect() as connection:
        counts = await connection.execute(
            select(Sending.status, func.count()).group_by(Sending.status)
        )
        snapshot.by_status = dict(counts.all())
        holds = await held_systems(connection)
        lanes = await lane_stats(connection, now)
        circuits = await connection.execute(select(System.name, System.circuit))
        snapshot.circuits = dict(circuits.all())
    # Held systems' queues are not "due": nothing can deliver them until the hold ends.
    deliverable = [s.oldest_due for name, s in lanes.items() if name not in holds and s.oldest_due]
    snapshot.oldest_due = min(deliverable, default=None)
    snapshot.held = {
        (name, holds[name].kind): stats.queued + stats.stale
        for name, stats in lanes.items()
        if name in holds and stats.queued + stats.stale
    }
    snapshot.in_flight = {name: stats.in_flight for name, stats in lanes.items()}
    snapshot.now = now
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
