"""BASELINE: submitting an invoice written "the obvious way", to measure intake against.

FastAPI + the SQLAlchemy async ORM, one submission per request, as most teams would write it
(and as invoice-outbox itself did before issue #15): a pydantic body; the practice's systems,
the invoice's existing sendings and their documents loaded as ORM objects; a new `Document`
(sealed as the service seals it: `sealing.new_document`, the same keys, and "same document"
told by the keyed digest) and a `Sending` per system added to the session; flush and commit
with NOTIFY; the sendings answered in the RestApiResult envelope (the same JSON bytes as the
service).  It writes the
same rows (one document, one Pending sending per system, same columns).  Same database, same
engine settings, the same token check (PyJWT HS256) and logging, the same single-worker
uvicorn as the real service.

Run as ``python -m benchmarks.intake.obvious_app --host 127.0.0.1 --port N``.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import jwt
import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from invoice_outbox.auth.tokens import ALGORITHM, ISSUER
from invoice_outbox.db.engine import make_async_engine, make_session_factory
from invoice_outbox.legacy.json_format import json_envelope_rows
from invoice_outbox.schema import target_metadata  # noqa: F401  (every table registered)
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import Keyring, load_keyring
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.sealing import digest, new_document
from invoice_outbox.settings import Settings, load_settings
from invoice_outbox.systems.models import SystemPractice


class InvoiceIn(BaseModel):
    InvoiceId: uuid.UUID
    EncounterId: uuid.UUID
    Systems: list[str] | None = None
    Document: Any


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


def require_access(request: Request, practiceId: uuid.UUID) -> None:
    """401 without a valid bearer token; 403 unless an admin or a user of the practice."""
    _, _, token = request.headers.get("authorization", "").partition(" ")
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
    if claims.get("role") != "admin" and str(practiceId) not in claims.get("practices", []):
        raise HTTPException(403, "Authorization has been denied for this request.")


router = APIRouter()


def new_document_of(
    keyring: Keyring, practice_id: uuid.UUID, invoice_id: uuid.UUID, raw: bytes, now: datetime
) -> Document:
    return new_document(
        keyring,
        practice_id=practice_id,
        invoice_id=invoice_id,
        content_type="application/json",
        body=raw,
        now=now,
    )


@router.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@router.post(
    "/api/v1/{practiceId}/billing/invoices",
    status_code=202,
    dependencies=[Depends(require_access)],
)
async def submit(
    request: Request,
    practiceId: uuid.UUID,
    body: InvoiceIn,
    session: Annotated[AsyncSession, Depends(get_session)],
) -> Response:
    now = datetime.now(UTC)
    serving = set(
        (
            await session.scalars(
                select(SystemPractice.system).where(SystemPractice.practice_id == practiceId)
            )
        ).all()
    )
    systems = sorted(serving) if body.Systems is None else body.Systems
    if not systems or not set(systems) <= serving:
        raise HTTPException(400, "unknown or unconfigured systems")
    raw = orjson.dumps(body.Document)
    keyring: Keyring = request.app.state.keyring
    existing = {
        s.system: s
        for s in (
            await session.scalars(
                select(Sending).where(
                    Sending.invoice_id == body.InvoiceId, Sending.sending_type == "Invoice"
                )
            )
        ).all()
    }
    documents = {
        d.id: d
        for d in (
            await session.scalars(
                select(Document).where(Document.id.in_([s.document_id for s in existing.values()]))
            )
        ).all()
    }
    result = []
    new_document: Document | None = None
    for system in systems:
        sending = existing.get(system)
        current = documents.get(sending.document_id) if sending and sending.document_id else None
        same = current is not None and current.digest == digest(
            keyring.require(current.key_id), practiceId, body.InvoiceId, raw
        )
        if sending is not None and same:
            result.append(sending)
            continue
        if sending is not None:
            raise HTTPException(409, "corrections are not part of this baseline")
        if new_document is None:
            new_document = new_document_of(keyring, practiceId, body.InvoiceId, raw, now)
            session.add(new_document)
        sending = Sending(
            id=uuid.uuid4(),
            practice_id=practiceId,
            encounter_id=body.EncounterId,
            invoice_id=body.InvoiceId,
            system=system,
            sending_type="Invoice",
            status="Pending",
            attempts=0,
            round_attempts=0,
            sending_time=now,
            next_attempt_at=now,
            idempotency_key=uuid.uuid4().hex,
            document_id=new_document.id,
            created_at=now,
            updated_at=now,
        )
        session.add(sending)
        result.append(sending)
    await session.flush()
    await session.execute(text("SELECT pg_notify('invoice_outbox_due', '')"))
    await session.commit()
    rows = [
        (
            s.practice_id,
            s.encounter_id,
            s.invoice_id,
            s.reason,
            s.status,
            s.system,
            s.sending_time,
            s.attempts,
            s.sending_type,
        )
        for s in result
    ]
    payload = json_envelope_rows(
        sucess=True,
        response_code=202,
        response_message="Invoice accepted for delivery",
        rows=rows,
        links=[],
    )
    return Response(payload, 202, media_type="application/json; charset=utf-8")


def create_app(settings: Settings) -> FastAPI:
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
    app.state.sessions = make_session_factory(engine)
    app.state.keyring = load_keyring(settings)
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
