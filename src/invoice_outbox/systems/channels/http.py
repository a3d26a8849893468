"""Delivery by HTTP POST to a system's API.

Contract with the receiver (documented for the systems' implementers):

- `POST <url>` with the document as the body, `Content-Type: <type>; charset=utf-8`;
- `Idempotency-Key` is the same for every attempt of a sending: drop duplicates by it;
- `X-Invoice-Id`, `X-Sending-Type` (`Invoice`/`Cancellation`), `X-Attempt` (1-based);
- any 2xx means delivered; 408, 429 and 5xx mean "try again later" (`Retry-After`, in
  seconds or as an HTTP date, is honoured up to 24 h); any other answer is final: the
  sending is aborted until an admin acts.  Redirects are never followed, because a POST
  carrying health data must not be re-sent to an address nobody configured;
- with a signing secret, Standard Webhooks headers: `webhook-id` (the idempotency key),
  `webhook-timestamp`, `webhook-signature` (`systems.signing`; two signatures while a
  secret is rotated).

The response body is read (up to `DRAIN_LIMIT` bytes) and thrown away, never stored or
logged: it may echo patient data.  Reading it lets the connection be kept alive and reused;
a longer body is not read to its end, and that connection is closed instead.  The one
exception is a system whose acceptance mode is Response: its verdict is read from the body
of a 2xx or a final 4xx (`systems.acceptance`), and only the verdict's code, reference and
the recipient's capped message are kept, never the body.

The client is aiohttp: at 64 deliveries in flight it spent ~0.08 ms of CPU per POST where
httpx spent ~2.1 ms (`benchmarks/delivery`), and the worker is CPU-bound.
"""

from __future__ import annotations

import asyncio
import http
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp
import yarl

from invoice_outbox import __version__
from invoice_outbox.clock import Clock, SystemClock
from invoice_outbox.systems.acceptance import AcceptanceConfig
from invoice_outbox.systems.channels._network import network_error, seconds
from invoice_outbox.systems.channels.base import (
    Delivered,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    Verdict,
)
from invoice_outbox.systems.signing import signature_header

__all__ = ["DRAIN_LIMIT", "MAX_RETRY_AFTER", "HttpChannel", "new_http_client", "parse_retry_after"]

#: A Retry-After beyond this is capped: a receiver must not park a sending for weeks.
MAX_RETRY_AFTER = timedelta(hours=24)
#: Response bytes read (and discarded) so the connection can be reused; more are not read.
DRAIN_LIMIT = 64 * 1024
#: The whole exchange may take this many times the per-phase timeout (a receiver that never
#: reads a large body would otherwise hold the delivery forever: aiohttp has no write timeout).
TOTAL_TIMEOUT_FACTOR = 3

_RETRYABLE_STATUSES = frozenset({408, 429})


def new_http_client(*, max_connections: int = 200) -> aiohttp.ClientSession:
    """The HTTP client deliveries share (call inside the event loop that will use it).

    No cookies are kept (one receiver must not influence requests to another), proxies from
    the environment are ignored, bodies are not decompressed (they are never looked at).
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,
    )


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


SigningKeys = Callable[[], Sequence[bytes]]


async def _read_body(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, up to `DRAIN_LIMIT` bytes (None when longer or unreadable)."""
    chunks: list[bytes] = []
    seen = 0
    try:
        async for chunk in response.content.iter_chunked(16 * 1024):
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                response.close()
                return None
            chunks.append(chunk)
    except (TimeoutError, aiohttp.ClientError):
        return None
    return b"".join(chunks)


async def _discard_body(response: aiohttp.ClientResponse) -> None:
    """Read and drop the body so the connection returns to the pool (see module docstring).

    A failure while reading it does not change the outcome: the answer was already given.
    """
    seen = 0
    try:
        async for chunk in response.content.iter_chunked(16 * 1024):
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                response.close()  # not worth reading on: drop this connection
                return
    except (TimeoutError, aiohttp.ClientError):
        return


class HttpChannel:
    """POSTs each delivery to one URL; see the module docstring for the wire contract.

    `timeout` (seconds) bounds connecting (including waiting for a pooled connection) and
    each wait for the answer; the whole exchange is bounded by `TOTAL_TIMEOUT_FACTOR` times
    it.  `auth_header`/`auth_value` add one header such as `Authorization: Bearer ...` (both
    or neither).  `tls_context` replaces the default certificate trust (e.g. a private CA).
    A `client` passed in (see `new_http_client`) is shared and not closed by `aclose`;
    without one the channel makes its own on first use and closes it in `aclose`.  `clock`
    tells the time for Retry-After dates and signatures.  `acceptance` (Response mode only)
    reads the recipient's verdict from the answer.  `signing_keys` returns the keys to sign
    each delivery with (none: unsigned).

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
        client: aiohttp.ClientSession | None = None,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
        acceptance: AcceptanceConfig | None = None,
        signing_keys: SigningKeys | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self._system = system
        self._timeout = timeout
        self._clock: Clock = clock or SystemClock()
        self._url = self._parse(url)
        self._config_error = self._check_config(auth_header, auth_value)
        self._auth = (auth_header, auth_value) if auth_header and auth_value else None
        self._ssl: ssl.SSLContext | bool = tls_context if tls_context is not None else True
        self._client_timeout = aiohttp.ClientTimeout(
            total=timeout * TOTAL_TIMEOUT_FACTOR,
            connect=timeout,
            sock_connect=timeout,
            sock_read=timeout,
        )
        self._owns_client = client is None
        self._client = client
        self._acceptance = acceptance
        self._signing_keys = signing_keys

    @staticmethod
    def _parse(url: str) -> yarl.URL | None:
        try:
            parsed = yarl.URL(url)
        except (ValueError, TypeError):
            return None
        if parsed.scheme not in ("http", "https") or not parsed.host or not parsed.is_absolute():
            return None
        return parsed

    def _check_config(self, auth_header: str | None, auth_value: str | None) -> str | None:
        if self._url is None:
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
        return (self._url.host if self._url is not None else None) or "?"

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
        keys = self._signing_keys() if self._signing_keys is not None else ()
        if keys:
            timestamp = int(self._clock.now().timestamp())
            headers["webhook-id"] = delivery.idempotency_key
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = signature_header(
                keys, delivery.idempotency_key, timestamp, delivery.document
            )
        return headers

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = new_http_client()
        return self._client

    async def deliver(self, delivery: Delivery) -> Delivered:
        """POST the document once; see `DeliveryChannel.deliver` for the error contract."""
        if self._config_error is not None or self._url is None:
            raise PermanentDeliveryError(self._config_error or "bad URL", cause="config")
        try:
            async with self._session().post(
                self._url,
                data=delivery.document,
                headers=self._headers(delivery),
                timeout=self._client_timeout,
                allow_redirects=False,
                ssl=self._ssl,
            ) as response:
                # Only the status line and headers matter (and a Response-mode verdict).
                status = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._clock.now()
                )
                verdict = None
                if self._acceptance is not None and self._judged(status):
                    body = await _read_body(response)
                    content_type = response.headers.get("Content-Type")
                    verdict = self._acceptance.read(body or b"", content_type)
                else:
                    await _discard_body(response)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise self._transport_error(exc) from exc
        if 200 <= status < 300:
            return Delivered(code=status, detail=_phrase(status), verdict=verdict)
        if verdict is not None and verdict.code is not None:
            # A final 4xx that names a code is the recipient's rejection of the claim.
            rejected = Verdict("rejected", verdict.code, verdict.message, verdict.reference)
            return Delivered(code=status, detail=_phrase(status), verdict=rejected)
        raise self._status_error(status, retry_after, delivery.sending_type.lower())

    @staticmethod
    def _judged(status: int) -> bool:
        """Answers a verdict is read from: 2xx, and final 4xx (not 408/429)."""
        return 200 <= status < 300 or (400 <= status < 500 and status not in _RETRYABLE_STATUSES)

    def _transport_error(self, exc: BaseException) -> DeliveryError:
        system, after = self._system, seconds(self._timeout)
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return RetryableDeliveryError(
                f"Timed out after {after} connecting to {system}", cause="timeout"
            )
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return RetryableDeliveryError(
                f"Timed out after {after} waiting for {system}", cause="timeout"
            )
        if isinstance(exc, asyncio.TimeoutError):  # the whole exchange took too long
            total = seconds(self._timeout * TOTAL_TIMEOUT_FACTOR)
            return RetryableDeliveryError(
                f"Timed out after {total} sending to {system}", cause="timeout"
            )
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return network_error(exc.certificate_error, system, self._host())
        if isinstance(exc, aiohttp.ClientProxyConnectionError):
            return RetryableDeliveryError(
                f"The HTTP proxy refused to connect to {system}", cause="proxy"
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return network_error(exc.os_error, system, self._host())
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
            # Disconnected before answering, or answered something that is not HTTP.
            return RetryableDeliveryError(
                f"{system} closed the connection without a valid HTTP answer",
                cause="connection-closed",
            )
        if isinstance(exc, ValueError):  # aiohttp refused to build the request
            return PermanentDeliveryError(
                f"The request to {system} could not be built: check its URL and header settings",
                cause="config",
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
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None
