"""HttpChannel's translation of transport failures and configuration, with a fake client."""

from __future__ import annotations

import socket
import ssl
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from invoice_outbox.systems.channels.base import (
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from invoice_outbox.systems.channels.http import MAX_RETRY_AFTER, HttpChannel, parse_retry_after

NOW = datetime(2026, 2, 5, 16, 6, 25, tzinfo=UTC)
DELIVERY = Delivery(
    sending_id=uuid.uuid4(),
    idempotency_key="key-1",
    practice_id=uuid.uuid4(),
    invoice_id=uuid.uuid4(),
    sending_type="Invoice",
    attempt=1,
    document=b'{"Patient": "Sipho Dlamini"}',
    content_type="application/json",
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", timedelta(seconds=120)),
        (" 0 ", timedelta(0)),
        ("86401", MAX_RETRY_AFTER),
        ("9" * 40, MAX_RETRY_AFTER),  # would overflow a timedelta
        ("Thu, 05 Feb 2026 16:08:25 GMT", timedelta(minutes=2)),
        ("Thu, 05 Feb 2026 16:00:00 GMT", timedelta(0)),  # in the past
        ("Sat, 07 Feb 2026 16:06:25 GMT", MAX_RETRY_AFTER),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("١٢", None),  # non-ASCII digits are not delay-seconds
    ],
)
def test_parse_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, NOW) == expected


class RaisingSession:
    """Stands in for aiohttp.ClientSession: every request raises `exc` (unit tests only)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def post(self, *args: object, **kwargs: object) -> RaisingSession:
        return self

    async def __aenter__(self) -> None:
        raise self.exc

    async def __aexit__(self, *args: object) -> None:
        return None


def channel_raising(exc: BaseException) -> HttpChannel:
    client = cast(aiohttp.ClientSession, RaisingSession(exc))
    return HttpChannel(system="Medikredit", url="https://api.example/x", timeout=30, client=client)


async def failure(channel: HttpChannel) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await channel.deliver(DELIVERY)
    return caught.value


KEY = ConnectionKey("api.example", 443, True, True, None, None, None)


def connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(KEY, os_error)


@pytest.mark.parametrize(
    ("exc", "cause", "reason"),
    [
        (
            aiohttp.ConnectionTimeoutError("x"),
            "timeout",
            "Timed out after 30 s connecting to Medikredit",
        ),
        (aiohttp.SocketTimeoutError("x"), "timeout", "Timed out after 30 s waiting for Medikredit"),
        (TimeoutError(), "timeout", "Timed out after 90 s sending to Medikredit"),
        (
            aiohttp.ServerDisconnectedError(),
            "connection-closed",
            "Medikredit closed the connection without a valid HTTP answer",
        ),
        (
            connector_error(socket.gaierror(-2, "Name or service not known")),
            "dns",
            "Could not resolve the host name of Medikredit (api.example)",
        ),
        (
            aiohttp.ClientOSError(104, "Connection reset by peer"),
            "connection-reset",
            "Medikredit reset the connection (api.example)",
        ),
        (
            connector_error(OSError(113, "No route to host")),
            "unreachable",
            "Medikredit (api.example) is unreachable from this server",
        ),
        (
            connector_error(ConnectionRefusedError(111, "refused")),
            "connection-refused",
            "Medikredit refused the connection (api.example)",
        ),
        (
            connector_error(OSError(1, "x")),
            "connection",
            "Could not connect to Medikredit (api.example)",
        ),
        (
            aiohttp.ClientProxyConnectionError(KEY, OSError(111, "refused")),
            "proxy",
            "The HTTP proxy refused to connect to Medikredit",
        ),
        (
            aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(1, "handshake")),
            "tls",
            "The TLS handshake with Medikredit (api.example) failed",
        ),
    ],
)
async def test_transport_failures_are_retryable(exc: Exception, cause: str, reason: str) -> None:
    error = await failure(channel_raising(exc))
    assert isinstance(error, RetryableDeliveryError)
    assert (error.cause, error.reason, error.code) == (cause, reason, None)
    assert error.__cause__ is exc  # the original stays attached for logs


async def test_a_request_aiohttp_cannot_build_is_a_config_error() -> None:
    error = await failure(channel_raising(ValueError("Newline or carriage return character")))
    assert (type(error), error.cause) == (PermanentDeliveryError, "config")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"url": "ftp://api.example/x"}, "The URL configured for Medikredit is not a valid"),
        ({"url": "not a url"}, "The URL configured for Medikredit is not a valid"),
        ({"url": "https:///x"}, "The URL configured for Medikredit is not a valid"),
        ({"auth_header": "Authorization"}, "The authentication of Medikredit is half configured"),
        ({"auth_value": "Bearer x"}, "The authentication of Medikredit is half configured"),
    ],
)
async def test_bad_configuration_fails_every_delivery_permanently(
    kwargs: dict[str, str], reason: str
) -> None:
    settings: dict[str, str] = {"url": "https://api.example/x"} | kwargs
    channel = HttpChannel(system="Medikredit", timeout=5, **settings)  # type: ignore[arg-type]
    error = await failure(channel)
    await channel.aclose()
    assert isinstance(error, PermanentDeliveryError)
    assert error.cause == "config"
    assert error.reason.startswith(reason)


@pytest.mark.parametrize("value", ["Bearer x\r\nInjected: yes", "Bearer tökën"])
async def test_an_invalid_header_value_is_a_config_error(value: str) -> None:
    channel = HttpChannel(
        system="Medikredit",
        url="https://api.example/x",
        timeout=5,
        auth_header="Authorization",
        auth_value=value,
        client=cast(aiohttp.ClientSession, RaisingSession(AssertionError("never sent"))),
    )
    error = await failure(channel)
    assert (type(error), error.cause) == (PermanentDeliveryError, "config")


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        HttpChannel(system="A", url="https://api.example/", timeout=0)


def test_delivery_repr_hides_the_document() -> None:
    assert "Sipho" not in repr(DELIVERY)
    assert "document=<28 bytes>" in repr(DELIVERY)


@pytest.mark.parametrize("cause", ["HTTP 503", "http_503", "", "-x", "Timeout"])
def test_causes_must_be_slugs(cause: str) -> None:
    with pytest.raises(ValueError, match="lower-case slug"):
        RetryableDeliveryError("x", cause=cause)
