"""Acknowledgements from recipients: ``POST api/v1/billing/acknowledgements/{system}``.

Who may call: the recipient system itself, authenticated by a Standard Webhooks signature
over the body with the system's ``Acceptance.Secret`` (no bearer token).  An unknown system,
one that takes no acknowledgements, a missing or wrong signature and a stale timestamp all
get the same kind of answer (401), so the route tells nothing to whoever cannot sign.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from invoice_outbox.api.bodies import answer, read_body, xml_children
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import body_doc
from invoice_outbox.api.errors import ApiError
from invoice_outbox.sendings.acknowledgements import Ack, receive
from invoice_outbox.state import AppState
from invoice_outbox.systems.acceptance import AcceptanceMode
from invoice_outbox.systems.models import System
from invoice_outbox.systems.rejections import load_catalogue
from invoice_outbox.systems.service import acceptance_config, acknowledgement_keys
from invoice_outbox.systems.signing import SignatureRefused, secret_key, verify

router = APIRouter(tags=["acknowledgements"])
_CHALLENGE = {"WWW-Authenticate": 'Signature realm="invoice-outbox", scheme="standard-webhooks"'}


#: The fields that name the sending (one is needed).
_NAMING = ("IdempotencyKey", "Reference")


class AcknowledgementIn(BaseModel):
    """A recipient's verdict on one sending."""

    model_config = ConfigDict(
        extra="ignore",
        str_strip_whitespace=True,
        json_schema_extra={
            "anyOf": [{"required": ["IdempotencyKey"]}, {"required": ["Reference"]}]
        },
    )

    Accepted: bool
    IdempotencyKey: str | None = Field(default=None, max_length=200)
    Reference: str | None = Field(default=None, max_length=2000)
    Code: str | None = Field(default=None, max_length=2000)
    Message: str | None = Field(default=None, max_length=100_000)


def _keys(system: System | None, now: datetime) -> list[bytes]:
    if system is None:
        return []
    if acceptance_config(system).mode is AcceptanceMode.TRANSPORT:
        return []
    keys = []
    for secret in acknowledgement_keys(system, now):
        try:
            keys.append(secret_key(secret))
        except ValueError:
            continue
    return keys


def _authenticate(
    found: System | None, request: Request, body: bytes, state: AppState, now: datetime
) -> None:
    """The request is signed with the system's acknowledgement secret: the API's own 401
    otherwise (as a bearer token is checked in `api.security`), saying nothing more."""
    headers = request.headers
    try:
        verify(
            _keys(found, now),
            message_id=headers.get("webhook-id"),
            timestamp=headers.get("webhook-timestamp"),
            signatures=headers.get("webhook-signature"),
            body=body,
            now=now,
            tolerance_seconds=state.settings.webhook_tolerance_seconds,
        )
    except SignatureRefused as exc:
        raise ApiError(401, exc.message, headers=_CHALLENGE) from None


@router.post(
    "/api/v1/billing/acknowledgements/{system}",
    summary="A recipient's acknowledgement: its verdict on a delivered invoice",
    description=(
        "**The recipient system itself**, authenticated by a Standard Webhooks signature "
        "(`webhook-id`, `webhook-timestamp`, `webhook-signature`: `v1,` + base64 of "
        "HMAC-SHA256 over `{id}.{timestamp}.{body}` with the key of the system's "
        "`Acceptance.Secret`); no bearer token. The timestamp must be within "
        "`INVOICE_OUTBOX_WEBHOOK_TOLERANCE_SECONDS` (300) of our clock, and a webhook-id is "
        "accepted once per system (a replay is 409, nothing applied again). Body (JSON or "
        "XML): `Accepted` (bool), `IdempotencyKey` (the key the delivery carried) or the "
        "`Reference` the recipient gave earlier, `Code`, `Message`, `Reference`. Answers 200 "
        '`{"Applied": true|false, "Acceptance": "Accepted"|"Rejected", "Repeat": bool}`; a '
        "repeat of the recorded verdict is 200 and changes nothing. A verdict contradicting "
        "the recorded one, or one for a sending not delivered, is recorded for an "
        "administrator and not applied: 409. An acknowledgement no sending of the system "
        "matches: 404, naming nothing. Unsigned, badly signed, stale, or for a system that "
        "takes no acknowledgements: 401."
    ),
    response_class=Response,
    responses={
        401: {"description": "Not signed, badly signed or stale, or the system takes none."},
        409: {
            "description": "A replay (this webhook-id was received before), or recorded for "
            "an administrator and not applied (a contradiction, a sending not delivered)."
        },
    },
    openapi_extra=body_doc(AcknowledgementIn),
)
async def acknowledge(request: Request, state: State, session: Session, system: str) -> Response:
    now = state.clock.now()
    body = await request.body()
    found = await session.get(System, system) if len(system) <= 100 else None
    _authenticate(found, request, body, state, now)
    assert found is not None  # a signature verified: the system exists
    spec, _ = await read_body(request, AcknowledgementIn, xml_children)
    ack = Ack(
        accepted=spec.Accepted,
        idempotency_key=spec.IdempotencyKey,
        reference=spec.Reference,
        code=spec.Code,
        message=spec.Message,
    )
    catalogue = await load_catalogue(session)
    result = await receive(
        session,
        system=found.name,
        config=acceptance_config(found),
        ack=ack,
        webhook_id=request.headers["webhook-id"],
        catalogue=catalogue,
        now=now,
    )
    await session.commit()
    if result.refused is not None:  # recorded for an administrator (committed), not applied
        raise result.refused
    value = {
        "Applied": result.applied,
        "Acceptance": result.acceptance,
        "Repeat": result.outcome == "repeat",
    }
    return answer(request, state, value, root="AcknowledgementResult")
