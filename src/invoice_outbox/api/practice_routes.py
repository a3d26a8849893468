"""Naming practices (admins only), so pages and lists show names instead of GUIDs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from invoice_outbox.admin import audit
from invoice_outbox.api.bodies import answer, read_body, xml_children
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import body_doc
from invoice_outbox.api.security import Admin
from invoice_outbox.practices.service import MAX_NAME, known_practices, set_name

router = APIRouter(tags=["practices"])


class PracticeIn(BaseModel):
    """``PUT api/v1/billing/practices/{practiceId}``."""

    model_config = ConfigDict(extra="forbid")

    Name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


@router.put(
    "/api/v1/billing/practices/{practiceId}",
    summary="Name a practice",
    description=(
        '**Admins only.** JSON or XML body `{"Name": "Rosebank Family Practice"}` (1 to '
        f"{MAX_NAME} characters; unique regardless of case: 409 when another practice has it). "
        "The dashboard's lists, filters and pages then show the name. Answers the practice "
        "`{PracticeId, Name}`. Recorded in the audit log (`practice.name`)."
    ),
    response_class=Response,
    responses={
        200: {"description": "The practice, renamed."},
        201: {"description": "The practice, named for the first time."},
        409: {"description": "Another practice has this name (regardless of case)."},
    },
    openapi_extra=body_doc(PracticeIn, {"Name": "Rosebank Family Practice"}),
)
async def put_name(
    request: Request, state: State, session: Session, caller: Admin, practiceId: uuid.UUID
) -> Response:
    body, _ = await read_body(request, PracticeIn, xml_children)
    now = state.clock.now()
    practice, previous = await set_name(session, practiceId, body.Name, now=now)
    await audit.record(
        session,
        principal=caller,
        action="practice.name",
        reason=None,
        practice_id=practiceId,
        target=practice.name,
        details={"PreviousName": previous},
        now=now,
    )
    await session.commit()
    value = {"PracticeId": practice.id, "Name": practice.name}
    return answer(request, state, value, root="Practice", status_code=200 if previous else 201)


@router.get(
    "/api/v1/billing/practices",
    summary="The practices this service knows, with their names",
    description=(
        "**Admins only.** Named practices, practices a system serves, and practices with "
        "users: `{Practices: [{PracticeId, Name}]}` (`Name` null while unnamed)."
    ),
    response_class=Response,
)
async def index(request: Request, state: State, session: Session, _caller: Admin) -> Response:
    practices = [{"PracticeId": p.id, "Name": p.name} for p in await known_practices(session)]
    return answer(request, state, {"Practices": practices}, root="PracticeList")
