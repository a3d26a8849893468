"""Invoice documents, kept as given, only for as long as delivery needs them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from invoice_outbox.db.base import Base, UtcDateTime


class Document(Base):
    """The bytes a sending delivers, with their media type and a content hash.

    The hash makes resubmitting the same document a no-op and detects corrected documents.
    """

    __tablename__ = "documents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
