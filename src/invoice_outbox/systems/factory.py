"""Channels for configured systems, built once per configuration and shared by deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.clock import Clock
from invoice_outbox.systems.channels.base import DeliveryChannel
from invoice_outbox.systems.channels.email import EmailChannel
from invoice_outbox.systems.channels.http import HttpChannel, new_http_client
from invoice_outbox.systems.models import System
from invoice_outbox.systems.retry import RetryPolicy
from invoice_outbox.systems.targets import TargetRefused, http_target_host


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
            return HttpChannel(
                system=config.name,
                url=str(s.get("Url") or ""),
                timeout=config.timeout_seconds,
                auth_header=s.get("AuthHeader"),
                auth_value=config.secret,
                client=self._http_client(),
                clock=self._clock,
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

    async def aclose(self) -> None:
        for _, channel in self._channels.values():
            await channel.aclose()
        self._channels.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
