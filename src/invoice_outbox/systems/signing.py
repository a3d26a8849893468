"""Standard Webhooks signatures: signing our deliveries, verifying recipients' acknowledgements.

The scheme (https://www.standardwebhooks.com): three headers, ``webhook-id`` (the same for
every attempt of a message; ours is the sending's idempotency key), ``webhook-timestamp``
(Unix seconds of this attempt) and ``webhook-signature``: ``v1,`` + base64 of
HMAC-SHA256(key, ``"{id}.{timestamp}.{body}"``), where the key is the base64 part of the
secret ``whsec_<base64>``.  Several signatures are separated by spaces: while a secret is
being rotated, deliveries carry one for the new secret and one for the previous, so a
receiver holding either verifies them.

Secrets are never logged and never answered (write-only settings).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime
from typing import Final

__all__ = [
    "PREFIX",
    "SECRET_PATTERN",
    "SignatureRefused",
    "check_secret",
    "secret_key",
    "sign",
    "signature_header",
    "verify",
]

PREFIX: Final = "whsec_"
_MIN_KEY_BYTES: Final = 16
_MAX_KEY_BYTES: Final = 128
_QUAD: Final = "[A-Za-z0-9+/]{4}"
#: A secret setting as JSON Schema (ECMA-262) and `re` read it: what `check_secret` accepts
#: (``whsec_`` and the padded base64 of 16 to 128 bytes), or nothing (which clears it); the
#: schemas strip white space around it.
SECRET_PATTERN: Final = (
    rf"^[ \t\r\n]*(?:whsec_(?:(?:{_QUAD}){{6,42}}|(?:{_QUAD}){{5,42}}"
    r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)))?[ \t\r\n]*$"
)
#: Signatures a header may carry before we stop looking (a sender rotates one secret at once).
_MAX_SIGNATURES: Final = 8


class SignatureRefused(Exception):
    """An acknowledgement's headers do not authenticate it; `message` says why in words safe
    to answer (never which secret, never the expected signature)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (ValueError when it is not one)."""
    if not secret.startswith(PREFIX):
        raise ValueError("must start with whsec_")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be whsec_ followed by base64") from None
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise ValueError(f"must hold {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes of key")
    return key


def check_secret(secret: str, name: str) -> None:
    """Raise ValueError naming the setting `name` when `secret` is not a usable secret."""
    try:
        secret_key(secret)
    except ValueError as exc:
        raise ValueError(f"{name} {exc} (whsec_ and the base64 of a random key)") from None


def sign(key: bytes, message_id: str, timestamp: int | str, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(keys: Iterable[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per key, space-separated."""
    return " ".join(sign(key, message_id, timestamp, body) for key in keys)


def verify(
    keys: Iterable[bytes],
    *,
    message_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    body: bytes,
    now: datetime,
    tolerance_seconds: int,
) -> int:
    """Check an incoming message's headers; return its timestamp (Unix seconds).

    Raises `SignatureRefused` when a header is missing, no ``v1`` signature matches any of
    `keys` (compared in constant time), or the timestamp is further than `tolerance_seconds`
    from `now` (either way: replayed, or a wrong clock; said only to a correct signer).
    """
    if not message_id or not timestamp or not signatures:
        raise SignatureRefused(
            "The request is not signed: webhook-id, webhook-timestamp and webhook-signature "
            "are required (Standard Webhooks)."
        )
    digits = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
    if len(message_id) > 200 or not digits:
        raise SignatureRefused("The webhook-id or webhook-timestamp header is malformed.")
    sent = int(timestamp)
    offered = [
        part.partition(",")[2].encode()
        for part in signatures.split()[:_MAX_SIGNATURES]
        if part.startswith("v1,")
    ]
    # The signature first: only a sender holding the secret learns that its clock is off.
    for key in keys:
        expected = sign(key, message_id, timestamp, body).partition(",")[2].encode()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            if abs(now.timestamp() - sent) > tolerance_seconds:
                raise SignatureRefused(
                    f"The webhook-timestamp is more than {tolerance_seconds} s away from our "
                    "clock; sign the request again with the current time."
                )
            return sent
    raise SignatureRefused("The webhook-signature does not verify.")
