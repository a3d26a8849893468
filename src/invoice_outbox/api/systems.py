"""Configuring external systems (admins only).

A configuration the domain refuses propagates as its `Invalid` (`SystemConfigError`: 400), a
target whose name does not resolve or resolves to an internal address as its `Conflict`
(`TargetUnreachable`: 409); an unknown system is a `SystemNotFound` (404).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from invoice_outbox.admin import audit
from invoice_outbox.api.bodies import answer, read_body, xml_flat
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import body_doc
from invoice_outbox.api.security import Admin
from invoice_outbox.db.waker import commit_and_wake
from invoice_outbox.errors import InvalidParameter
from invoice_outbox.sendings.lanes import lane_stats, system_with_lane
from invoice_outbox.systems.models import System
from invoice_outbox.systems.schemas import SystemIn
from invoice_outbox.systems.service import (
    SystemNotFound,
    get_system,
    list_systems,
    put_system,
    secrets_of,
    validate_target,
)

router = APIRouter(tags=["systems"])
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
#: A system's name in the path, as the schema says it (the route checks it with `_NAME`).
SystemName = Annotated[str, Path(json_schema_extra={"pattern": _NAME.pattern})]


def _configuration(system: System | None) -> dict[str, Any]:
    """What an admin configures, without secrets (for the audit's list of changed fields)."""
    if system is None:
        return {}
    return {
        "Channel": system.channel,
        **(system.settings or {}),
        "TimeoutSeconds": system.timeout_seconds,
        "RetryPolicy": system.retry_policy,
        "Enabled": system.enabled,
        "MaxInFlight": system.max_in_flight,
        "RatePerSecond": system.rate_per_second,
        "Practices": sorted(str(link.practice_id) for link in system.practices),
        "Acceptance": system.acceptance_settings or {},
    }


def _changes(
    before: dict[str, Any], after: dict[str, Any], secret_changed: bool, created: bool
) -> dict[str, Any]:
    """Names of the fields that changed (never their values: a URL may carry credentials)."""
    changed = sorted(
        key for key in before.keys() | after.keys() if before.get(key) != after.get(key)
    )
    if secret_changed:
        changed.append("Secret")
    old, new = set(before.get("Practices", ())), set(after.get("Practices", ()))
    return {
        "Created": created,
        "Changed": changed,
        "PracticesAdded": sorted(new - old),
        "PracticesRemoved": sorted(old - new),
    }


def _as_list(values: dict[str, Any], key: str) -> None:
    if isinstance(values.get(key), str):
        values[key] = [values[key]] if values[key] else []


def _xml_system(root: Any) -> dict[str, Any]:
    values = xml_flat(root, nested=frozenset({"Acceptance"}))
    _as_list(values, "Practices")
    acceptance = values.get("Acceptance")
    if isinstance(acceptance, dict):
        for key in ("Accepted", "Rejected", "Pending"):
            _as_list(acceptance, key)
    return values


@router.put(
    "/api/v1/billing/systems/{name}",
    summary="Create or replace an external system",
    description=(
        "**Admins only.** `Channel` `Http` (`Url`, optional `AuthHeader`/`AuthValue`) or "
        "`Email` (`Host`, `Port`, `Sender`, `Recipient`, `StartTls`/`UseTls`, `Username`/"
        "`Password`); `Practices` it serves by default; `TimeoutSeconds`; `RetryPolicy` "
        '(`{"Schedule": ["0s","5s","5m",...], "MaxAttempts": 8, "Jitter": 0.1}`); `Enabled` '
        "(false: its invoices wait, shown as held, and deliveries in flight are given back to "
        "the queue); `MaxInFlight` (default 8: deliveries waiting on it at once, over every "
        "worker) and `RatePerSecond` (default none: deliveries started per second, over every "
        "worker): the system's lane, which other systems' lanes do not wait behind. "
        "Acceptance beyond transport: `Acceptance` `{Mode: Transport|Response|Acknowledgement, "
        "Secret (whsec_..., verifies acknowledgements), Within (seconds before Overdue), Kind "
        "(the rejection catalogue's family of codes), CodePointer/MessagePointer/"
        "ReferencePointer (JSON pointers) or CodePath/MessagePath/ReferencePath (XPath), "
        "Accepted/Rejected/Pending (code lists)}`. `SigningSecret` (whsec_...): every HTTP "
        "delivery carries Standard Webhooks headers; a new one rotates, the previous staying "
        "valid for `SecretOverlapSeconds` (default 86400). `ClientCertificate`/`ClientKey` "
        "(PEM): mTLS; `CaCertificate` (PEM) trusts a private CA. "
        "Secrets are write-only: omit them to keep the stored value. Targets on loopback, "
        "link-local or private addresses are refused unless "
        "`INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS=true`. Answers the system (201 when created). "
        "Recorded in the audit log (`system.put`, with the names of the fields that changed, "
        "never their values); the optional query parameter `reason` says why."
    ),
    response_class=Response,
    responses={
        201: {"description": "The system, created."},
        409: {
            "description": "The Url's or Host's name does not resolve, or resolves "
            "to an internal address (unless INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS=true)."
        },
    },
    openapi_extra=body_doc(SystemIn),
)
async def put(
    request: Request,
    state: State,
    session: Session,
    caller: Admin,
    name: SystemName,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    if not _NAME.match(name):
        raise InvalidParameter(
            "name", "must be 1-100 letters, digits, spaces, dots, dashes or underscores"
        )
    spec, _ = await read_body(request, SystemIn, _xml_system)
    now = state.clock.now()
    await validate_target(spec, allow_private=state.settings.allow_private_targets)
    existing = await get_system(session, name)
    before, old_secrets = _configuration(existing), secrets_of(existing)
    system, created = await put_system(session, name, spec, now=now)
    changed_secret = secrets_of(system) != old_secrets
    details = _changes(before, _configuration(system), changed_secret, created)
    await audit.record(
        session,
        principal=caller,
        action="system.put",
        reason=reason or None,
        target=name,
        details=details,
        now=now,
    )
    # Enabling a system (or raising its limits) makes its queue claimable: wake the workers.
    await commit_and_wake(session, state.waker)
    state.systems.invalidate()  # this process's intake sees the change at once
    stats = (await lane_stats(session, now)).get(name)
    return answer(
        request,
        state,
        system_with_lane(system, stats, now=now),
        root="System",
        status_code=201 if created else 200,
    )


@router.get(
    "/api/v1/billing/systems/{name}",
    summary="One external system: settings (without secrets), health and lane",
    description=(
        "**Admins only.** `Health.State` is `Healthy`, `Degraded` (invoices of two or more "
        "different sendings failed in a row) or `Down` (since …; its queue is held and probed "
        "every 30 s with a different invoice each time), with `LastSuccessAt`, `LastFailureAt` "
        "and `LastFailure`. `Lane`: `State` (`Flowing`, `Idle`, `Full`, `Throttled`: the "
        "receiver asked us to wait until `ThrottledUntil`, or `Held`), `InFlight` / "
        "`MaxInFlight`, `RatePerSecond`, `Due` (could be delivered now), `Queued`, `Held` "
        "(waiting because the system is switched off or down) with `HeldReason` and "
        "`HeldSince`, `OldestDueAgeSeconds`."
    ),
    response_class=Response,
)
async def get(
    request: Request, state: State, session: Session, _caller: Admin, name: SystemName
) -> Response:
    system = await get_system(session, name)
    if system is None:
        raise SystemNotFound(name)
    now = state.clock.now()
    stats = (await lane_stats(session, now)).get(name)
    return answer(request, state, system_with_lane(system, stats, now=now), root="System")


@router.get(
    "/api/v1/billing/systems",
    summary="Every external system with its health and lane",
    description="**Admins only.** Each as `GET api/v1/billing/systems/{name}` answers it.",
    response_class=Response,
)
async def index(request: Request, state: State, session: Session, _caller: Admin) -> Response:
    now = state.clock.now()
    stats = await lane_stats(session, now)
    systems = [system_with_lane(s, stats.get(s.name), now=now) for s in await list_systems(session)]
    return answer(request, state, {"Systems": systems}, root="SystemList")
