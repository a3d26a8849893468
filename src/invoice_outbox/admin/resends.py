"""Resending sendings in bulk (a named list, a filter or a cause group).

One sending at a time (resend, discard) is `invoice_outbox.admin.sending_actions`.  A bulk
resend is a `ResendJob`: created here (with a preview of what it would do), worked through by
`resend_loop` in keyset batches.  Its *members* are the sendings matching the selection when
the snapshot was taken; a member is resent only if it is unchanged since the snapshot, so a
job never undoes what happened after the preview.  Functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin import audit
from invoice_outbox.admin.models import AuditEntry, AuditLink, ResendJob
from invoice_outbox.auth.principal import Principal
from invoice_outbox.errors import Conflict, Forbidden, Invalid, NotFound, OutboxError
from invoice_outbox.sendings.causes import describe
from invoice_outbox.sendings.commands import resend_sources
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import selection_clauses
from invoice_outbox.sendings.status import RETRYABLE, SendingType, Status
from invoice_outbox.systems.rejections import load_catalogue

SAMPLE_SIZE = 20
MAX_SENDING_IDS = 10_000
DEFAULT_RATE = 500


class ResendRefused(OutboxError):
    """A resend or discard that cannot be done as asked.  Never raised itself: each refusal
    below is also one of the domain's kinds, which the front ends map (catch this to handle
    every refusal of this module and of `sending_actions`)."""


class ResendInvalid(ResendRefused, Invalid):
    """The request contradicts itself: no selection, statuses that cannot be resent, a
    PreviewJobId with a dry run or with another selection."""


class ForceNotAllowed(ResendRefused, Forbidden):
    """Only admins may force a resend of a delivered sending."""


class DiscardedResendNotAllowed(ResendRefused, Forbidden):
    """Only admins may resend a discarded sending."""


class SendingNotFound(ResendRefused, NotFound):
    """No sending has the id, or none the caller may see (the same answer for both)."""

    def __init__(self, sending_id: uuid.UUID) -> None:
        super().__init__(f"No sending has the id {sending_id}.")


class DryRunNotFound(ResendRefused, NotFound):
    """PreviewJobId names no dry run."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(f"No dry run has the id {job_id}.")


class ResendConflict(ResendRefused, Conflict):
    """The sending's state refuses the action now (delivered, queued, in flight, cancelled,
    not Aborted, already discarded, or changed meanwhile); the message says which."""


class ResendJobNotFound(NotFound):
    """No resend job (or dry run) has the id."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(f"No resend job has the id {job_id}.")


class ResendNeedsCorrection(Conflict):
    """A cause group whose fix is a correction: resending it unchanged cannot help."""

    def __init__(self, label: str) -> None:
        super().__init__(
            f'The fix for "{label}" is a correction of each invoice: sending them again '
            "unchanged cannot help. Have the practices correct them (a corrected invoice is "
            "sent by itself), or pass Force to resend them anyway."
        )


# Selections ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """Which sendings a bulk resend is about.  The parts given are ANDed together.

    `statuses` are those asked for in the filter (empty: the default, Failed and Aborted).
    `has_filter` records that a Filter was given (an empty one means every sending).
    """

    cause: str | None = None
    sending_ids: tuple[uuid.UUID, ...] = ()
    has_filter: bool = False
    practice_id: uuid.UUID | None = None
    system: str | None = None
    sending_type: SendingType | None = None
    statuses: tuple[Status, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    #: Invoices a list's search found (by id, id prefix or invoice number): "all matching".
    invoice_ids: tuple[uuid.UUID, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.cause is None and not self.sending_ids and not self.has_filter

    def sending_filter(self, *, with_ids: bool = True) -> SendingFilter:
        """Everything but the status condition (that is the plan's business); `with_ids`
        False leaves the named ids out (a batch names its own window of them)."""
        return SendingFilter(
            practices=None if self.practice_id is None else frozenset({self.practice_id}),
            systems=frozenset({self.system}) if self.system else frozenset(),
            sending_types=frozenset({self.sending_type}) if self.sending_type else frozenset(),
            causes=frozenset({self.cause}) if self.cause is not None else frozenset(),
            sending_ids=frozenset(self.sending_ids) if with_ids else frozenset(),
            invoice_ids=frozenset(self.invoice_ids),
            since=self.since,
            until=self.until,
            text=self.text,
        )

    def to_json(self) -> dict[str, Any]:
        filter_json = None
        if self.has_filter:
            filter_json = {
                "PracticeId": None if self.practice_id is None else str(self.practice_id),
                "System": self.system,
                "SendingType": None if self.sending_type is None else self.sending_type.value,
                "Status": [s.value for s in self.statuses],
                "From": None if self.since is None else self.since.isoformat(),
                "To": None if self.until is None else self.until.isoformat(),
                "Q": self.text,
                **({"InvoiceIds": [str(i) for i in self.invoice_ids]} if self.invoice_ids else {}),
            }
        return {
            "Cause": self.cause,
            "SendingIds": [str(i) for i in self.sending_ids],
            "Filter": filter_json,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Selection:
        filter_json = value.get("Filter")
        selection = cls(
            cause=value.get("Cause"),
            sending_ids=tuple(uuid.UUID(i) for i in value.get("SendingIds") or ()),
        )
        if filter_json is None:
            return selection

        def when(key: str) -> datetime | None:
            raw = filter_json.get(key)
            return None if raw is None else datetime.fromisoformat(raw)

        practice = filter_json.get("PracticeId")
        sending_type = filter_json.get("SendingType")
        return replace(
            selection,
            has_filter=True,
            practice_id=None if practice is None else uuid.UUID(practice),
            system=filter_json.get("System"),
            sending_type=None if sending_type is None else SendingType(sending_type),
            statuses=tuple(Status(s) for s in filter_json.get("Status") or ()),
            since=when("From"),
            until=when("To"),
            text=filter_json.get("Q"),
            invoice_ids=tuple(uuid.UUID(i) for i in filter_json.get("InvoiceIds") or ()),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """A selection resolved into SQL: which statuses move, whether discarded ones are left."""

    selection: Selection
    force: bool
    statuses: frozenset[Status]
    #: Sent sendings matching the selection that are left out (no Force) -- worth saying.
    sent_left_out: bool
    exclude_discarded: bool

    def base_clauses(self, *, with_ids: bool = True) -> list[ColumnElement[bool]]:
        """The selection's conditions; the cause ``unknown`` is the cause groups' one (failures
        recorded without a cause), as in the lists and ``GET api/v1/billing/causes``."""
        return selection_clauses(self.selection.sending_filter(with_ids=with_ids))

    def member_clauses(self, *, with_ids: bool = True) -> list[ColumnElement[bool]]:
        """The sendings this plan resends (before the snapshot condition)."""
        clauses = self.base_clauses(with_ids=with_ids)
        clauses.append(Sending.status.in_(sorted(s.value for s in self.statuses)))
        return clauses

    def to_json(self) -> dict[str, Any]:
        return {
            **self.selection.to_json(),
            "Statuses": sorted(s.value for s in self.statuses),
            "SentLeftOut": self.sent_left_out,
            "ExcludeDiscarded": self.exclude_discarded,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any], *, force: bool) -> Plan:
        statuses = frozenset(Status(s) for s in value.get("Statuses") or ())
        exclude_discarded = bool(value.get("ExcludeDiscarded"))
        if not exclude_discarded and Status.ABORTED in statuses:
            # Planned before Discarded was a status of its own (discarded ones were Aborted).
            statuses |= {Status.DISCARDED}
        return cls(
            selection=Selection.from_json(value),
            force=force,
            statuses=statuses,
            sent_left_out=bool(value.get("SentLeftOut")),
            exclude_discarded=exclude_discarded,
        )


def plan(selection: Selection, *, force: bool) -> Plan:
    """Resolve statuses: Failed and Aborted by default, Sent only when forced.

    Statuses that cannot be resent at all (Pending, Sending, Cancelled) in the filter are a
    400.  Discarded sendings are left out unless the selection names sendings by id.
    """
    if selection.is_empty:
        raise ResendInvalid("give Cause, SendingIds or Filter")
    resendable = RETRYABLE | {Status.SENT}
    wrong = [s.value for s in selection.statuses if s not in resendable]
    if wrong:
        raise ResendInvalid(
            f"Filter.Status {', '.join(wrong)} cannot be resent "
            "(only Failed, Aborted, and Sent with Force)"
        )
    wanted = frozenset(selection.statuses) or RETRYABLE | {Status.SENT}
    named = bool(selection.sending_ids)
    if named and Status.ABORTED in wanted:
        wanted |= {Status.DISCARDED}  # given up on, but named: an admin's decision
    allowed = resend_sources(force=force, discarded=named)
    return Plan(
        selection=selection,
        force=force,
        statuses=wanted & allowed,
        sent_left_out=Status.SENT in wanted and not force,
        exclude_discarded=not named,
    )


def discard_plan(selection: Selection) -> Plan:
    """What a discard job changes: the Aborted sendings of the selection (nothing else can be
    discarded; named ones in another status are reported, not changed)."""
    if selection.is_empty:
        raise ResendInvalid("give Cause, SendingIds or Filter")
    wrong = [s.value for s in selection.statuses if s is not Status.ABORTED]
    if wrong:
        raise ResendInvalid(f"only Aborted sendings can be discarded, not {', '.join(wrong)}")
    return Plan(
        selection=selection,
        force=False,
        statuses=frozenset({Status.ABORTED}),
        sent_left_out=False,
        exclude_discarded=True,
    )


# Previews --------------------------------------------------------------------------------


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


# Jobs ------------------------------------------------------------------------------------


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


def job_plan(job: ResendJob) -> Plan:
    return Plan.from_json(job.selection, force=job.force)


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
