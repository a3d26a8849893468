"""``GET /metrics``: Prometheus text format (anyone who can reach the port; no patient data)."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from starlette.responses import Response

from invoice_outbox.api.deps import State
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import CLAIMABLE
from invoice_outbox.systems.models import System

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (anyone may call; counts only, no invoice data)",
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
        snapshot.oldest_due = await connection.scalar(
            select(func.min(Sending.next_attempt_at)).where(
                Sending.status.in_([s.value for s in CLAIMABLE]), Sending.next_attempt_at <= now
            )
        )
        circuits = await connection.execute(select(System.name, System.circuit))
        snapshot.circuits = dict(circuits.all())
    snapshot.now = now
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
