"""Translation of low-level network failures shared by the HTTP and SMTP channels.

Both transports wrap the operating system's error (refused, unresolvable, certificate...)
in their own exception types; the useful fact is somewhere down the `__cause__` /
`__context__` chain, so it is looked up there rather than in error text.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator

from invoice_outbox.systems.channels.base import (
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield `exc` and every exception it was raised from or during, nearest first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def seconds(value: float) -> str:
    """Render a duration in seconds for a reason: "30 s", "0.2 s"."""
    return f"{value:g} s"


def _errno(err: BaseException) -> int | None:
    """The OS error number (wrappers such as aiohttp's ClientOSError carry it too)."""
    return err.errno if isinstance(err, OSError) else None


def network_error(exc: BaseException, system: str, where: str) -> DeliveryError:
    """The most specific DeliveryError for a failure to reach `system` (`where`: its host).

    Certificate verification failures are permanent: the certificate will not fix itself
    and retrying would only hide a configuration problem (or an interception) for a day.
    Other TLS failures (a handshake cut short) and everything else network-shaped are
    retryable; an unresolvable host name is retried too, because DNS outages are far more
    common than typos in a configuration that once worked, and the attempt limit bounds it.
    """
    for err in causes(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            detail = err.verify_message or "verification failed"
            return PermanentDeliveryError(
                f"The TLS certificate of {system} ({where}) is not trusted: {detail}",
                cause="tls",
            )
        if isinstance(err, ssl.SSLError):
            return RetryableDeliveryError(
                f"The TLS handshake with {system} ({where}) failed", cause="tls"
            )
        if isinstance(err, socket.gaierror):
            return RetryableDeliveryError(
                f"Could not resolve the host name of {system} ({where})", cause="dns"
            )
        if isinstance(err, ConnectionRefusedError) or _errno(err) == errno.ECONNREFUSED:
            return RetryableDeliveryError(
                f"{system} refused the connection ({where})", cause="connection-refused"
            )
        if _errno(err) in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return RetryableDeliveryError(
                f"{system} ({where}) is unreachable from this server", cause="unreachable"
            )
        if isinstance(err, ConnectionResetError) or _errno(err) == errno.ECONNRESET:
            return RetryableDeliveryError(
                f"{system} reset the connection ({where})", cause="connection-reset"
            )
    return RetryableDeliveryError(f"Could not connect to {system} ({where})", cause="connection")
