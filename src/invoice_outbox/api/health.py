"""Liveness and readiness probes.  Anyone may call them; they reveal no data."""

from __future__ import annotations

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
    summary="Ready: the database answers and its schema is current (anyone may call)",
    responses={503: {"description": "database unreachable or migrations pending"}},
)
async def ready(state: State) -> JSONResponse:
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
