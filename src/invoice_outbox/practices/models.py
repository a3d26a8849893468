"""The practices table: a practice's id (the GUID the API uses) and its name."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from invoice_outbox.db.base import Base, UtcDateTime


class Practice(Base):
    """A medical practice, named by an admin (API, CLI or the demo).  Practices without a row
    still work everywhere: they are shown by their id until someone names them."""

    __tablename__ = "practices"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
