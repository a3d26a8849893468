"""Configuring external systems (admins only)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.api.bodies import answer, read_body, xml_children
from invoice_outbox.api.errors import ApiError
from invoice_outbox.api.security import Admin
from invoice_outbox.api.state import Session, State
from invoice_outbox.systems.schemas import SystemIn
from invoice_outbox.systems.service import (
    SystemConfigError,
    get_system,
    list_systems,
    put_system,
    system_view,
    validate_target,
)

router = APIRouter(tags=["systems"])
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")


def _xml_system(root: Any) -> dict[str, Any]:
    values = xml_children(root)
    if isinstance(values.get("Practices"), str):
        values["Practices"] = [values["Practices"]] if values["Practices"] else []
    return values


@router.put(
    "/api/v1/billing/systems/{name}",
    summary="Create or replace an external system",
    description=(
        "**Admins only.** `Channel` `Http` (`Url`, optional `AuthHeader`/`AuthValue`) or "
        "`Email` (`Host`, `Port`, `Sender`, `Recipient`, `StartTls`/`UseTls`, `Username`/"
        "`Password`); `Practices` it serves by default; `TimeoutSeconds`; `RetryPolicy` "
        '(`{"Schedule": ["0s","5s","5m",...], "MaxAttempts": 8, "Jitter": 0.1}`); `Enabled`. '
        "Secrets are write-only: omit them to keep the stored value. Targets on loopback, "
        "link-local or private addresses are refused unless "
        "`INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS=true`. Answers the system (201 when created)."
    ),
    response_class=Response,
)
async def put(
    request: Request, state: State, session: Session, _caller: Admin, name: str
) -> Response:
    if not _NAME.match(name):
        raise ApiError(400, "The request is invalid: name must be 1-100 letters, digits, "
                            "spaces, dots, dashes or underscores.")  # fmt: skip
    spec, _ = await read_body(request, SystemIn, _xml_system)
    try:
        await validate_target(spec, allow_private=state.settings.allow_private_targets)
        system, created = await put_system(session, name, spec, now=state.clock.now())
    except SystemConfigError as exc:
        raise ApiError(400, f"The request is invalid: {exc}.") from None
    await session.commit()
    return answer(request, state, system_view(system), root="System",
                  status_code=201 if created else 200)  # fmt: skip


@router.get(
    "/api/v1/billing/systems/{name}",
    summary="One external system: settings (without secrets) and health",
    description="**Admins only.** `Health.State` is `Healthy`, `Degraded` or `Down` (since …).",
    response_class=Response,
)
async def get(
    request: Request, state: State, session: Session, _caller: Admin, name: str
) -> Response:
    system = await get_system(session, name)
    if system is None:
        raise ApiError(404, f"No system is named {name!r}.")
    return answer(request, state, system_view(system), root="System")


@router.get(
    "/api/v1/billing/systems",
    summary="Every external system with its health",
    description="**Admins only.**",
    response_class=Response,
)
async def index(request: Request, state: State, session: Session, _caller: Admin) -> Response:
    systems = [system_view(s) for s in await list_systems(session)]
    return answer(request, state, {"Systems": systems}, root="SystemList")
