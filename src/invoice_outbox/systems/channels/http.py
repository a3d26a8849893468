"""Delivery by HTTP POST to a system's API.

Contract with the receiver (documented for the systems' implementers):

- `POST <url>` with the document as the body, `Content-Type: <type>; charset=utf-8`;
- `Idempotency-Key` is the same for every attempt of a sending: drop duplicates by it;
- `X-Invoice-Id`, `X-Sending-Type` (`Invoice`/`Cancellation`), `X-Attempt` (1-based);
- any 2xx means accepted; 408, 429 and 5xx mean "try again later" (`Retry-After`, in
  seconds or as an HTTP date, is honoured up to 24 h); any other answer is final: the
  sending is aborted until an admin acts.  Redirects are never followed, because a POST
  carrying health data must not be re-sent to an address nobody configured.

The response body is never read: it is not needed, and it may echo patient data.
"""

from __future__ import annotations

import http
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from invoice_outbox import __version__
from invoice_outbox.clock import Clock, SystemClock
from invoice_outbox.systems.channels._network import network_error, seconds
from invoice_outbox.systems.channels.base import (
    Delivered,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

__all__ = ["MAX_RETRY_AFTER", "HttpChannel", "parse_retry_after"]

#: A Retry-After beyond this is capped: a receiver must not park a sending for weeks.
MAX_RETRY_AFTER = timedelta(hours=24)

_RETRYABLE_STATUSES = frozenset({408, 429})


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Read a Retry-After header (delay-seconds or HTTP-date) as a delay from `now`.

    Returns None for a missing or unreadable value (garbage is ignored, not trusted);
    dates in the past give a zero delay; anything longer than `MAX_RETRY_AFTER` is capped.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Compare before building a timedelta: a huge number would overflow it.
        delay = min(int(text), int(MAX_RETRY_AFTER.total_seconds()))
        return timedelta(seconds=delay)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC of unknown origin (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return min(max(when - now, timedelta(0)), MAX_RETRY_AFTER)


def _phrase(status: int) -> str:
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


class HttpChannel:
    """POSTs each delivery to one URL; see the module docstring for the wire contract.

    `timeout` (seconds) bounds each phase: connecting, sending, waiting for the answer and
    waiting for a pooled connection.  `auth_header`/`auth_value` add one header such as
    `Authorization: Bearer ...` (both or neither).  `tls_context` replaces the default
    certificate trust (e.g. a private CA).  A `client` passed in is used as is (its
    redirect and timeout settings are overridden per request) and is not closed by
    `aclose`; without one the channel owns its client.  `clock` tells the time for
    Retry-After dates.

    A bad URL or half-configured auth does not raise here: every `deliver` then fails with
    a `PermanentDeliveryError` (cause `config`), so the problem shows on the sendings where
    admins look, instead of stopping the worker.
    """

    def __init__(
        self,
        *,
        system: str,
        url: str,
        timeout: float,
        auth_header: str | None = None,
        auth_value: str | None = None,
        client: httpx.AsyncClient | None = None,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self._system = system
        self._url = url
        self._timeout = timeout
        self._clock: Clock = clock or SystemClock()
        self._config_error = self._check_config(url, auth_header, auth_value)
        self._auth = (auth_header, auth_value) if auth_header and auth_value else None
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            verify=tls_context if tls_context is not None else True,
        )

    def _check_config(
        self, url: str, auth_header: str | None, auth_value: str | None
    ) -> str | None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            return f"The URL configured for {self._system} is not a valid http(s) URL"
        if bool(auth_header) != bool(auth_value):
            return (
                f"The authentication of {self._system} is half configured: "
                "set both the header name and its value, or neither"
            )
        # Line breaks in a header would let a stored setting inject headers (or a body);
        # non-ASCII cannot be sent in a header at all.
        header = f"{auth_header or ''}{auth_value or ''}"
        if not header.isascii() or any(c in header for c in "\r\n\0"):
            return (
                f"The authentication header of {self._system} contains a line break "
                "or a non-ASCII character"
            )
        return None

    def _host(self) -> str:
        try:
            return httpx.URL(self._url).host or "?"
        except httpx.InvalidURL:
            return "?"

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        content_type = delivery.content_type
        if "charset" not in content_type:
            content_type = f"{content_type}; charset=utf-8"
        headers = {
            "Content-Type": content_type,
            "Idempotency-Key": delivery.idempotency_key,
            "X-Invoice-Id": str(delivery.invoice_id),
            "X-Sending-Type": delivery.sending_type,
            "X-Attempt": str(delivery.attempt),
            "User-Agent": f"invoice-outbox/{__version__}",
        }
        if self._auth is not None:
            headers[self._auth[0]] = self._auth[1]
        return headers

    async def deliver(self, delivery: Delivery) -> Delivered:
        """POST the document once; see `DeliveryChannel.deliver` for the error contract."""
        if self._config_error is not None:
            raise PermanentDeliveryError(self._config_error, cause="config")
        try:
            async with self._client.stream(
                "POST",
                self._url,
                content=delivery.document,
                headers=self._headers(delivery),
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                # Only the status line and headers matter; the body stays unread.
                status = response.status_code
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._clock.now()
                )
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if 200 <= status < 300:
            return Delivered(code=status, detail=_phrase(status))
        raise self._status_error(status, retry_after, delivery.sending_type.lower())

    def _transport_error(self, exc: httpx.TransportError) -> DeliveryError:
        system, after = self._system, seconds(self._timeout)
        if isinstance(exc, httpx.ConnectTimeout):
            return RetryableDeliveryError(
                f"Timed out after {after} connecting to {system}", cause="timeout"
            )
        if isinstance(exc, httpx.WriteTimeout):
            return RetryableDeliveryError(
                f"Timed out after {after} sending to {system}", cause="timeout"
            )
        if isinstance(exc, httpx.PoolTimeout):
            return RetryableDeliveryError(
                f"Timed out after {after} waiting for a free connection to {system}",
                cause="timeout",
            )
        if isinstance(exc, httpx.TimeoutException):
            return RetryableDeliveryError(
                f"Timed out after {after} waiting for {system}", cause="timeout"
            )
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            # The request could not even be formed: a URL or header setting is wrong.
            return PermanentDeliveryError(
                f"The request to {system} could not be built: check its URL and header settings",
                cause="config",
            )
        if isinstance(exc, httpx.ProxyError):
            return RetryableDeliveryError(
                f"The HTTP proxy refused to connect to {system}", cause="proxy"
            )
        if isinstance(exc, httpx.RemoteProtocolError):
            return RetryableDeliveryError(
                f"{system} closed the connection without a valid HTTP answer",
                cause="connection-closed",
            )
        return network_error(exc, system, self._host())

    def _status_error(self, status: int, retry_after: timedelta | None, what: str) -> DeliveryError:
        system, phrase = self._system, _phrase(status)
        cause = f"http-{status}"
        if status in _RETRYABLE_STATUSES or 500 <= status <= 599:
            reason = f"{system} answered {phrase}"
            if retry_after is not None:
                reason += f" and asked to retry in {seconds(retry_after.total_seconds())}"
            return RetryableDeliveryError(reason, cause=cause, code=status, retry_after=retry_after)
        if 300 <= status <= 399:
            reason = (
                f"{system} answered {phrase}: redirects are not followed, "
                "check the URL configured for it"
            )
        elif status in (401, 403):
            reason = f"{system} refused our credentials: {phrase}; check its authentication"
        elif status in (404, 405):
            reason = f"{system} answered {phrase}: check the URL configured for it"
        elif 400 <= status <= 499:
            reason = f"{system} rejected the {what}: {phrase}"
        else:
            reason = f"{system} answered with an unexpected {phrase}"
        return PermanentDeliveryError(reason, cause=cause, code=status)

    async def aclose(self) -> None:
        """Close the HTTP client if this channel created it."""
        if self._owns_client:
            await self._client.aclose()
