"""Standard Webhooks signing and verifying for tests, written independently of
`invoice_outbox.systems.signing` (a few lines of hmac, as the spec describes), so the tests
check our implementation against the scheme rather than against itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

ACK_SECRET = "whsec_" + base64.b64encode(b"acknowledgement-secret-32-bytes!").decode()
SIGNING_SECRET = "whsec_" + base64.b64encode(b"delivery-signing-secret-32bytes!").decode()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str, body: bytes, now: datetime, *, message_id: str | None = None
) -> dict[str, str]:
    """Headers a recipient sends with an acknowledgement signed with `secret` at `now`."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(now.timestamp()))
    return {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature(secret, message_id, timestamp, body),
        "Content-Type": "application/json",
    }


def verifies(secret: str, headers: dict[str, str] | None, body: bytes) -> bool:
    """What a receiver does: any of the space-separated v1 signatures matches."""
    if headers is None:
        return False
    message_id, timestamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    offered = (headers.get("webhook-signature") or "").split()
    if not message_id or not timestamp:
        return False
    expected = signature(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
