"""The bearer-token signing key: from settings, or generated once and kept under ``var_dir``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from invoice_outbox.settings import Settings

MIN_KEY_BYTES = 32
KEY_FILE_NAME = "jwt-signing-key"


class SigningKeyError(Exception):
    """The configured key is unusable (too short, unreadable)."""


def _read_or_create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when several processes start at once, exactly one creates the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if len(key) < MIN_KEY_BYTES:
            raise SigningKeyError(
                f"{path} holds a key shorter than {MIN_KEY_BYTES} bytes"
            ) from None
        return key
    key = secrets.token_urlsafe(48).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def signing_key(settings: Settings) -> bytes:
    """The HMAC key for tokens.  Never logged; the generated file is readable by its owner only."""
    if settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value().encode()
        if len(key) < MIN_KEY_BYTES:
            raise SigningKeyError(
                f"INVOICE_OUTBOX_JWT_SECRET must be at least {MIN_KEY_BYTES} bytes long"
            )
        return key
    return _read_or_create(settings.var_dir / KEY_FILE_NAME)
