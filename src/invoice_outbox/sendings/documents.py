"""Invoice documents, encrypted at rest, kept only for as long as delivery needs them.

A document row holds the invoice as AES-256-GCM ciphertext (``body``, tag included), the id of
the key that sealed it (``key_id``) and the random 96-bit ``nonce``; see `sealing` for what is
bound to it.  One document is shared by the sendings of one submission (one per system), so it
is bound to its own identity -- its id, practice, invoice and media type -- not to a sending's.
``digest`` is a keyed HMAC that recognises a resubmitted document without revealing it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from invoice_outbox.db.base import Base, UtcDateTime


class Document(Base):
    """The sealed bytes a sending delivers, with their media type and a keyed digest.

    The digest makes resubmitting the same document a no-op and detects corrected documents.
    """

    __tablename__ = "documents"
    # Rotation and `keys status` walk the documents of one key in id order.
    __table_args__ = (Index("ix_documents_key_id", "key_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    practice_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    invoice_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    content_type: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DocumentKeyRecord(Base):
    """A key that has sealed (or may seal) documents here, with its check value.

    The check value is an HMAC of a constant under a subkey of the key: a process whose key of
    the same id has another check value holds the wrong key, and is refused at start-up.
    """

    __tablename__ = "document_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    check_value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
