"""A pretend medical-aid switch for the demo: ``POST /sandbox/{name}``.

Enabled only with ``INVOICE_OUTBOX_SANDBOX=true`` (``make run`` sets it).  Anyone may call it;
it keeps nothing.  It answers by a stable hash of the Idempotency-Key, so each sending meets
one behaviour every time it is tried, and like a switch it judges the claim, not only takes
it (the body: ``{"result": {"code", "message"}, "claimRef"}``; the demo's MediSwitch reads it
in Acceptance mode Response):

====  ===========================================================================
50 %  200, code 00: accepted at once
10 %  503 on the first attempt, then accepted (a blip: Failed, then Sent)
 5 %  503 with Retry-After: 30 every time (stays Failed, retried)
 5 %  no answer on the first attempt (the system's timeout expires), then accepted
10 %  rejected at once with a code: 04, 21 or 30 (200), or 77, a code the catalogue does
      not know (422)
15 %  202, code P1 (pending), then an acknowledgement a few seconds later, signed with the
      system's Acceptance.Secret: accepted, or rejected with code 05
 5 %  202, code P1, and never acknowledged: the sending goes Overdue at its deadline
====  ===========================================================================

The demo picks its live invoices' idempotency keys so that every behaviour is met (see
`invoice_outbox.demo.behaviour`).  The acknowledgements are sent by a background task of the
serving process to its own ``POST api/v1/billing/acknowledgements/{system}``, as a real
switch would call us.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import aiohttp
import orjson
from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from invoice_outbox.api.deps import State
from invoice_outbox.demo import behaviour
from invoice_outbox.state import AppState
from invoice_outbox.systems.models import System
from invoice_outbox.systems.signing import secret_key, signature_header

router = APIRouter(tags=["demo sandbox"], include_in_schema=True)
log = logging.getLogger(__name__)
HANG_SECONDS = 8.0  # longer than the demo systems' 5 s timeout, short enough to stop quickly
#: How long the pretend switch takes to acknowledge a pending claim (seconds, by the key).
ACK_DELAYS = (3.0, 6.0, 10.0, 15.0)
_REJECTIONS = (
    ("04", "Member number not found"),
    ("21", "Tariff code invalid for date"),
    ("30", "ICD-10 code missing on line 1"),
)
#: Acknowledgements waiting to be sent (kept referenced until they are done).
_TASKS: set[asyncio.Task[None]] = set()


def _digest(idempotency_key: str) -> bytes:
    return hashlib.sha256(idempotency_key.encode()).digest()


def _verdict(code: str, message: str, key: str, status: int = 200) -> JSONResponse:
    body = {"result": {"code": code, "message": message}, "claimRef": f"SW-{key[:8].upper()}"}
    return JSONResponse(body, status)


async def _acknowledger(state: AppState, request: Request) -> System | None:
    """The configured system whose Url is this sandbox path and that takes acknowledgements."""
    async with state.sessions() as session:
        systems = (await session.scalars(select(System))).all()
    path = request.url.path.rstrip("/").lower()
    for system in systems:
        url = str((system.settings or {}).get("Url") or "").rstrip("/").lower()
        mode = (system.acceptance_settings or {}).get("Mode", "Transport")
        if url.endswith(path) and system.acceptance_secret and mode != "Transport":
            return system
    return None


async def _acknowledge_later(
    state: AppState, base_url: str, system: str, secret: str, key: str, delay: float
) -> None:
    """Sleep `delay` (real time: this is the demo), then POST a signed acknowledgement."""
    await asyncio.sleep(delay)
    accepted = _digest(key)[1] % 3 != 0
    body = orjson.dumps(
        {
            "IdempotencyKey": key,
            "Accepted": accepted,
            "Code": "00" if accepted else "05",
            "Message": "Claim approved" if accepted else "Dependant code not on membership",
            "Reference": f"SW-{key[:8].upper()}",
        }
    )
    timestamp = int(state.clock.now().timestamp())
    message_id = f"msg_{_digest(key).hex()[:24]}"
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header([secret_key(secret)], message_id, timestamp, body),
    }
    url = f"{base_url.rstrip('/')}/api/v1/billing/acknowledgements/{system}"
    try:
        async with (
            aiohttp.ClientSession(trust_env=False) as client,
            client.post(url, data=body, headers=headers) as response,
        ):
            await response.read()
            log.info(
                "sandbox acknowledged",
                extra={"action": "sandbox.ack", "system": system, "status": response.status},
            )
    except (aiohttp.ClientError, TimeoutError):
        log.warning("sandbox could not acknowledge", extra={"action": "sandbox.ack_error"})


def _schedule(state: AppState, request: Request, system: System, key: str) -> None:
    secret = system.acceptance_secret
    if secret is None:
        return
    delay = ACK_DELAYS[_digest(key)[2] % len(ACK_DELAYS)]
    task = asyncio.create_task(
        _acknowledge_later(state, str(request.base_url), system.name, secret, key, delay)
    )
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


@router.post(
    "/sandbox/{name}",
    summary="Demo switch (anyone may call; only with INVOICE_OUTBOX_SANDBOX=true)",
    response_class=Response,
)
async def receive(request: Request, state: State, name: str) -> Response:
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
        choice = _digest(key)[1] % 4
        if choice == 3:
            return _verdict("77", "Scheme suspended", key, status=422)
        code, message = _REJECTIONS[choice]
        return _verdict(code, message, key)
    if kind in ("later", "never"):
        if kind == "later" and first:
            system = await _acknowledger(state, request)
            if system is not None:
                _schedule(state, request, system, key)
        return _verdict("P1", "Claim received, adjudication pending", key, status=202)
    reply: dict[str, Any] = {"Received": True, "System": name}
    body = _verdict("00", "Claim accepted", key)
    reply.update(orjson.loads(body.body))
    return JSONResponse(reply, 200)
