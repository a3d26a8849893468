"""The rejection catalogue: what recipients' codes mean, and administrators' overrides.

Who may call: admins only.  The catalogue's words are shown to practices, so an override is
reviewed text an administrator writes (never the recipient's words); each change is audited.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from invoice_outbox.admin import audit
from invoice_outbox.api.bodies import answer, read_body, xml_children
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import body_doc
from invoice_outbox.api.security import Admin
from invoice_outbox.api.systems import SystemName
from invoice_outbox.errors import InvalidParameter, NotFound
from invoice_outbox.systems.rejections import (
    Entry,
    delete_override,
    file_catalogue,
    load_catalogue,
    override_entry,
    put_override,
)
from invoice_outbox.systems.service import SystemNotFound, acceptance_config, get_system
from invoice_outbox.text_patterns import NOT_BLANK

router = APIRouter(tags=["rejection catalogue"])
_CODE_PROBLEM = "must be 1-64 characters without control characters or slashes"
#: A code in the path, as the schema says it (the route checks it with `_check_code`).
Code = Annotated[str, Path(json_schema_extra={"pattern": r"^[^\u0000-\u001f/\\]{1,64}$"})]


class OverrideIn(BaseModel):
    """What a code means for one system, in words a practice can act on."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    Label: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)
    Meaning: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)
    Fix: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)
    WhoMustAct: Literal["practice", "administrator", "software vendor"]
    ResendHelps: bool


def _check_code(code: str) -> str:
    if not 1 <= len(code) <= 64 or any(ord(c) < 32 or c in "/\\" for c in code):
        raise InvalidParameter("code", _CODE_PROBLEM)
    return code


class OverrideNotFound(NotFound):
    def __init__(self, system: str, code: str) -> None:
        super().__init__(f"{system} has no override for code {code}.")


@router.get(
    "/api/v1/billing/rejections",
    summary="The rejection catalogue shipped with this version",
    description=(
        "**Admins only.** `Version` of the reviewed data file and its `Entries`: `Code`, "
        "`Label`, `Meaning`, `Fix`, `WhoMustAct` (practice, administrator, software vendor), "
        "`ResendHelps`, and `Kind` or `System` (what the entry is keyed by)."
    ),
    response_class=Response,
)
async def catalogue(request: Request, state: State, _caller: Admin) -> Response:
    shipped = file_catalogue()
    value = {"Version": shipped.version, "Entries": [e.view() for e in shipped.entries]}
    return answer(request, state, value, root="RejectionCatalogue")


@router.get(
    "/api/v1/billing/systems/{name}/rejections",
    summary="What a system's rejection codes mean (overrides first)",
    description=(
        "**Admins only.** The entries that apply to the system: its overrides (`Source` "
        "`override`), the file's entries for the system, then for its kind "
        "(`Acceptance.Kind`)."
    ),
    response_class=Response,
)
async def system_rejections(
    request: Request, state: State, session: Session, _caller: Admin, name: SystemName
) -> Response:
    system = await get_system(session, name)
    if system is None:
        raise SystemNotFound(name)
    entries = (await load_catalogue(session)).for_system(name, acceptance_config(system).kind)
    value = {"System": name, "Entries": [e.view() for e in entries]}
    return answer(request, state, value, root="SystemRejections")


@router.put(
    "/api/v1/billing/systems/{name}/rejections/{code}",
    summary="Add or override what a rejection code means for one system",
    description=(
        "**Admins only.** Body: `Label`, `Meaning`, `Fix`, `WhoMustAct` (`practice`, "
        "`administrator`, `software vendor`), `ResendHelps`. Wins over the catalogue file for "
        "this system; rejections already recorded under the system's own key (`code-s-...`, "
        "as unknown codes are) read the new words at once. Answers the entry (201 when "
        "created). Audited (`rejection.put`); the optional `reason` says why."
    ),
    response_class=Response,
    responses={201: {"description": "The override, created."}},
    openapi_extra=body_doc(OverrideIn),
)
async def put(
    request: Request,
    state: State,
    session: Session,
    caller: Admin,
    name: SystemName,
    code: Code,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    _check_code(code)
    if await get_system(session, name) is None:
        raise SystemNotFound(name)
    spec, _ = await read_body(request, OverrideIn, xml_children)
    now = state.clock.now()
    entry = Entry(
        code=code,
        label=spec.Label,
        meaning=spec.Meaning,
        fix=spec.Fix,
        who=spec.WhoMustAct,
        resend_helps=spec.ResendHelps,
        source="override",
        system=name,
    )
    row, created = await put_override(session, name, entry, actor=caller.subject, now=now)
    await audit.record(
        session,
        principal=caller,
        action="rejection.put",
        reason=reason or None,
        target=f"{name}/{code}",
        details={"Created": created, "WhoMustAct": spec.WhoMustAct},
        now=now,
    )
    await session.commit()
    status = 201 if created else 200
    return answer(request, state, override_entry(row).view(), root="Rejection", status_code=status)


@router.delete(
    "/api/v1/billing/systems/{name}/rejections/{code}",
    summary="Remove a system's override of a rejection code",
    description="**Admins only.** 404 when there is none. Audited (`rejection.delete`).",
    status_code=204,
    response_class=Response,
)
async def delete(
    state: State,
    session: Session,
    caller: Admin,
    name: SystemName,
    code: Code,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    _check_code(code)
    if not await delete_override(session, name, code):
        raise OverrideNotFound(name, code)
    await audit.record(
        session,
        principal=caller,
        action="rejection.delete",
        reason=reason or None,
        target=f"{name}/{code}",
        details={},
        now=state.clock.now(),
    )
    await session.commit()
    return Response(status_code=204)
