"""Slowing down password guessing: failed sign-ins lock a user name, and a client address.

Rule, per key (the name as typed, folded to lower case; separately the client's address):
failures of the last `MEMORY` are counted, and once there are `threshold` of them the key is
locked for `first_lock` after the latest failure; every further `threshold` failures double the
lock (capped at `MEMORY`).  With the defaults: 5 wrong passwords for a name lock it for 15 min,
5 more for 30 min, then 1 h, ...  A correct sign-in forgets the name's failures.  While locked,
attempts are refused without checking the password (and are not counted), with the same words
whether or not the user exists.  Failures live in the database (``login_failures``), so a lock
holds across restarts and processes; times come from the injected clock.

Concurrent attempts on one key are serialized (`serialize_keys`: PostgreSQL advisory locks for
the transaction; on SQLite the first write takes the database's single write lock), so that an
attempt's failure is recorded before the next attempt looks at the count
(`invoice_outbox.admin.sign_in` does this for every password check).

Functions take a session and never commit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.auth.models import LoginFailure
from invoice_outbox.settings import Settings

#: How long failures are remembered, and the longest lock.
MEMORY: Final = timedelta(hours=24)
#: Doublings stop here (the cap at MEMORY is reached long before).
_MAX_DOUBLINGS: Final = 16


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """Thresholds and the first lock's length (from settings)."""

    per_name: int
    per_client: int
    first_lock: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> LockoutPolicy:
        return cls(
            per_name=settings.login_max_failures,
            per_client=settings.login_max_failures_per_client,
            first_lock=timedelta(seconds=settings.login_lockout_seconds),
        )


def fold_name(name: str) -> str:
    """The key failures of a user name are counted under."""
    return name.strip().lower()[:200]


def lock_length(failures: int, threshold: int, first_lock: timedelta) -> timedelta | None:
    """How long `failures` remembered failures lock a key after the latest (None: not locked)."""
    if failures < threshold:
        return None
    doublings = min((failures - threshold) // threshold, _MAX_DOUBLINGS)
    length: timedelta = first_lock * (2**doublings)
    return min(length, MEMORY)


def _client_key(client: str) -> str:
    return client[:64]


def _advisory_key(kind: str, key: str) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``, stable across processes."""
    digest = hashlib.blake2b(f"invoice-outbox:login:{kind}:{key}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def serialize_keys(db: AsyncSession, *, name: str, client: str) -> None:
    """Wait until no other transaction is counting or recording failures for this name or this
    client; hold that until this transaction ends.

    PostgreSQL: transaction-scoped advisory locks, taken in a fixed order (no deadlock between
    two attempts).  SQLite: nothing to do here, as long as the transaction's first statement
    writes (`record_failure` deletes first): SQLite lets one writer in at a time.
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_advisory_key("name", fold_name(name)), _advisory_key("client", client)})
    for key in keys:
        await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def _locked_until(
    db: AsyncSession,
    column: object,
    key: str,
    threshold: int,
    first: timedelta,
    now: datetime,
    before_id: int | None,
) -> datetime | None:
    conditions: list[ColumnElement[bool]] = [
        column == key,  # type: ignore[list-item]
        LoginFailure.time >= now - MEMORY,
    ]
    if before_id is not None:
        conditions.append(LoginFailure.id < before_id)
    count, latest = (
        await db.execute(select(func.count(), func.max(LoginFailure.time)).where(*conditions))
    ).one()
    length = lock_length(int(count), threshold, first)
    if length is None or latest is None:
        return None
    until: datetime = latest + length  # max() keeps the column's type: an aware UTC datetime
    return until if now < until else None


async def locked_until(
    db: AsyncSession,
    policy: LockoutPolicy,
    *,
    name: str,
    client: str,
    now: datetime,
    before_id: int | None = None,
) -> datetime | None:
    """When the later of the name's and the client's locks ends, or None when neither is locked.

    `before_id`: count only failures recorded before that one (the state an attempt found).
    """
    by_name = await _locked_until(
        db,
        LoginFailure.user_name,
        fold_name(name),
        policy.per_name,
        policy.first_lock,
        now,
        before_id,
    )
    by_client = await _locked_until(
        db,
        LoginFailure.client,
        _client_key(client),
        policy.per_client,
        policy.first_lock,
        now,
        before_id,
    )
    ends = [t for t in (by_name, by_client) if t is not None]
    return max(ends) if ends else None


async def record_failure(
    db: AsyncSession, *, name: str, client: str, now: datetime
) -> LoginFailure:
    """Remember one failed sign-in (flushed); forget failures older than `MEMORY`.

    Writes before it reads anything, so on SQLite it runs under the write lock.
    """
    await db.execute(delete(LoginFailure).where(LoginFailure.time < now - MEMORY))
    failure = LoginFailure(time=now, user_name=fold_name(name), client=_client_key(client))
    db.add(failure)
    await db.flush()
    return failure


async def forget_failures(db: AsyncSession, *, name: str) -> None:
    """A correct sign-in: the name's failures no longer count (the client's still do)."""
    await db.execute(delete(LoginFailure).where(LoginFailure.user_name == fold_name(name)))


async def unlock(db: AsyncSession, *, name: str) -> int:
    """Forget every remembered failed sign-in of user name `name` (an admin lifts a pause
    early).  Returns how many were forgotten.  Failures counted per client address remain."""
    mine = LoginFailure.user_name == fold_name(name)
    count = await db.scalar(select(func.count()).select_from(LoginFailure).where(mine))
    await db.execute(delete(LoginFailure).where(mine))
    return int(count or 0)
