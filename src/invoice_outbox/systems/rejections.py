"""The rejection catalogue: a recipient's code in plain words, keyed for cause groups.

Entries come from the reviewed data file `rejections.toml` (package data, with a `version`)
and from administrators' overrides per system (table ``rejection_overrides``), which win.
Looking up (system, kind, code) tries, in order: the system's override, the file's entry
for the system, the file's entry for the system's kind.  A code found nowhere is *unknown*:
shown as such, with the raw code.

Each lookup also gives the cause slug a rejected sending is recorded under, so cause groups
key on catalogue entries: ``code-k-<kind>-<code>`` for a kind's entry (every system of the
kind shares the group: "invalid member number x37" is one group with one fix) and
``code-s-<system>-<code>`` for a system's own entry or an unknown code (an override added
later explains the sendings already recorded under it).  Slugs are lower-case and cut to fit;
the raw code is kept on the sending.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from invoice_outbox.systems.models import RejectionOverride

__all__ = [
    "PREFIX",
    "WHO",
    "Catalogue",
    "Entry",
    "delete_override",
    "file_catalogue",
    "load_catalogue",
    "put_override",
    "rejection_reason",
    "rejection_slug",
]

PREFIX: Final = "code-"
#: Who must act on a rejection.
WHO: Final = ("practice", "administrator", "software vendor")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SCOPE_LENGTH: Final = 24
_CODE_LENGTH: Final = 24


def _slug(text: str, cap: int) -> str:
    return _NOT_SLUG.sub("-", text.lower()).strip("-")[:cap].strip("-") or "blank"


def rejection_slug(scope: str, name: str, code: str) -> str:
    """The cause slug of `code` under a kind (`scope` "k") or a system (`scope` "s")."""
    return f"{PREFIX}{scope}-{_slug(name, _SCOPE_LENGTH)}-{_slug(code, _CODE_LENGTH)}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One catalogue entry.  Its words are ours (reviewed), never the recipient's."""

    code: str
    label: str
    meaning: str
    fix: str
    who: str
    resend_helps: bool
    #: Where it comes from: "file" or "override".
    source: str = "file"
    kind: str | None = None
    system: str | None = None

    def view(self) -> dict[str, Any]:
        """The API's shape of an entry."""
        return {
            "Code": self.code,
            "Label": self.label,
            "Meaning": self.meaning,
            "Fix": self.fix,
            "WhoMustAct": self.who,
            "ResendHelps": self.resend_helps,
            "Source": self.source,
            "Kind": self.kind,
            "System": self.system,
        }


def _entry(raw: Mapping[str, Any], where: str) -> Entry:
    missing = [
        k for k in ("code", "label", "meaning", "fix", "who", "resend_helps") if k not in raw
    ]
    if missing or ("kind" in raw) == ("system" in raw):
        raise ValueError(f"{where}: needs kind or system, and {', '.join(missing) or 'no more'}")
    if raw["who"] not in WHO:
        raise ValueError(f"{where}: who must be one of {', '.join(WHO)}")
    return Entry(
        code=str(raw["code"]),
        label=str(raw["label"]),
        meaning=str(raw["meaning"]),
        fix=str(raw["fix"]),
        who=str(raw["who"]),
        resend_helps=bool(raw["resend_helps"]),
        kind=raw.get("kind"),
        system=raw.get("system"),
    )


class Catalogue:
    """The file's entries plus overrides; immutable once built."""

    def __init__(
        self, version: int, entries: Iterable[Entry], overrides: Iterable[Entry] = ()
    ) -> None:
        self.version = version
        self.entries = tuple(entries)
        self.overrides = tuple(overrides)
        self._by_kind = {(e.kind, e.code): e for e in self.entries if e.kind}
        self._by_system: dict[tuple[str, str], Entry] = {
            (e.system, e.code): e for e in self.entries if e.system
        }
        self._by_system.update({(e.system or "", e.code): e for e in self.overrides})
        self._by_slug: dict[str, Entry] = {}
        for e in self.entries:
            if e.kind:
                self._by_slug[rejection_slug("k", e.kind, e.code)] = e
        for (system, code), e in self._by_system.items():
            self._by_slug[rejection_slug("s", system or "", code)] = e

    def with_overrides(self, overrides: Iterable[Entry]) -> Catalogue:
        return Catalogue(self.version, self.entries, overrides)

    def lookup(self, system: str, kind: str | None, code: str) -> tuple[str, Entry | None]:
        """(cause slug, entry or None for an unknown code) for `code` from `system`."""
        entry = self._by_system.get((system, code))
        if entry is not None:
            return rejection_slug("s", system, code), entry
        if kind:
            entry = self._by_kind.get((kind, code))
            if entry is not None:
                return rejection_slug("k", kind, code), entry
        return rejection_slug("s", system, code), None

    def by_slug(self, slug: str) -> Entry | None:
        """The entry a cause slug was recorded under (None: unknown, or not a rejection)."""
        return self._by_slug.get(slug)

    def for_system(self, system: str, kind: str | None) -> list[Entry]:
        """What a system's codes mean: its overrides and own entries, then its kind's."""
        own = {code: e for (name, code), e in self._by_system.items() if name == system}
        if kind:
            for (entry_kind, code), e in self._by_kind.items():
                if entry_kind == kind:
                    own.setdefault(code, e)
        return [own[code] for code in sorted(own)]


def rejection_reason(system: str, what: str, code: str, entry: Entry | None) -> str:
    """A rejected sending's Reason: names the system, the code and what it means (the
    catalogue's words, never the recipient's: those may carry patient data)."""
    if entry is None:
        return (
            f"{system} rejected the {what} with code {code}, which the rejection catalogue "
            "does not explain yet"
        )
    return f"{system} rejected the {what}: code {code}, {entry.label}"


def _parse(text: str) -> Catalogue:
    data = tomllib.loads(text)
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise ValueError("rejections.toml: version must be a positive integer")
    entries = [
        _entry(raw, f"rejections.toml entry {i + 1}")
        for i, raw in enumerate(data.get("entries", []))
    ]
    return Catalogue(version, entries)


@functools.cache
def file_catalogue() -> Catalogue:
    """The catalogue file shipped with the package (read once)."""
    text = resources.files("invoice_outbox.systems").joinpath("rejections.toml").read_text("utf-8")
    return _parse(text)


def override_entry(row: RejectionOverride) -> Entry:
    return Entry(
        code=row.code,
        label=row.label,
        meaning=row.meaning,
        fix=row.fix,
        who=row.who,
        resend_helps=row.resend_helps,
        source="override",
        system=row.system,
    )


async def load_catalogue(executor: AsyncConnection | AsyncSession) -> Catalogue:
    """The file's catalogue with every administrator's override (one small read)."""
    if isinstance(executor, AsyncSession):
        rows = (await executor.scalars(select(RejectionOverride))).all()
        return file_catalogue().with_overrides(override_entry(r) for r in rows)
    result = await executor.execute(select(*RejectionOverride.__table__.columns))
    overrides = [
        Entry(
            code=r.code,
            label=r.label,
            meaning=r.meaning,
            fix=r.fix,
            who=r.who,
            resend_helps=r.resend_helps,
            source="override",
            system=r.system,
        )
        for r in result
    ]
    return file_catalogue().with_overrides(overrides)


# Administrators' overrides -----------------------------------------------------------------


async def put_override(
    session: AsyncSession, system: str, entry: Entry, *, actor: str, now: datetime
) -> tuple[RejectionOverride, bool]:
    """Add or replace the override of (`system`, `entry.code`).  Returns it and whether it
    was created.  The caller checks the system exists and commits."""
    row = await session.get(RejectionOverride, (system, entry.code))
    created = row is None
    if row is None:
        row = RejectionOverride(system=system, code=entry.code)
        session.add(row)
    row.label, row.meaning, row.fix = entry.label, entry.meaning, entry.fix
    row.who, row.resend_helps = entry.who, entry.resend_helps
    row.updated_at, row.updated_by = now, actor[:200]
    await session.flush()
    return row, created


async def delete_override(session: AsyncSession, system: str, code: str) -> bool:
    """Remove the override of (`system`, `code`); False when there was none."""
    row = await session.get(RejectionOverride, (system, code))
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True
