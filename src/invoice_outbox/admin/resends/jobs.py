"""The job records: creating a `ResendJob` (a dry run, or a job for `resend_loop`), and the
API's picture of jobs.

A job's members are the sendings matching its plan when the snapshot was taken; a real run
may reuse a dry run's snapshot, selection and count (PreviewJobId).  Starting a job is
audited.  Functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin import audit
from invoice_outbox.admin.models import ResendJob
from invoice_outbox.admin.resends.previews import notes, preview
from invoice_outbox.admin.resends.refusals import (
    DryRunNotFound,
    ResendInvalid,
    ResendNeedsCorrection,
)
from invoice_outbox.admin.resends.selection import Plan, Selection, discard_plan, plan
from invoice_outbox.auth.principal import Principal
from invoice_outbox.sendings.causes import describe
from invoice_outbox.systems.rejections import load_catalogue

DEFAULT_RATE = 500


async def create_job(
    session: AsyncSession,
    *,
    principal: Principal,
    selection: Selection | None,
    force: bool,
    dry_run: bool,
    reason: str,
    now: datetime,
    preview_job_id: uuid.UUID | None = None,
    rate_per_second: int = DEFAULT_RATE,
    action: str = "resend",
) -> ResendJob:
    """A dry run (done at once: the preview) or a job for the background runner (Running).

    `action` ``discard`` makes a discard job (`discard_plan`: Aborted members only) instead.

    With `preview_job_id` the job reuses that dry run's snapshot time, selection (when none
    is given; a different one is refused) and its count of members.
    """
    snapshot_at = now
    previewed: ResendJob | None = None
    if preview_job_id is not None:
        if dry_run:
            raise ResendInvalid("PreviewJobId is for real runs; a dry run takes its own snapshot")
        previewed = await session.get(ResendJob, preview_job_id)
        if previewed is None or not previewed.dry_run:
            raise DryRunNotFound(preview_job_id)
        previewed_plan = Plan.from_json(previewed.selection, force=previewed.force)
        action = previewed.action
        if selection is None:
            selection = previewed_plan.selection
        if selection != previewed_plan.selection or force != previewed.force:
            raise ResendInvalid(
                "the selection or Force differs from the dry run named by PreviewJobId"
            )
        snapshot_at = previewed.snapshot_at
    if selection is None:
        selection = Selection()
    if selection.cause is not None and not dry_run and not force:
        info = describe(selection.cause, await load_catalogue(session))
        if info.needs_correction:
            raise ResendNeedsCorrection(info.label)
    the_plan = discard_plan(selection) if action == "discard" else plan(selection, force=force)
    summary = (
        dict(previewed.selection.get("Preview") or {})
        if previewed is not None
        else (await preview(session, the_plan)).to_json()
    )
    total = previewed.total if previewed is not None else _total(summary)
    job = ResendJob(
        id=uuid.uuid4(),
        created_at=now,
        created_by=principal.subject[:200],
        reason=reason,
        status="Done" if dry_run else "Running",
        dry_run=dry_run,
        action=action,
        force=force,
        selection={
            **the_plan.to_json(),
            "Preview": summary,
            "PreviewJobId": None if preview_job_id is None else str(preview_job_id),
        },
        snapshot_at=snapshot_at,
        total=total,
        done=0,
        skipped=0,
        failed=0,
        rate_per_second=rate_per_second,
        cursor=None,
        finished_at=now if dry_run else None,
    )
    session.add(job)
    await session.flush()
    if not dry_run:
        await audit.record(
            session,
            principal=principal,
            action=f"{action}_job.start",
            reason=reason,
            practice_id=selection.practice_id,
            target=str(job.id),
            affected=list(selection.sending_ids),
            affected_count=total,
            details={
                "Force": force,
                "Selection": _selection_summary(selection),
                "Total": total,
                "SentIncluded": summary.get("SentIncluded", 0),
                "PreviewJobId": None if preview_job_id is None else str(preview_job_id),
            },
            now=now,
        )
    return job


def _selection_summary(selection: Selection) -> dict[str, Any]:
    """The selection for the audit entry: named ids are counted (the entry's `Affected` lists
    them), the rest as given."""
    value = selection.to_json()
    value["SendingIdCount"] = len(value.pop("SendingIds"))
    return value


def _total(summary: Mapping[str, Any]) -> int:
    return sum(int(item["Count"]) for item in summary.get("ByStatus") or ())


def job_view(job: ResendJob) -> dict[str, Any]:
    """The API's picture of a job (PascalCase, in this order)."""
    selection = job.selection or {}
    summary = selection.get("Preview") or {}
    return {
        "JobId": job.id,
        "Status": job.status,
        "DryRun": job.dry_run,
        "Action": job.action,
        "Force": job.force,
        "Total": job.total,
        "Done": job.done,
        "Skipped": job.skipped,
        "Failed": job.failed,
        "Reason": job.reason,
        "CreatedBy": job.created_by,
        "CreatedAt": job.created_at,
        "SnapshotAt": job.snapshot_at,
        "FinishedAt": job.finished_at,
        "Error": job.error,
        "RatePerSecond": job.rate_per_second,
        "Batches": int((job.cursor or {}).get("Batches", 0)),
        "Selection": {
            "Cause": selection.get("Cause"),
            "SendingIdCount": len(selection.get("SendingIds") or ()),
            "Filter": selection.get("Filter"),
            "Statuses": list(selection.get("Statuses") or ()),
            "PreviewJobId": selection.get("PreviewJobId"),
        },
        "ByStatus": list(summary.get("ByStatus") or ()),
        "BySystem": list(summary.get("BySystem") or ()),
        "Sample": list(summary.get("Sample") or ()),
        "SentIncluded": int(summary.get("SentIncluded") or 0),
        "SentLeftOut": int(summary.get("SentLeftOut") or 0),
        "DiscardedLeftOut": int(summary.get("DiscardedLeftOut") or 0),
        "Notes": notes(summary, dry_run=job.dry_run),
    }


async def recent_jobs(
    session: AsyncSession, *, limit: int = 50, status: str | None = None
) -> list[ResendJob]:
    statement = select(ResendJob)
    if status is not None:
        statement = statement.where(ResendJob.status == status)
    statement = statement.order_by(ResendJob.created_at.desc(), ResendJob.id).limit(limit)
    return list((await session.scalars(statement)).all())
