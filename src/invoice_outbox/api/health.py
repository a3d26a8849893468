"""Liveness and readiness probes.  Anyone may call them; they reveal no data."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import JSONResponse

from invoice_outbox.api.deps import State
from invoice_outbox.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/health", summary="Alive: the process answers (anyone may call)")
async def alive() -> JSONResponse:
    return JSONResponse({"Status": "Alive"})


@router.get(
    "/health/ready",
    summary="Ready: the database answers, its schema is current, and the worker works",
    description=(
        "Anyone may call it. 503 when the database is unreachable, migrations are pending, or "
        "the delivery worker running in this process (`serve` without `--no-worker`) has been "
        "failing for 10 s or more, or has not finished a turn for much longer than its poll "
        "interval (`Worker` says why)."
    ),
    responses={503: {"description": "database unreachable, migrations pending, worker failing"}},
)
async def ready(state: State) -> JSONResponse:
    health = state.worker_health
    if health is not None:
        stuck_after = timedelta(seconds=3 * state.settings.poll_seconds + 30)
        problem = health.problem(state.clock.now(), stuck_after=stuck_after)
        if problem is not None:
            return JSONResponse({"Status": "Unavailable", "Worker": problem}, 503)
    expected = head_revision()
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            current = await connection.run_sync(current_revision)
    except Exception:  # any failure to reach the database means "not ready"
        return JSONResponse({"Status": "Unavailable", "Database": "unreachable"}, 503)
    if current != expected:
        body = {
            "Status": "Unavailable",
            "Database": "migrations pending",
            "Revision": current,
            "Expected": expected,
        }
        return JSONResponse(body, 503)
    return JSONResponse({"Status": "Ready", "Revision": current})
