"""Local users and the practices they belong to."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from invoice_outbox.db.base import Base, UtcDateTime


class User(Base):
    """A person or program that signs in with a name and password (argon2-hashed)."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    practices: Mapped[list[UserPractice]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (CheckConstraint("role IN ('admin', 'practice')", name="role"),)


class UserPractice(Base):
    """Membership of a practice user in one practice."""

    __tablename__ = "user_practices"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    practice_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
