"""A system's health as deliveries see it: Healthy → Degraded → Down, and back on success.

Only retryable failures (timeouts, refused connections, 5xx) count: they say the system may be
unwell.  Any answer that is not one of those (a success, a 4xx about one invoice, a 429 asking
us to slow down) says it is up.  Failures count by *distinct sending*: a run of failures that
all follow one sending, while nothing else was tried, is that sending's problem (a receiver
choking on one invoice), so the system stays Healthy and the sending follows its retry policy.
Two distinct sendings failing in a row make the system Degraded; `threshold` of them make it
Down: its queue is held (not claimed) and probed with one sending at a time, so an outage
spends no invoice's attempts.

Health is written once per batch of outcomes: systems with failures one by one in name order
(the lane claim locks systems rows in name order too, so the two never deadlock), then every
system with only good news in two statements (`note_reachable`).  A system that stays healthy
is written at most about once a second (`SUCCESS_STAMP`), for its "last success" time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.systems.models import System

#: A healthy system's ``last_success_at`` is refreshed when older than this.
SUCCESS_STAMP: Final = timedelta(seconds=1)


@dataclass(slots=True)
class HealthNotes:
    """What one batch of outcomes says about one system, in order."""

    #: A success (or any answer that proves the system up) came after the failures before it.
    reachable: bool = False
    #: Retryable failures since the last proof of life, in order: (sending, reason).
    failures: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    #: The receiver asked us to wait until then (Retry-After or HTTP 429).
    pause_until: datetime | None = None

    def success(self) -> None:
        self.reachable = True
        self.failures.clear()

    def failure(self, sending_id: uuid.UUID, reason: str) -> None:
        self.failures.append((sending_id, reason))

    def pause(self, until: datetime) -> None:
        if self.pause_until is None or until > self.pause_until:
            self.pause_until = until


@dataclass(frozen=True, slots=True)
class CircuitState:
    """The health columns of one system."""

    circuit: str
    consecutive_failures: int
    failing_sendings: tuple[str, ...]
    down_since: datetime | None
    next_probe_at: datetime | None
    last_failure_reason: str | None


HEALTHY: Final = CircuitState("Healthy", 0, (), None, None, None)


def after(
    state: CircuitState,
    notes: HealthNotes,
    *,
    now: datetime,
    threshold: int,
    probe_interval: timedelta,
) -> CircuitState:
    """The health a system has after `notes` (pure; see the module docstring for the rules)."""
    if notes.reachable:
        state = CircuitState("Healthy", 0, (), None, None, state.last_failure_reason)
    if not notes.failures:
        return state
    failing = list(state.failing_sendings)
    count = state.consecutive_failures
    reason = notes.failures[-1][1]
    for sending_id, _ in notes.failures:
        count += 1
        key = str(sending_id)
        if key not in failing and len(failing) < max(threshold, 2):
            failing.append(key)
    distinct = len(failing)
    if distinct >= threshold:
        return CircuitState(
            "Down",
            count,
            tuple(failing),
            state.down_since if state.circuit == "Down" else now,
            now + probe_interval,
            reason,
        )
    circuit = "Degraded" if distinct >= 2 else "Healthy"
    return CircuitState(circuit, count, tuple(failing), None, None, reason)


async def note_reachable(
    connection: AsyncConnection,
    systems: Sequence[str],
    *,
    now: datetime,
    stamped: dict[str, datetime] | None = None,
) -> set[str]:
    """Mark `systems` Healthy and stamp their last success; returns those that were Down or
    Degraded before (they recovered).  Two statements whatever the number of systems, and
    rows are written only when something changes: a healthy system's row is not touched but
    to refresh a stamp older than `SUCCESS_STAMP`, and on PostgreSQL not even then while a
    claim holds it (``SKIP LOCKED``: the next batch stamps it), so outcomes never wait for
    claims here.  `stamped` (the caller's memo: system -> when it last stamped it) saves the
    stamp's statement while every system's stamp is fresh.
    """
    if not systems:
        return set()
    names = sorted(set(systems))
    recovered = await connection.execute(
        update(System)
        .where(
            System.name.in_(names),
            or_(System.circuit != "Healthy", System.consecutive_failures != 0),
        )
        .values(
            circuit="Healthy",
            consecutive_failures=0,
            failing_sendings=[],
            down_since=None,
            next_probe_at=None,
            last_success_at=now,
        )
        .returning(System.name)
    )
    found = set(recovered.scalars())
    if stamped is not None:
        names = [n for n in names if n not in stamped or now - stamped[n] >= SUCCESS_STAMP]
        if not names:
            return found
        stamped.update((name, now) for name in names)
    stale = or_(System.last_success_at.is_(None), System.last_success_at < now - SUCCESS_STAMP)
    if connection.dialect.name == "postgresql":
        free = (
            select(System.name)
            .where(System.name.in_(names), stale)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        await connection.execute(
            update(System).where(System.name.in_(free)).values(last_success_at=now)
        )
    else:
        await connection.execute(
            update(System).where(System.name.in_(names), stale).values(last_success_at=now)
        )
    return found


async def pause(connection: AsyncConnection, system: str, until: datetime) -> None:
    """Hold `system`'s lane until `until` (never shortening a longer pause)."""
    await connection.execute(
        update(System)
        .where(
            System.name == system,
            or_(System.paused_until.is_(None), System.paused_until < until),
        )
        .values(paused_until=until)
    )


async def apply_notes(
    connection: AsyncConnection,
    system: str,
    notes: HealthNotes,
    *,
    now: datetime,
    threshold: int,
    probe_interval: timedelta,
) -> tuple[bool, bool]:
    """Write what `notes` say about `system`, failures among them (a system whose notes are
    all good news goes through `note_reachable`, many at once).  Returns (recovered, went
    down): it was Down or Degraded and answered; it was not Down and is now."""
    recovered = went_down = False
    if notes.failures:
        row = (
            await connection.execute(
                select(
                    System.circuit,
                    System.consecutive_failures,
                    System.failing_sendings,
                    System.down_since,
                    System.next_probe_at,
                    System.last_failure_reason,
                )
                .where(System.name == system)
                .with_for_update()
            )
        ).one_or_none()
        if row is not None:
            before = CircuitState(
                row.circuit,
                row.consecutive_failures,
                tuple(row.failing_sendings or ()),
                row.down_since,
                row.next_probe_at,
                row.last_failure_reason,
            )
            state = after(
                before, notes, now=now, threshold=threshold, probe_interval=probe_interval
            )
            recovered = notes.reachable and before.circuit != "Healthy"
            went_down = state.circuit == "Down" and before.circuit != "Down"
            values: dict[str, object] = {
                "circuit": state.circuit,
                "consecutive_failures": state.consecutive_failures,
                "failing_sendings": list(state.failing_sendings),
                "down_since": state.down_since,
                "next_probe_at": state.next_probe_at,
                "last_failure_reason": state.last_failure_reason,
                "last_failure_at": now,
            }
            if notes.reachable:
                values["last_success_at"] = now
            await connection.execute(update(System).where(System.name == system).values(values))
    if notes.pause_until is not None:
        await pause(connection, system, notes.pause_until)
    return recovered, went_down
