"""What a plan would do now: a `Preview` (counts by status and system, a sample, what is left
out and why) and the `notes` that say it in words.

Aggregates only: a preview of 100k sendings holds `SAMPLE_SIZE` ids in memory.  Reads only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin.resends.selection import Plan
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status

SAMPLE_SIZE = 20


@dataclass(slots=True)
class Preview:
    """What a plan would do now: counts, a sample, what is left out and why."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_system: dict[str, int] = field(default_factory=dict)
    sample: list[uuid.UUID] = field(default_factory=list)
    sent_included: int = 0
    sent_left_out: int = 0
    discarded_left_out: int = 0
    not_found: int = 0
    not_resendable: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ByStatus": [{"Status": k, "Count": v} for k, v in sorted(self.by_status.items())],
            "BySystem": [{"System": k, "Count": v} for k, v in sorted(self.by_system.items())],
            "Sample": [str(i) for i in self.sample],
            "SentIncluded": self.sent_included,
            "SentLeftOut": self.sent_left_out,
            "DiscardedLeftOut": self.discarded_left_out,
            "NotFound": self.not_found,
            "NotResendable": self.not_resendable,
        }


async def _count(session: AsyncSession, clauses: list[ColumnElement[bool]]) -> int:
    return int(await session.scalar(select(func.count()).select_from(Sending).where(*clauses)) or 0)


async def preview(session: AsyncSession, the_plan: Plan) -> Preview:
    """Counts by status and system, a sample of ids, and what is left out -- aggregates only,
    so a preview of 100k sendings holds 20 ids in memory."""
    result = Preview()
    members = the_plan.member_clauses()
    grouped = await session.execute(
        select(Sending.status, Sending.system, func.count())
        .where(*members)
        .group_by(Sending.status, Sending.system)
    )
    for status, system, number in grouped.all():
        result.total += number
        result.by_status[status] = result.by_status.get(status, 0) + number
        result.by_system[system] = result.by_system.get(system, 0) + number
    result.sample = list(
        (
            await session.scalars(
                select(Sending.id).where(*members).order_by(Sending.id).limit(SAMPLE_SIZE)
            )
        ).all()
    )
    base = the_plan.base_clauses()
    if the_plan.force:
        result.sent_included = result.by_status.get(Status.SENT.value, 0)
    elif the_plan.sent_left_out:
        result.sent_left_out = await _count(session, [*base, Sending.status == Status.SENT.value])
    if the_plan.exclude_discarded and Status.ABORTED in the_plan.statuses:
        discarded = Sending.status == Status.DISCARDED.value
        result.discarded_left_out = await _count(session, [*base, discarded])
    ids = the_plan.selection.sending_ids
    if ids:
        found = await _count(session, [Sending.id.in_(list(ids))])
        result.not_found = len(ids) - found
        stuck = [Status.PENDING.value, Status.SENDING.value, Status.CANCELLED.value]
        result.not_resendable = await _count(session, [*base, Sending.status.in_(stuck)])
    return result


def notes(preview_json: Mapping[str, Any], *, dry_run: bool) -> list[str]:
    """What a caller should know about what is (not) included, in words."""
    would = "would be" if dry_run else "are"
    lines: list[str] = []
    if n := preview_json.get("SentIncluded"):
        lines.append(
            f"{n} sending(s) already Sent {would} included because Force is true: their "
            "systems receive them again (same idempotency key)."
        )
    if n := preview_json.get("SentLeftOut"):
        lines.append(
            f"{n} sending(s) already Sent {would} left out: they were delivered. Send "
            '"Force": true to deliver them again.'
        )
    if n := preview_json.get("DiscardedLeftOut"):
        lines.append(
            f"{n} discarded sending(s) {would} left out: an admin gave up on them. Name them "
            "in SendingIds to resend them anyway."
        )
    if n := preview_json.get("NotResendable"):
        lines.append(
            f"{n} named sending(s) {would} left out: they are Pending, being sent, or Cancelled."
        )
    if n := preview_json.get("NotFound"):
        lines.append(f"{n} named sending(s) do not exist.")
    return lines
