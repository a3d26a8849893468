"""Channels for configured systems, built once per configuration and shared by deliveries."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.clock import Clock
from invoice_outbox.systems.acceptance import AcceptanceConfig
from invoice_outbox.systems.channels.base import DeliveryChannel
from invoice_outbox.systems.channels.email import EmailChannel
from invoice_outbox.systems.channels.http import HttpChannel, new_http_client
from invoice_outbox.systems.channels.tls import TlsConfigError, client_tls_context
from invoice_outbox.systems.models import System
from invoice_outbox.systems.retry import RetryPolicy
from invoice_outbox.systems.signing import secret_key
from invoice_outbox.systems.targets import TargetRefused, http_target_host

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """What a worker needs of a system to deliver to it (read once per claim round)."""

    name: str
    channel: str
    settings: dict[str, Any]
    secret: str | None
    timeout_seconds: float
    retry_policy: dict[str, Any]
    updated_at: datetime
    #: The parsed `retry_policy` (parsed once per read, not once per outcome).
    retry: RetryPolicy
    enabled: bool = True
    circuit: str = "Healthy"
    max_in_flight: int = 8
    #: How the system tells acceptance (Transport: it does not).
    acceptance: AcceptanceConfig = field(default_factory=AcceptanceConfig)
    signing_secret: str | None = None
    signing_secret_previous: str | None = None
    signing_secret_previous_until: datetime | None = None
    client_certificate: str | None = None
    client_key: str | None = None

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return f"SystemConfig(name={self.name!r}, channel={self.channel!r})"

    def signing_keys(self, now: datetime) -> list[bytes]:
        """The keys deliveries are signed with now: the current secret's, and the previous
        one's while its overlap lasts.  Unusable secrets are skipped."""
        secrets = [self.signing_secret]
        until = self.signing_secret_previous_until
        if self.signing_secret_previous and (until is None or now < until):
            secrets.append(self.signing_secret_previous)
        keys = []
        for secret in secrets:
            if secret:
                try:
                    keys.append(secret_key(secret))
                except ValueError:
                    continue
        return keys

    def target(self) -> tuple[str, int]:
        """Host and port deliveries connect to (TargetRefused when malformed)."""
        if self.channel == "Http":
            return http_target_host(str(self.settings.get("Url") or ""))
        host = str(self.settings.get("Host") or "")
        if not host:
            raise TargetRefused("no Host configured")
        return host, int(self.settings.get("Port") or 587)


async def load_system_configs(connection: AsyncConnection) -> dict[str, SystemConfig]:
    rows = await connection.execute(
        select(
            System.name,
            System.channel,
            System.settings,
            System.secret,
            System.timeout_seconds,
            System.retry_policy,
            System.updated_at,
            System.enabled,
            System.circuit,
            System.max_in_flight,
            System.acceptance_settings,
            System.signing_secret,
            System.signing_secret_previous,
            System.signing_secret_previous_until,
            System.client_certificate,
            System.client_key,
        )
    )
    return {
        row.name: SystemConfig(
            name=row.name,
            channel=row.channel,
            settings=row.settings,
            secret=row.secret,
            timeout_seconds=row.timeout_seconds,
            retry_policy=row.retry_policy,
            updated_at=row.updated_at,
            retry=_policy(row.retry_policy),
            enabled=bool(row.enabled),
            circuit=row.circuit,
            max_in_flight=row.max_in_flight,
            acceptance=AcceptanceConfig.from_stored(row.acceptance_settings),
            signing_secret=row.signing_secret,
            signing_secret_previous=row.signing_secret_previous,
            signing_secret_previous_until=row.signing_secret_previous_until,
            client_certificate=row.client_certificate,
            client_key=row.client_key,
        )
        for row in rows
    }


def _policy(config: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy.from_config(config) if config else RetryPolicy()


class ChannelPool:
    """One channel per system configuration; a changed configuration gets a new channel."""

    def __init__(self, *, clock: Clock, max_connections: int = 200) -> None:
        self._clock = clock
        self._max_connections = max_connections
        self._channels: dict[str, tuple[datetime, DeliveryChannel]] = {}
        # One connection pool for every HTTP system: keep-alive across deliveries.  Made on
        # first use, inside the event loop that delivers.
        self._http: aiohttp.ClientSession | None = None

    def channel_for(self, config: SystemConfig) -> DeliveryChannel:
        """The channel of `config`'s system, built anew when its configuration changed (and
        its ``updated_at`` with it)."""
        cached = self._channels.get(config.name)
        if cached is not None and cached[0] == config.updated_at:
            return cached[1]
        channel = self._build(config)
        self._channels[config.name] = (config.updated_at, channel)
        return channel

    def _http_client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = new_http_client(max_connections=self._max_connections)
        return self._http

    def _build(self, config: SystemConfig) -> DeliveryChannel:
        s = config.settings
        if config.channel == "Http":
            clock = self._clock
            signed = bool(config.signing_secret or config.signing_secret_previous)
            return HttpChannel(
                system=config.name,
                url=str(s.get("Url") or ""),
                timeout=config.timeout_seconds,
                auth_header=s.get("AuthHeader"),
                auth_value=config.secret,
                client=self._http_client(),
                clock=clock,
                tls_context=self._tls(config),
                acceptance=None if config.acceptance.mode != "Response" else config.acceptance,
                signing_keys=(lambda: config.signing_keys(clock.now())) if signed else None,
            )
        return EmailChannel(
            system=config.name,
            host=str(s.get("Host") or ""),
            port=int(s.get("Port") or 587),
            sender=str(s.get("Sender") or ""),
            recipient=str(s.get("Recipient") or ""),
            timeout=config.timeout_seconds,
            starttls=bool(s.get("StartTls", True)),
            use_tls=bool(s.get("UseTls", False)),
            username=s.get("Username"),
            password=config.secret,
            clock=self._clock,
        )

    @staticmethod
    def _tls(config: SystemConfig) -> ssl.SSLContext | None:
        """The system's own TLS context (a private CA, a client certificate), else None."""
        ca = config.settings.get("CaCertificate")
        if not (config.client_certificate or ca):
            return None
        try:
            return client_tls_context(
                config.client_certificate, config.client_key, ca_certificate=ca
            )
        except TlsConfigError as exc:  # checked when configured; a broken row still must not
            log.warning(  # stop the worker: verification stays on, the handshake fails visibly
                "unusable TLS settings", extra={"action": "system.tls_error", "system": config.name}
            )
            del exc
            return ssl.create_default_context()

    async def aclose(self) -> None:
        for _, channel in self._channels.values():
            await channel.aclose()
        self._channels.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
