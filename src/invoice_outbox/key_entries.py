"""The text form of document keys: ``kid:base64key`` entries (see `sendings.keyring`).

Parsing only, with no other part of the service: settings validate the configured keys with it
at start-up, and the keyring builds its keys from what it returns.  Errors name the entry's
position or key id, never the key.
"""

from __future__ import annotations

import base64
import binascii
import re

KEY_BYTES = 32
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _decode_key(kid: str, text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError(f"the key of {kid!r} is not base64") from None


def parse_entries(text: str, *, separator: str = ",") -> list[tuple[str, bytes]]:
    """``kid:base64key`` entries (the format above) as (kid, 32 bytes); ValueError names the
    problem and the entry's position or key id, never the key."""
    entries: list[tuple[str, bytes]] = []
    parts = [p.strip() for p in text.split(separator)]
    parts = [p for p in parts if p and not p.startswith("#")]
    if not parts:
        raise ValueError("no key given; expected kid:base64key[,kid:base64key...]")
    for position, part in enumerate(parts, start=1):
        kid, colon, encoded = part.partition(":")
        kid = kid.strip()
        if not colon:
            raise ValueError(f"entry {position} is not kid:base64key")
        if not KID_PATTERN.fullmatch(kid):
            raise ValueError(
                f"entry {position}: the key id must be 1-32 letters, digits, '-' or '_'"
            )
        material = _decode_key(kid, encoded)
        if len(material) != KEY_BYTES:
            raise ValueError(
                f"key {kid!r} is {len(material)} bytes; a document key is {KEY_BYTES} random "
                "bytes in base64 (invoice-outbox keys new makes one)"
            )
        if any(kid == seen for seen, _ in entries):
            raise ValueError(f"key id {kid!r} appears twice")
        entries.append((kid, material))
    return entries
