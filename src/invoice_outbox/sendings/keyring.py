"""Document keys: the ``INVOICE_OUTBOX_DOCUMENT_KEYS`` format, the generated key file, the keyring.

Format: one or more entries ``kid:base64key``, separated by commas (in the key file: one entry
a line; blank lines and lines starting with ``#`` are ignored).  ``kid`` is 1-32 letters, digits,
``-`` or ``_``, unique; ``base64key`` is 32 random bytes in base64 (standard or URL-safe alphabet,
padding optional).  The FIRST entry encrypts new documents; the others only decrypt (keys on
their way in or out during a rotation).  `new_entry` makes one (``invoice-outbox keys new``).

When the variable is unset, the keys live in ``<var_dir>/document-keys``, created on first use
(owner-readable only, exactly one process creates it), as the bearer-token key is.

A configured key is a master key: nothing is encrypted with it directly.  HKDF-SHA256 derives
three independent subkeys from it: the AES-256-GCM key for documents, the HMAC-SHA256 key for
document digests (intake's "is this the same document?" test, see `sealing.digest`), and the
key of a check value kept in the database (``document_keys``), which proves a configured key is
the one that encrypted the stored documents and reveals nothing about it.

Key material never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from invoice_outbox.errors import Invalid, Unavailable
from invoice_outbox.key_entries import KEY_BYTES, KID_PATTERN
from invoice_outbox.key_entries import parse_entries as parse_entries

if TYPE_CHECKING:
    from invoice_outbox.settings import Settings

KEYS_SETTING = "INVOICE_OUTBOX_DOCUMENT_KEYS"
KEY_FILE_NAME = "document-keys"
#: How often (at most) a process re-reads its key file to find a key it does not hold.
RELOAD_INTERVAL_SECONDS = 1.0
_CHECK_MESSAGE = b"invoice-outbox document key check v1"


class DocumentKeysInvalid(Invalid):
    """The configured document keys are malformed, or are not the keys the database knows."""


class DocumentKeyMissing(Unavailable):
    """A stored document is encrypted under a key this process does not hold."""


class Aead(Protocol):
    """An authenticated cipher (AES-GCM's interface); benchmarks substitute a null one."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


def _derive(key: bytes, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose)
    return hkdf.derive(key)


@dataclass(frozen=True, slots=True, repr=False)
class DocumentKey:
    """One key, ready to use: `aead` seals documents, `mac_key` keys digests, `check` is the
    value stored in ``document_keys`` for this `kid`."""

    kid: str
    aead: Aead
    mac_key: bytes
    check: str

    @classmethod
    def from_material(cls, kid: str, material: bytes) -> DocumentKey:
        if not KID_PATTERN.fullmatch(kid):
            raise ValueError(f"key id {kid!r} must be 1-32 letters, digits, '-' or '_'")
        if len(material) != KEY_BYTES:
            raise ValueError(f"key {kid!r} must be {KEY_BYTES} bytes, not {len(material)}")
        check_key = _derive(material, b"invoice-outbox/document-key-check/v1")
        return cls(
            kid=kid,
            aead=AESGCM(_derive(material, b"invoice-outbox/document-encryption/v1")),
            mac_key=_derive(material, b"invoice-outbox/document-digest/v1"),
            check=hmac.new(check_key, _CHECK_MESSAGE, hashlib.sha256).hexdigest(),
        )

    def __repr__(self) -> str:
        return f"DocumentKey({self.kid!r})"


def new_entry(kid: str | None = None) -> str:
    """A fresh ``kid:base64key`` entry (32 bytes from the OS's random source)."""
    kid = kid or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError(f"key id {kid!r} must be 1-32 letters, digits, '-' or '_'")
    return f"{kid}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


@dataclass(slots=True, eq=False)
class Keyring:
    """The document keys a process holds.  ``keys[0]`` encrypts; every key decrypts.

    `path` is set when the keys come from the key file: a key this process does not hold is
    then looked for in the file again (at most once a second), so a key added there by
    ``invoice-outbox keys new`` reaches running processes without a restart.
    """

    keys: tuple[DocumentKey, ...]
    source: str
    path: Path | None = None
    _by_kid: dict[str, DocumentKey] = field(init=False)
    _reloaded_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise DocumentKeysInvalid(f"{self.source}: no document key")
        self._by_kid = {key.kid: key for key in self.keys}

    @property
    def current(self) -> DocumentKey:
        """The key that encrypts."""
        return self.keys[0]

    def get(self, kid: str) -> DocumentKey | None:
        """The key with id `kid`, or None (after a look in the key file, if there is one)."""
        key = self._by_kid.get(kid)
        due = time.monotonic() - self._reloaded_at >= RELOAD_INTERVAL_SECONDS
        if key is None and self.path is not None and due:
            self._reloaded_at = time.monotonic()
            self._reload()
            key = self._by_kid.get(kid)
        return key

    def require(self, kid: str) -> DocumentKey:
        """The key with id `kid`; `DocumentKeyMissing` (naming the setting) when not held."""
        key = self.get(kid)
        if key is None:
            raise DocumentKeyMissing(
                f"a stored document is encrypted under key {kid!r}, which {self.source} "
                "does not hold; add it (after the key that encrypts) and restart"
            )
        return key

    def _reload(self) -> None:
        assert self.path is not None
        try:
            fresh = _read_key_file(self.path)
        except (OSError, DocumentKeysInvalid):
            return  # keep what we hold; start-up reports a broken file
        self.keys = tuple(DocumentKey.from_material(kid, m) for kid, m in fresh)
        self._by_kid = {key.kid: key for key in self.keys}


def keyring_from_entries(entries: Iterable[tuple[str, bytes]], *, source: str) -> Keyring:
    return Keyring(tuple(DocumentKey.from_material(k, m) for k, m in entries), source=source)


def _read_key_file(path: Path) -> list[tuple[str, bytes]]:
    try:
        return parse_entries(path.read_text(encoding="ascii"), separator="\n")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DocumentKeysInvalid(
            f"{KEYS_SETTING} is unset and the key file {path} is unusable: {exc}"
        ) from None


def _write_new_key_file(path: Path) -> bool:
    """Create the key file with one new key; False when it exists already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when several processes start at once, exactly one creates the file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(_FILE_HEADER + new_entry() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return True


_FILE_HEADER = (
    "# invoice-outbox document keys: kid:base64key, one a line; the first encrypts.\n"
    "# Never commit or copy this file with the database's backups: together they reveal\n"
    "# every stored invoice.  Rotate with `invoice-outbox keys new` + `keys rotate`.\n"
)


def key_file_path(settings: Settings) -> Path:
    return settings.var_dir / KEY_FILE_NAME


def file_source(path: Path) -> str:
    return f"{KEYS_SETTING} (unset, so the key file {path})"


def load_keyring(settings: Settings) -> Keyring:
    """The process's keys: from the setting, or from the key file (created on first use)."""
    if settings.document_keys is not None:
        entries = parse_entries(settings.document_keys.get_secret_value())
        return keyring_from_entries(entries, source=KEYS_SETTING)
    path = key_file_path(settings)
    _write_new_key_file(path)
    keys = tuple(DocumentKey.from_material(k, m) for k, m in _read_key_file(path))
    return Keyring(keys, source=file_source(path), path=path)


def prepend_to_key_file(path: Path, entry: str) -> None:
    """Put `entry` first in the key file (it encrypts from now on), atomically."""
    kid = entry.partition(":")[0]
    existing = _read_key_file(path) if path.exists() else []
    if any(k == kid for k, _ in existing):
        raise DocumentKeysInvalid(f"the key file {path} already holds a key {kid!r}")
    lines = [entry] + [f"{k}:{base64.b64encode(m).decode()}" for k, m in existing]
    _replace_key_file(path, lines)


def remove_from_key_file(path: Path, kid: str) -> None:
    """Drop key `kid` from the key file (never the one that encrypts), atomically."""
    existing = _read_key_file(path) if path.exists() else []
    if existing and existing[0][0] == kid:
        raise DocumentKeysInvalid(f"{kid!r} is the key that encrypts; it cannot be removed")
    if not any(k == kid for k, _ in existing):
        raise DocumentKeysInvalid(f"the key file {path} holds no key {kid!r}")
    _replace_key_file(
        path, [f"{k}:{base64.b64encode(m).decode()}" for k, m in existing if k != kid]
    )


def _replace_key_file(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(_FILE_HEADER + "".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
