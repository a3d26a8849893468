"""BASELINE: the aborted list written "the obvious way", to measure the service against.

FastAPI + SQLAlchemy async ORM: ``session.scalars(select(Sending).where(...))`` loads every
row as an ORM object into a list; JSON is a list of pydantic models (FastAPI's
``response_model``), XML is built with the standard library's ``xml.etree.ElementTree`` in the
DataContract shape.  Same database, same engine settings, the same kind of token check
(PyJWT, HS256, issuer and required claims), the same access logging and the same
single-worker uvicorn as the real service; only the route differs.

Run by benchmarks.run as ``python -m benchmarks.baseline_app --host 127.0.0.1 --port N``.
"""

from __future__ import annotations

import argparse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, tzinfo
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, field_serializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from invoice_outbox.auth.tokens import ALGORITHM, ISSUER
from invoice_outbox.db.engine import make_async_engine, make_session_factory
from invoice_outbox.sendings.models import Sending
from invoice_outbox.settings import Settings, load_settings

NS = "http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.ValueObjects"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


class InvoiceSendingStatusVo(BaseModel):
    """The legacy value object, JSON properties in SPEC order."""

    PracticeId: uuid.UUID
    EncounterId: uuid.UUID
    InvoiceId: uuid.UUID
    Reason: str | None
    Status: str
    System: str
    SendingTime: datetime
    SendingAttempts: int
    SendingType: str

    @field_serializer("SendingTime")
    def _utc_seconds(self, value: datetime) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")

    @classmethod
    def from_sending(cls, s: Sending) -> InvoiceSendingStatusVo:
        return cls(
            PracticeId=s.practice_id,
            EncounterId=s.encounter_id,
            InvoiceId=s.invoice_id,
            Reason=s.reason,
            Status=s.status,
            System=s.system,
            SendingTime=s.sending_time,
            SendingAttempts=s.attempts,
            SendingType=s.sending_type,
        )


def dotnet_local(moment: datetime, zone: tzinfo) -> str:
    """.NET round-trip local time: fraction without trailing zeros, then the zone's offset."""
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{local.microsecond:06d}".rstrip("0")
    if fraction:
        text += "." + fraction
    offset = local.strftime("%z")
    return f"{text}{offset[:3]}:{offset[3:]}"


def to_xml(sendings: list[Sending], zone: tzinfo) -> bytes:
    """DataContractSerializer's shape for a list of InvoiceSendingStatusVo, via ElementTree."""
    root = ET.Element("ArrayOfInvoiceSendingStatusVo", {"xmlns:i": XSI, "xmlns": NS})
    for s in sendings:
        item = ET.SubElement(root, "InvoiceSendingStatusVo")
        ET.SubElement(item, "EncounterId").text = str(s.encounter_id)
        ET.SubElement(item, "InvoiceId").text = str(s.invoice_id)
        ET.SubElement(item, "PracticeId").text = str(s.practice_id)
        reason = ET.SubElement(item, "Reason")
        if s.reason is None:
            reason.set("i:nil", "true")
        else:
            reason.text = s.reason
        ET.SubElement(item, "SendingAttempts").text = str(s.attempts)
        ET.SubElement(item, "SendingTime").text = dotnet_local(s.sending_time, zone)
        ET.SubElement(item, "SendingType").text = s.sending_type
        ET.SubElement(item, "Status").text = s.status
        ET.SubElement(item, "System").text = s.system
    return ET.tostring(root, encoding="unicode").encode()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request, from the app's session factory."""
    async with request.app.state.sessions() as session:
        yield session


def require_admin(request: Request) -> None:
    """401 without a valid bearer token, 403 for a non-admin (PyJWT, HS256, as the service)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        claims = jwt.decode(
            token.strip(),
            request.app.state.key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
            leeway=30,
        )
    except jwt.PyJWTError:
        raise HTTPException(401, "Authorization has been denied for this request.") from None
    if scheme.lower() != "bearer" or claims.get("role") != "admin":
        raise HTTPException(403, "Forbidden")


router = APIRouter()


@router.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@router.get(
    "/api/v1/billing/invoices/aborted",
    response_model=list[InvoiceSendingStatusVo],
    dependencies=[Depends(require_admin)],
)
async def aborted(request: Request, session: Annotated[AsyncSession, Depends(get_session)]) -> Any:
    """Every Aborted sending, oldest SendingTime first: ORM objects, then pydantic or XML."""
    result = await session.scalars(
        select(Sending)
        .where(Sending.status == "Aborted")
        .order_by(Sending.sending_time, Sending.id)
    )
    sendings = list(result)
    if "xml" in request.headers.get("accept", ""):
        return Response(to_xml(sendings, request.app.state.zone), media_type="application/xml")
    return [InvoiceSendingStatusVo.from_sending(s) for s in sendings]


def create_app(settings: Settings) -> FastAPI:
    """The baseline app, bound to `settings` (database, token key, time zone)."""
    secret = settings.jwt_secret
    if secret is None:
        raise SystemExit("the baseline needs INVOICE_OUTBOX_JWT_SECRET")
    engine = make_async_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.state.key = secret.get_secret_value().encode()
    app.state.zone = settings.zone
    app.state.sessions = make_session_factory(engine)
    app.include_router(router)
    return app


def main() -> None:
    import uvicorn

    from invoice_outbox.logs import configure_logging

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app(load_settings())
    configure_logging()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
