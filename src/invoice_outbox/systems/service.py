"""Configure external systems and read them back.  Functions never commit."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.errors import Conflict, Invalid, NotFound
from invoice_outbox.systems.acceptance import AcceptanceConfig, AcceptanceMode
from invoice_outbox.systems.channels.tls import TlsConfigError, client_tls_context
from invoice_outbox.systems.models import System, SystemPractice
from invoice_outbox.systems.retry import RetryPolicy
from invoice_outbox.systems.schemas import SystemIn
from invoice_outbox.systems.targets import TargetRefused, check_target, http_target_host


class SystemConfigError(Invalid, ValueError):
    """The configuration cannot be accepted; the message says why."""


class AcknowledgementSecretMissing(Conflict):
    """Acknowledgement mode with no secret to verify acknowledgements: none given, none
    stored (the request may be sound; the system's state lacks the secret)."""

    def __init__(self) -> None:
        super().__init__(
            "Acceptance Mode Acknowledgement needs a Secret (whsec_...): acknowledgements "
            "are verified with it."
        )


class SystemNotFound(NotFound):
    """No system has the name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"No system is named {name!r}.")


class TargetUnreachable(Conflict):
    """The target is well formed, but its host does not resolve, or resolves to an address
    the service must not reach: the state of the world refuses it, not the request."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"The system cannot be reached as configured: {problem}.")


async def validate_target(spec: SystemIn, *, allow_private: bool) -> None:
    """Refuse targets on internal addresses (unless allowed) and malformed URLs."""
    try:
        if spec.Channel == "Http":
            host, port = http_target_host(spec.Url or "")
        else:
            host, port = spec.Host or "", spec.Port or 587
    except TargetRefused as exc:
        raise SystemConfigError(str(exc)) from None
    try:
        await check_target(host, port, allow_private=allow_private)
    except TargetRefused as exc:
        raise TargetUnreachable(str(exc)) from None


def _policy_config(spec: SystemIn) -> dict[str, Any]:
    if spec.RetryPolicy is None:
        return RetryPolicy().to_config()
    try:
        return RetryPolicy.from_config(spec.RetryPolicy).to_config()
    except ValueError as exc:
        raise SystemConfigError(f"RetryPolicy: {exc}") from None


async def put_system(
    session: AsyncSession, name: str, spec: SystemIn, *, now: datetime
) -> tuple[System, bool]:
    """Create or replace system `name`.  Returns the row and whether it was created.

    Omitted secrets keep the stored value; health (circuit) columns are left alone.
    """
    policy = _policy_config(spec)
    system = await session.get(System, name)
    created = system is None
    if system is None:
        system = System(
            name=name,
            created_at=now,
            circuit="Healthy",
            consecutive_failures=0,
            failing_sendings=[],
            enabled=True,
        )
        session.add(system)
    elif system.channel != spec.Channel and spec.secret() is None:
        system.secret = None  # a secret for the other channel kind means nothing here
    system.channel = spec.Channel
    system.settings = spec.channel_settings()
    secret = spec.secret()
    if secret is not None:
        system.secret = secret.get_secret_value() or None
    _put_acceptance(system, spec, now)
    system.timeout_seconds = spec.TimeoutSeconds
    system.retry_policy = policy
    if not spec.Enabled and (created or system.enabled):
        system.disabled_at = now
    elif spec.Enabled:
        system.disabled_at = None
    system.enabled = spec.Enabled
    system.max_in_flight = spec.MaxInFlight
    if system.rate_per_second != spec.RatePerSecond:
        system.next_slot_at = None  # a new rate starts with a full bucket
    system.rate_per_second = spec.RatePerSecond
    system.updated_at = now
    system.practices = [
        SystemPractice(system=name, practice_id=p) for p in sorted(set(spec.Practices))
    ]
    await session.flush()
    return system, created


def _rotate(system: System, name: str, new: str | None, spec: SystemIn, now: datetime) -> None:
    """Set secret `name` (signing_secret or acceptance_secret) to `new` (None: keep; "":
    remove).  A different secret rotates: the one it replaces stays valid (as `name`_previous)
    for `spec.SecretOverlapSeconds`."""
    if new is None:
        return
    current: str | None = getattr(system, name)
    if not new:
        setattr(system, name, None)
        setattr(system, f"{name}_previous", None)
        setattr(system, f"{name}_previous_until", None)
        return
    if new == current:
        return
    if current and spec.SecretOverlapSeconds > 0:
        setattr(system, f"{name}_previous", current)
        setattr(
            system, f"{name}_previous_until", now + timedelta(seconds=spec.SecretOverlapSeconds)
        )
    else:
        setattr(system, f"{name}_previous", None)
        setattr(system, f"{name}_previous_until", None)
    setattr(system, name, new)


def _put_acceptance(system: System, spec: SystemIn, now: datetime) -> None:
    """Acceptance mode, signing and acknowledgement secrets, client certificate."""
    acceptance = spec.Acceptance
    system.acceptance_settings = acceptance.stored() if acceptance is not None else {}
    signing = spec.SigningSecret.get_secret_value() if spec.SigningSecret is not None else None
    _rotate(system, "signing_secret", signing, spec, now)
    ack_secret = acceptance.Secret if acceptance is not None else None
    _rotate(
        system,
        "acceptance_secret",
        ack_secret.get_secret_value() if ack_secret is not None else None,
        spec,
        now,
    )
    certificate, key = spec.ClientCertificate, spec.ClientKey
    if certificate is not None:
        system.client_certificate = certificate.get_secret_value() or None
    if key is not None:
        system.client_key = key.get_secret_value() or None
    if spec.Channel != "Http":
        system.signing_secret = system.signing_secret_previous = None
        system.client_certificate = system.client_key = None
    if (
        acceptance is not None
        and acceptance.Mode is AcceptanceMode.ACKNOWLEDGEMENT
        and not system.acceptance_secret
    ):
        raise AcknowledgementSecretMissing()
    try:
        client_tls_context(
            system.client_certificate,
            system.client_key,
            ca_certificate=spec.CaCertificate if spec.Channel == "Http" else None,
        )
    except TlsConfigError as exc:
        raise SystemConfigError(str(exc)) from None


def acceptance_config(system: System) -> AcceptanceConfig:
    return AcceptanceConfig.from_stored(system.acceptance_settings)


def acknowledgement_keys(system: System, now: datetime) -> list[str]:
    """The secrets an acknowledgement from `system` may be signed with now."""
    secrets = [system.acceptance_secret]
    until = system.acceptance_secret_previous_until
    if system.acceptance_secret_previous and (until is None or now < until):
        secrets.append(system.acceptance_secret_previous)
    return [s for s in secrets if s]


async def get_system(session: AsyncSession, name: str) -> System | None:
    return await session.get(System, name)


async def list_systems(session: AsyncSession) -> Sequence[System]:
    return (await session.scalars(select(System).order_by(System.name))).all()


async def systems_for_practice(session: AsyncSession, practice_id: uuid.UUID) -> list[str]:
    """Names of the systems a practice's invoices go to by default."""
    rows = await session.scalars(
        select(SystemPractice.system).where(SystemPractice.practice_id == practice_id)
    )
    return sorted(rows.all())


def secrets_of(system: System | None) -> tuple[str | None, ...]:
    """Every write-only value of a system (to tell whether a change touched one)."""
    if system is None:
        return (None,) * 5
    return (
        system.secret,
        system.signing_secret,
        system.acceptance_secret,
        system.client_certificate,
        system.client_key,
    )


def system_view(system: System, lane: Mapping[str, Any]) -> dict[str, Any]:
    """The API's picture of a system: settings without secrets, its health, and its lane
    (`lane`: what is in flight, due and held now, `invoice_outbox.sendings.lanes.lane_view`)."""
    view: dict[str, Any] = {"Name": system.name, "Channel": system.channel}
    view.update(
        {k: v for k, v in system.settings.items() if v is not None and k != "CaCertificate"}
    )
    view["HasSecret"] = system.secret is not None
    view["HasCaCertificate"] = bool(system.settings.get("CaCertificate"))
    acceptance = dict(system.acceptance_settings or {"Mode": AcceptanceMode.TRANSPORT.value})
    acceptance["HasSecret"] = system.acceptance_secret is not None
    acceptance["PreviousSecretValidUntil"] = (
        system.acceptance_secret_previous_until if system.acceptance_secret_previous else None
    )
    view["Acceptance"] = acceptance
    view["Signing"] = {
        "HasSecret": system.signing_secret is not None,
        "PreviousSecretValidUntil": (
            system.signing_secret_previous_until if system.signing_secret_previous else None
        ),
    }
    view["HasClientCertificate"] = system.client_certificate is not None
    view["TimeoutSeconds"] = system.timeout_seconds
    view["RetryPolicy"] = system.retry_policy
    view["Enabled"] = system.enabled
    view["MaxInFlight"] = system.max_in_flight
    view["RatePerSecond"] = system.rate_per_second
    view["Practices"] = [str(link.practice_id) for link in system.practices]
    view["Health"] = {
        "State": system.circuit,
        "DownSince": system.down_since,
        "ConsecutiveFailures": system.consecutive_failures,
        "LastFailure": system.last_failure_reason,
        "LastFailureAt": system.last_failure_at,
        "LastSuccessAt": system.last_success_at,
        "NextProbeAt": system.next_probe_at if system.circuit == "Down" else None,
    }
    view["Lane"] = dict(lane)
    return view
