"""Where a system may point: public addresses only, unless private targets are allowed.

Checked when a system is configured and again before each delivery (a name can start resolving
to an internal address later).  Loopback, link-local, private, reserved, multicast and
unspecified addresses are refused unless ``INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS=true``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from invoice_outbox.errors import Invalid


class TargetRefused(Invalid):
    """The target is malformed, does not resolve, or resolves to an address we must not reach.

    Invalid when an admin configures a system (`systems.service` says so); at delivery time
    the worker records it as the sending's failure instead.
    """


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def http_target_host(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL; TargetRefused for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise TargetRefused("Url must be an absolute http:// or https:// address")
    if parts.username or parts.password:
        raise TargetRefused("put credentials in AuthHeader/AuthValue, not in the Url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("Url has an invalid port") from None
    return parts.hostname, port


async def check_target(host: str, port: int, *, allow_private: bool) -> None:
    """Raise TargetRefused unless every address `host` resolves to may be reached."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TargetRefused(f"{host} does not resolve") from None
    if allow_private:
        return
    for info in infos:
        if _is_internal(str(info[4][0])):
            raise TargetRefused(
                f"{host} resolves to an internal address; set "
                "INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS=true to allow it (development only)"
            )
