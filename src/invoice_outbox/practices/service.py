"""Naming practices and reading their names.

Names are an admin's labels (never patient data): 1 to 200 characters of text, unique
regardless of case (two practices both called "Rosebank Clinic" could not be told apart in a
drop-down).  Reads never fail for a practice without a name: `label` falls back to its id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select, union
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from invoice_outbox.auth.models import UserPractice
from invoice_outbox.errors import Conflict, Invalid
from invoice_outbox.practices.models import Practice
from invoice_outbox.systems.models import SystemPractice

MAX_NAME: Final = 200
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class PracticeNameInvalid(Invalid):
    """A name that is empty, too long or holds control characters."""


class PracticeNameTaken(Conflict):
    """Another practice already has this name (case does not matter)."""


@dataclass(frozen=True, slots=True)
class PracticeInfo:
    id: uuid.UUID
    name: str | None

    @property
    def label(self) -> str:
        return label(self.id, self.name)


def label(practice_id: uuid.UUID, name: str | None) -> str:
    """What a page calls a practice: its name, or "Practice 1c2d9508" while it has none."""
    return name if name else f"Practice {str(practice_id)[:8]}"


def clean_name(raw: str) -> str:
    """The name as stored (spaces collapsed); `PracticeNameInvalid` when it cannot be one."""
    name = " ".join(raw.split())
    if not name or len(name) > MAX_NAME or _CONTROL.search(raw):
        raise PracticeNameInvalid(f"a practice name is 1 to {MAX_NAME} characters of text")
    return name


async def set_name(
    session: AsyncSession, practice_id: uuid.UUID, raw: str, *, now: datetime
) -> tuple[Practice, str | None]:
    """Name (or rename) a practice; returns it and its previous name (flushed, not
    committed).  `PracticeNameTaken` when another practice has the name."""
    name = clean_name(raw)
    taken = await session.scalar(
        select(Practice.id).where(
            func.lower(Practice.name) == name.lower(), Practice.id != practice_id
        )
    )
    if taken is not None:
        raise PracticeNameTaken(f"another practice is already called {name!r}")
    practice = await session.get(Practice, practice_id)
    previous = None if practice is None else practice.name
    if practice is None:
        practice = Practice(id=practice_id, name=name, updated_at=now)
        session.add(practice)
    else:
        practice.name, practice.updated_at = name, now
    await session.flush()
    return practice, previous


async def practice_names(
    connection: AsyncConnection | AsyncSession, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of those of `ids` that have one (one indexed read)."""
    if not ids:
        return {}
    rows = await connection.execute(
        select(Practice.id, Practice.name).where(Practice.id.in_(sorted(set(ids))))
    )
    return {row[0]: row[1] for row in rows}


async def known_practices(
    connection: AsyncConnection | AsyncSession, only: Collection[uuid.UUID] | None = None
) -> list[PracticeInfo]:
    """Every practice this service knows of (named, served by a system, or with users), by
    label; `only` narrows to those (a practice user's own).  Small tables only: no scan of
    the sendings."""
    ids_query = union(
        select(Practice.id.label("id")),
        select(SystemPractice.practice_id.label("id")),
        select(UserPractice.practice_id.label("id")),
    )
    ids = {row[0] for row in await connection.execute(ids_query)}
    if only is not None:
        ids = (ids | set(only)) & set(only)
    names = await practice_names(connection, ids)
    found = [PracticeInfo(i, names.get(i)) for i in ids]
    return sorted(found, key=lambda p: (p.name is None, p.label.lower(), str(p.id)))


def find_practice(practices: Collection[PracticeInfo], typed: str) -> PracticeInfo | None:
    """The practice whose name (any case) or id (whole, or its first 8+ characters) is
    `typed`; None when none or several match."""
    text = typed.strip().lower()
    if not text:
        return None
    by_name = [p for p in practices if p.name is not None and p.name.lower() == text]
    if len(by_name) == 1:
        return by_name[0]
    if len(text) >= 8:
        by_id = [p for p in practices if str(p.id).startswith(text)]
        if len(by_id) == 1:
            return by_id[0]
    return None
