"""Local users: create, authenticate.  Functions take a session and never commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.auth.models import User, UserPractice
from invoice_outbox.auth.passwords import hash_password, verify_password
from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.errors import Invalid

MIN_PASSWORD_LENGTH = 10


class UserError(Invalid, ValueError):
    """A user cannot be created as asked (duplicate name, weak password, missing practice)."""


def principal_of(user: User) -> Principal:
    """The principal a signed-in user acts as."""
    return Principal(
        subject=user.name,
        role=Role(user.role),
        practices=frozenset(link.practice_id for link in user.practices),
    )


async def add_user(
    session: AsyncSession,
    *,
    name: str,
    password: str,
    role: Role,
    practices: Iterable[uuid.UUID] = (),
    now: datetime,
) -> User:
    """Create a user.  Practice users must belong to at least one practice; admins to none."""
    name = name.strip()
    practice_ids = sorted(set(practices))
    if not name:
        raise UserError("a user needs a name")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"passwords must be at least {MIN_PASSWORD_LENGTH} characters long")
    if role is Role.PRACTICE and not practice_ids:
        raise UserError("a practice user needs at least one --practice")
    if role is Role.ADMIN and practice_ids:
        raise UserError("admins see every practice; do not give them --practice")
    existing = await session.scalar(select(User.id).where(User.name == name))
    if existing is not None:
        raise UserError(f"a user named {name!r} already exists")
    user = User(
        name=name,
        password_hash=await asyncio.to_thread(hash_password, password),
        role=role.value,
        created_at=now,
        practices=[UserPractice(practice_id=p) for p in practice_ids],
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(session: AsyncSession, name: str, password: str) -> Principal | None:
    """The principal for a correct name and password, else None (same work either way).

    Hashing runs in a thread: argon2 is deliberately slow and must not stall the event loop.
    """
    user = await session.scalar(select(User).where(User.name == name))
    stored = user.password_hash if user else None
    if not await asyncio.to_thread(verify_password, stored, password):
        return None
    assert user is not None  # verify_password is False without a stored hash
    return principal_of(user)


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, by name (their practices loaded)."""
    return list((await session.scalars(select(User).order_by(User.name))).all())


async def set_password(session: AsyncSession, *, name: str, password: str) -> User:
    """Give user `name` a new password (`UserError` when there is no such user or the
    password is too short).  Their dashboard sessions end: whoever knew the old one is out."""
    from invoice_outbox.auth.models import WebSession

    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"passwords must be at least {MIN_PASSWORD_LENGTH} characters long")
    user = await session.scalar(select(User).where(User.name == name.strip()))
    if user is None:
        raise UserError(f"there is no user named {name.strip()!r}")
    user.password_hash = await asyncio.to_thread(hash_password, password)
    await session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    await session.flush()
    return user
