"""Slowing down password guessing: failed sign-ins lock a user name, and a client address.

Rule, per key (the name as typed, folded to lower case; separately the client's address):
failures of the last `MEMORY` are counted, and once there are `threshold` of them the key is
locked for `first_lock` after the latest failure; every further `threshold` failures double the
lock (capped at `MEMORY`).  With the defaults: 5 wrong passwords for a name lock it for 15 min,
5 more for 30 min, then 1 h, ...  A correct sign-in forgets the name's failures.  While locked,
attempts are refused without checking the password (and are not counted), with the same words
whether or not the user exists.  Failures live in the database (``login_failures``), so a lock
holds across restarts and processes; times come from the injected clock.

Functions take a session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, select
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


async def _locked_until(
    db: AsyncSession, column: object, key: str, threshold: int, first: timedelta, now: datetime
) -> datetime | None:
    count, latest = (
        await db.execute(
            select(func.count(), func.max(LoginFailure.time)).where(
                column == key,  # type: ignore[arg-type]
                LoginFailure.time >= now - MEMORY,
            )
        )
    ).one()
    length = lock_length(int(count), threshold, first)
    if length is None or latest is None:
        return None
    until: datetime = latest + length  # max() keeps the column's type: an aware UTC datetime
    return until if now < until else None


async def locked_until(
    db: AsyncSession, policy: LockoutPolicy, *, name: str, client: str, now: datetime
) -> datetime | None:
    """When the later of the name's and the client's locks ends, or None when neither is locked."""
    by_name = await _locked_until(
        db, LoginFailure.user_name, fold_name(name), policy.per_name, policy.first_lock, now
    )
    by_client = await _locked_until(
        db, LoginFailure.client, client[:64], policy.per_client, policy.first_lock, now
    )
    ends = [t for t in (by_name, by_client) if t is not None]
    return max(ends) if ends else None


async def record_failure(db: AsyncSession, *, name: str, client: str, now: datetime) -> None:
    """Remember one failed sign-in (flushed); forget failures older than `MEMORY`."""
    await db.execute(delete(LoginFailure).where(LoginFailure.time < now - MEMORY))
    db.add(LoginFailure(time=now, user_name=fold_name(name), client=client[:64]))
    await db.flush()


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
