"""One password check for every way in: the token route (``POST /token``) and the dashboard.

`check_password` applies the lock-out (`invoice_outbox.auth.lockout`) to each attempt,
whoever asks, so a name or client locked out of one front end is locked out of the other, and
the limit holds under any number of concurrent attempts:

1. In one short transaction, serialized per name and per client (`serialize_keys`), the
   attempt is recorded as a failure *before* the password is checked, and the failures before
   it decide whether the key is locked.  Locked: the record is rolled back (attempts refused
   while locked do not count) and the password is never checked.  So of any number of
   concurrent attempts, at most `threshold` get to check a password.
2. The password is checked (argon2, in a thread).
3. Right: the name's failures are forgotten (the one recorded in step 1 with them).  Wrong: the
   failure stays recorded; if it is the one that (re)started a pause, the lock-out is audited
   (``session.lockout``) and logged.

Each step commits its own transaction, so it takes the session factory, not a session.
Passwords are never stored or logged; messages do not say whether a name exists.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from invoice_outbox.admin import audit
from invoice_outbox.auth.lockout import (
    LockoutPolicy,
    forget_failures,
    locked_until,
    record_failure,
    serialize_keys,
)
from invoice_outbox.auth.models import User
from invoice_outbox.auth.principal import Principal
from invoice_outbox.auth.users import authenticate

log = logging.getLogger(__name__)

#: Shown to a locked name or client, whatever front end they use.
LOCKED: Final = (
    "Too many failed sign-ins. Sign-in is paused for a while; try again later or ask an "
    "administrator."
)


class Outcome(enum.Enum):
    SIGNED_IN = "signed_in"
    WRONG = "wrong"  # wrong password or unknown name (not told apart)
    LOCKED = "locked"  # refused without checking the password


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """What an attempt came to; `principal` only when signed in."""

    outcome: Outcome
    principal: Principal | None = None
    locked_until: datetime | None = None


async def check_password(
    sessions: async_sessionmaker[AsyncSession],
    *,
    name: str,
    password: str,
    client: str,
    now: datetime,
    policy: LockoutPolicy,
    via: str,
) -> PasswordCheck:
    """Check `name`'s `password` under the lock-out; `via` names the front end (for the audit)."""
    async with sessions() as db:
        await serialize_keys(db, name=name, client=client)
        attempt = await record_failure(db, name=name, client=client, now=now)
        until = await locked_until(
            db, policy, name=name, client=client, now=now, before_id=attempt.id
        )
        if until is not None:
            await db.rollback()  # refused while locked: not counted
            return PasswordCheck(Outcome.LOCKED, locked_until=until)
        pause = await locked_until(db, policy, name=name, client=client, now=now)
        await db.commit()

    async with sessions() as db:
        principal = await authenticate(db, name, password)
        if principal is not None:
            await forget_failures(db, name=name)
            await db.commit()
            return PasswordCheck(Outcome.SIGNED_IN, principal=principal)
        if pause is not None:
            await _record_lockout(db, name=name, client=client, now=now, via=via, until=pause)
            await db.commit()
        return PasswordCheck(Outcome.WRONG, locked_until=pause)


async def _record_lockout(
    db: AsyncSession, *, name: str, client: str, now: datetime, via: str, until: datetime
) -> None:
    """This failure (re)started a pause: audit it (the name only when it exists) and log it."""
    known = await db.scalar(select(User.id).where(User.name == name))
    await audit.record(
        db,
        principal=audit.Actor(name="anonymous", role="anonymous"),
        action="session.lockout",
        reason="Too many failed sign-ins",
        target=name if known is not None else None,
        details={"Client": client, "Via": via},
        now=now,
    )
    log.warning(
        "sign-in paused after failed attempts",
        extra={
            "action": "auth.lockout",
            "actor": "anonymous",
            "client": client,
            "via": via,
            "known_user": known is not None,
            "until": until.isoformat(),
        },
    )
