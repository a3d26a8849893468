"""A pretend external system for the demo: ``POST /sandbox/{name}``.

Enabled only with ``INVOICE_OUTBOX_SANDBOX=true`` (``make run`` sets it).  Anyone may call it;
it keeps nothing.  It answers by a stable hash of the Idempotency-Key, so each sending meets
one behaviour every time it is tried:

====  ======================================================================
70 %  200 accepted
10 %  503 on the first attempt, then accepted (a blip: Failed, then Sent)
 5 %  503 with Retry-After: 30 every time (stays Failed, retried)
 5 %  no answer on the first attempt (the system's timeout expires), then accepted
10 %  422 invalid medical-aid member number (Aborted at once: needs a person)
====  ======================================================================
"""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

router = APIRouter(tags=["demo sandbox"], include_in_schema=True)
HANG_SECONDS = 8.0  # longer than the demo systems' 5 s timeout, short enough to stop quickly


def behaviour(idempotency_key: str) -> str:
    """Which of the table's behaviours a sending meets (stable across its attempts)."""
    bucket = hashlib.sha256(idempotency_key.encode()).digest()[0] % 20
    if bucket < 14:
        return "accept"
    if bucket < 16:
        return "blip"
    if bucket < 17:
        return "down"
    if bucket < 18:
        return "slow"
    return "reject"


@router.post(
    "/sandbox/{name}",
    summary="Demo receiver (anyone may call; only with INVOICE_OUTBOX_SANDBOX=true)",
    response_class=Response,
)
async def receive(request: Request, name: str) -> Response:
    await request.body()
    key = request.headers.get("idempotency-key", "")
    first = request.headers.get("x-attempt", "1") == "1"
    kind = behaviour(key)
    if kind == "blip" and first:
        return JSONResponse({"Error": "busy"}, 503)
    if kind == "down":
        return JSONResponse({"Error": "maintenance"}, 503, headers={"Retry-After": "30"})
    if kind == "slow" and first:
        await asyncio.sleep(HANG_SECONDS)
    if kind == "reject":
        return JSONResponse({"Error": "invalid member number"}, 422)
    return JSONResponse({"Received": True, "System": name}, 200)
