"""Sealing and opening documents: AES-256-GCM, a random nonce each, bound to the row.

What a ciphertext is bound to (its associated data, authenticated but not stored): a format
tag, the document's id, and the practice id, invoice id and media type it belongs to.  A
document is shared by the sendings of one submission (one per system), so it is bound to its
own identity rather than to one sending.  The worker opens a document with the ids of the
*sending* it delivers, so:

- a ciphertext copied or moved to another row (another id) does not decrypt;
- a sending pointed at another invoice's document does not decrypt (nothing is delivered to
  the wrong practice's systems);
- a changed byte anywhere (ciphertext, tag, nonce, key id) does not decrypt.

Such a document is refused with `DocumentUnreadable`; the message never carries key material or
content.  A document under a key this process does not hold raises `DocumentKeyMissing`.

Digests (`digest`): HMAC-SHA256 under the sealing key's digest subkey, over the practice id,
invoice id and bytes.  Without the key, a database alone cannot confirm a guessed document;
intake compares a resubmission's digest under each stored document's own key, and rotation
recomputes a document's digest under its new key, so idempotent intake survives rotations and
no key has to be kept forever for it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag

from invoice_outbox.errors import Conflict
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import DocumentKey, Keyring

NONCE_BYTES = 12
_AD_TAG = b"invoice-outbox/document/v1\0"
_DIGEST_TAG = b"invoice-outbox/document-digest/v1\0"

UNREADABLE = (
    "the stored document could not be decrypted: it was changed after it was stored, or does "
    "not belong to this invoice (AES-GCM authentication failed)"
)


class DocumentUnreadable(Conflict):
    """A stored document failed authentication: tampered, truncated or moved."""


def associated_data(
    document_id: uuid.UUID, practice_id: uuid.UUID, invoice_id: uuid.UUID, content_type: str
) -> bytes:
    return b"".join(
        (_AD_TAG, document_id.bytes, practice_id.bytes, invoice_id.bytes, content_type.encode())
    )


def digest(key: DocumentKey, practice_id: uuid.UUID, invoice_id: uuid.UUID, body: bytes) -> str:
    """The keyed digest of a document of that invoice (64 hex digits)."""
    mac = hmac.new(key.mac_key, _DIGEST_TAG + practice_id.bytes + invoice_id.bytes, hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


@dataclass(frozen=True, slots=True, repr=False)
class Sealed:
    """What a documents row stores for one document (besides its ids and media type)."""

    key_id: str
    nonce: bytes
    body: bytes
    digest: str


def seal(
    key: DocumentKey,
    *,
    document_id: uuid.UUID,
    practice_id: uuid.UUID,
    invoice_id: uuid.UUID,
    content_type: str,
    plain: bytes,
) -> Sealed:
    nonce = os.urandom(NONCE_BYTES)
    ad = associated_data(document_id, practice_id, invoice_id, content_type)
    return Sealed(
        key_id=key.kid,
        nonce=nonce,
        body=key.aead.encrypt(nonce, plain, ad),
        digest=digest(key, practice_id, invoice_id, plain),
    )


def unseal(
    keyring: Keyring,
    *,
    key_id: str,
    nonce: bytes,
    body: bytes,
    document_id: uuid.UUID,
    practice_id: uuid.UUID,
    invoice_id: uuid.UUID,
    content_type: str,
) -> bytes:
    """The document's bytes; `DocumentUnreadable` or `DocumentKeyMissing` when they cannot be."""
    key = keyring.require(key_id)
    try:
        return key.aead.decrypt(
            bytes(nonce),
            bytes(body),
            associated_data(document_id, practice_id, invoice_id, content_type),
        )
    except (InvalidTag, ValueError):  # ValueError: a nonce of the wrong length
        raise DocumentUnreadable(UNREADABLE) from None


def new_document(
    keyring: Keyring,
    *,
    practice_id: uuid.UUID,
    invoice_id: uuid.UUID,
    content_type: str,
    body: bytes,
    now: datetime,
    document_id: uuid.UUID | None = None,
) -> Document:
    """A new documents row holding `body` sealed under the current key."""
    document_id = document_id or uuid.uuid4()
    sealed = seal(
        keyring.current,
        document_id=document_id,
        practice_id=practice_id,
        invoice_id=invoice_id,
        content_type=content_type,
        plain=body,
    )
    return Document(
        id=document_id,
        practice_id=practice_id,
        invoice_id=invoice_id,
        content_type=content_type,
        key_id=sealed.key_id,
        nonce=sealed.nonce,
        body=sealed.body,
        digest=sealed.digest,
        created_at=now,
    )
