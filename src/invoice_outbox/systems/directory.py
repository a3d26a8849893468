"""Which systems exist and which practices each serves: cached for intake, never stale for long.

Intake needs, for every submission, the names of the systems and the systems of the practice.
Reading them from the database each time was two of the round trips a submission cost; they
change a few times a day.  `SystemsDirectory` keeps one `SystemsSnapshot` per process:

- every change of the systems' names or of the practices they serve bumps
  ``systems_version.version`` in the same transaction (database triggers, migration 0007), and
  on PostgreSQL notifies the ``invoice_outbox_systems`` channel when it commits;
- a process that listens on that channel (`listen_for_changes`, run by ``serve`` and
  ``import``) drops its snapshot when told, and trusts it in between;
- a process that does not listen (SQLite, a PostgreSQL listener that is reconnecting) reads
  the version before each use, one tiny query, and reloads when it moved.

A reload that raced a change is not kept (`invalidate` counts generations), so a snapshot
older than the last notification is never stored.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.systems.models import System, SystemPractice, SystemsVersion

#: The channel the systems_version triggers notify (migration 0007).
CHANNEL = "invoice_outbox_systems"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SystemsSnapshot:
    """The systems as of one `version`: every name, and each practice's systems (sorted)."""

    version: int
    names: frozenset[str]
    by_practice: Mapping[uuid.UUID, tuple[str, ...]] = field(default_factory=dict)

    def serving(self, practice_id: uuid.UUID) -> tuple[str, ...]:
        """The systems a practice's invoices go to by default, by name."""
        return self.by_practice.get(practice_id, ())


async def load_snapshot(connection: AsyncConnection) -> SystemsSnapshot:
    """Read the version, the systems and their practices in one statement (one snapshot)."""
    rows = await connection.execute(
        select(SystemsVersion.version, System.name, SystemPractice.practice_id)
        .select_from(SystemsVersion)
        .outerjoin(System, true())
        .outerjoin(SystemPractice, SystemPractice.system == System.name)
        .where(SystemsVersion.id == 1)
    )
    number = 0
    names: set[str] = set()
    by_practice: dict[uuid.UUID, list[str]] = {}
    for version, name, practice_id in rows:
        number = int(version)
        if name is not None:
            names.add(name)
        if practice_id is not None:
            by_practice.setdefault(practice_id, []).append(name)
    return SystemsSnapshot(
        version=number,
        names=frozenset(names),
        by_practice={p: tuple(sorted(s)) for p, s in by_practice.items()},
    )


class SystemsDirectory:
    """The process's cache of `SystemsSnapshot` (see the module docstring for when it reloads)."""

    def __init__(self) -> None:
        self._snapshot: SystemsSnapshot | None = None
        self._generation = 0
        self._listening = False
        #: Snapshots loaded so far (tests and benchmarks read it).
        self.loads = 0

    @property
    def listening(self) -> bool:
        """Whether change notifications arrive now (PostgreSQL, listener connected)."""
        return self._listening

    @property
    def cached(self) -> bool:
        """Whether a snapshot is held (a change notification drops it)."""
        return self._snapshot is not None

    def invalidate(self) -> None:
        """Forget the snapshot: systems changed (a notification, or this process changed them)."""
        self._snapshot = None
        self._generation += 1

    def set_listening(self, live: bool) -> None:
        """Whether notifications arrive now.  Either way what was cached may have missed one."""
        self._listening = live
        self.invalidate()

    async def current(self, connection: AsyncConnection) -> SystemsSnapshot:
        """The systems as they are now (within the notification's delay, when listening)."""
        snapshot = self._snapshot
        if snapshot is not None:
            if self._listening:
                return snapshot
            version = await connection.scalar(
                select(SystemsVersion.version).where(SystemsVersion.id == 1)
            )
            if version == snapshot.version:
                return snapshot
        generation = self._generation
        snapshot = await load_snapshot(connection)
        self.loads += 1
        if generation == self._generation:
            self._snapshot = snapshot
        return snapshot


async def listen_for_changes(
    conninfo: str, directory: SystemsDirectory, *, retry_seconds: float = 2.0
) -> None:
    """PostgreSQL: drop `directory`'s snapshot whenever systems change, until cancelled.

    While the connection is down the directory checks the version itself (not listening).
    """
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                directory.set_listening(True)
                async for _ in conn.notifies():
                    directory.invalidate()
        except psycopg.Error as exc:
            log.warning(
                "systems listen connection lost",
                extra={"action": "systems.listen_lost", "error": type(exc).__name__},
            )
        finally:
            directory.set_listening(False)
        await asyncio.sleep(retry_seconds)
