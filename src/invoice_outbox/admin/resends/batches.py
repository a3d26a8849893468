"""Running a job in keyset batches, and what the batches changed.

`next_batch` gives the members after the job's cursor, in id order (named ids walk the job's
own sorted list, filters the table); `job_members` reads what a job that ran changed (its
batches' audit links), or what a dry run would change.  Reads only: `resend_loop` writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin.models import AuditEntry, AuditLink, ResendJob
from invoice_outbox.admin.resends.selection import Plan, job_plan
from invoice_outbox.sendings.models import Sending


async def next_batch(
    session: AsyncSession, job: ResendJob, the_plan: Plan, *, size: int
) -> tuple[list[uuid.UUID], uuid.UUID | None]:
    """The next members after the job's cursor, in id order, and the new cursor.

    Named ids walk the job's own sorted list (bounded); filters walk the table by id.  The
    new cursor is None when nothing is left.
    """
    after = _cursor_after(job)
    named = the_plan.selection.sending_ids
    if named:
        window = [i for i in named if after is None or i > after][:size]
        if not window:
            return [], None
        members = the_plan.member_clauses(with_ids=False)
        found = await session.scalars(
            select(Sending.id).where(*members, Sending.id.in_(window)).order_by(Sending.id)
        )
        return list(found.all()), window[-1]
    statement = select(Sending.id).where(*the_plan.member_clauses())
    if after is not None:
        statement = statement.where(Sending.id > after)
    ids = list((await session.scalars(statement.order_by(Sending.id).limit(size))).all())
    return ids, (ids[-1] if ids else None)


def _cursor_after(job: ResendJob) -> uuid.UUID | None:
    raw = (job.cursor or {}).get("After")
    return None if raw is None else uuid.UUID(raw)


# What a job did, and what a dry run would do -------------------------------------------------

#: Rows a job's page lists (the counts cover every member).
SHOWN_MEMBERS = 50


async def job_members(
    session: AsyncSession, job: ResendJob, columns: Sequence[Any], *, limit: int = SHOWN_MEMBERS
) -> tuple[list[Any], dict[str, int]]:
    """For a job that ran: the first `limit` sendings it changed (`columns` of each, by
    SendingTime) and how many of all it changed are in each status now (delivered, failed
    again, still waiting...).  For a dry run: the first sendings it would change, and the
    counts by status now.  Reads the job's audit links (batches) or its plan's selection."""
    if job.dry_run:
        clauses = job_plan(job).member_clauses()
    else:
        changed = (
            select(AuditLink.sending_id)
            .join(AuditEntry, AuditEntry.id == AuditLink.entry_id)
            .where(
                AuditEntry.action == f"{job.action}_job.batch",
                AuditEntry.time >= job.created_at,
                AuditEntry.target == str(job.id),
            )
        )
        clauses = [Sending.id.in_(changed)]
    counts = {
        status: int(n)
        for status, n in await session.execute(
            select(Sending.status, func.count()).where(*clauses).group_by(Sending.status)
        )
    }
    rows = (
        await session.execute(
            select(*columns).where(*clauses).order_by(Sending.sending_time, Sending.id).limit(limit)
        )
    ).all()
    return list(rows), counts
