"""Local users and the practices they belong to; dashboard sign-in sessions and failures."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Uuid
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


class WebSession(Base):
    """A signed-in browser.  The cookie carries a random token; only its SHA-256 is stored, so
    a copy of the table cannot be replayed as cookies.  Deleting the row signs the browser out
    (logout, idle expiry); deleting the user deletes their sessions."""

    __tablename__ = "web_sessions"

    #: SHA-256 (hex) of the cookie's token.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: The per-session CSRF token every form and JS POST must carry.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: Moved forward (at most once a minute) by requests; idle expiry counts from here.
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class LoginFailure(Base):
    """One failed sign-in: which name was tried, from where, when.  Never the password.

    Read to slow down guessing (auth/lockout.py); rows older than a day are deleted.
    """

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    #: The name as typed, folded to lower case (at most 200 characters).
    user_name: Mapped[str] = mapped_column(String(200))
    #: The client's address.
    client: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_login_failures_user_name", "user_name", "time"),
        Index("ix_login_failures_client", "client", "time"),
    )
