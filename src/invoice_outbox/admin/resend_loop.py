"""Background work on resend jobs (runs next to the worker, in `serve` and `worker`).

A process claims a Running job under a lease (compare-and-set on the job row, so two
processes never run the same job), then works through it in keyset batches by sending id.
Each batch is one transaction: requeue the members unchanged since the snapshot, append an
audit entry naming them, move the job's cursor and counters, renew the lease -- or, if the
lease was lost meanwhile, roll it all back.  The cursor lives on the job row, so a restarted
process resumes where the last committed batch ended, and at most one batch of ids is held in
memory however large the job.

Batches are paced to the job's `rate_per_second` (sleeps happen here only; tests call
`run_job_once`, which does not pace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin import audit
from invoice_outbox.admin.models import ResendJob
from invoice_outbox.admin.resends import job_plan, next_batch
from invoice_outbox.db.waker import commit_and_wake
from invoice_outbox.sendings.commands import discard_many, requeue
from invoice_outbox.state import AppState

log = logging.getLogger(__name__)

BATCH_SIZE = 500
#: How often an idle process looks for Running jobs.
POLL_SECONDS = 1.0
#: Consecutive failed attempts at one batch before the job is given up as Failed.
MAX_BATCH_ERRORS = 3
RETRY_SECONDS = (1.0, 5.0)


class LeaseLost(Exception):
    """Another process holds the job now (our lease expired); stop working on it."""


def runner_name() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _lease(state: AppState) -> timedelta:
    return timedelta(seconds=state.settings.lease_seconds)


def _claimable(now: datetime, owner: str) -> list[ColumnElement[bool]]:
    """Running real jobs nobody holds: no lease, an expired one, or our own (after an error)."""
    return [
        ResendJob.status == "Running",
        ResendJob.dry_run.is_(False),
        or_(
            ResendJob.lease_owner.is_(None),
            ResendJob.lease_expires_at < now,
            ResendJob.lease_owner == owner,
        ),
    ]


async def claim_job(
    state: AppState, *, owner: str, job_id: uuid.UUID | None = None
) -> uuid.UUID | None:
    """Take the lease of `job_id` (or of the oldest claimable job); None when there is none.

    Compare-and-set: the UPDATE only succeeds while nobody else holds an unexpired lease.
    """
    now = state.clock.now()
    async with state.sessions() as session:
        if job_id is None:
            job_id = await session.scalar(
                select(ResendJob.id)
                .where(*_claimable(now, owner))
                .order_by(ResendJob.created_at)
                .limit(1)
            )
            if job_id is None:
                return None
        result = await session.execute(
            update(ResendJob)
            .where(ResendJob.id == job_id, *_claimable(now, owner))
            .values(lease_owner=owner, lease_expires_at=now + _lease(state))
            .returning(ResendJob.id)
        )
        claimed = result.scalar_one_or_none()
        await session.commit()
    return claimed


async def release_job(state: AppState, job_id: uuid.UUID, *, owner: str) -> None:
    """Give the lease back (shutting down), so another process may resume at once."""
    async with state.sessions() as session:
        await session.execute(
            update(ResendJob)
            .where(ResendJob.id == job_id, ResendJob.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )
        await session.commit()


async def _owned_job(session: AsyncSession, job_id: uuid.UUID, owner: str) -> ResendJob:
    job = await session.get(ResendJob, job_id)
    if job is None or job.status != "Running" or job.lease_owner != owner:
        raise LeaseLost(str(job_id))
    return job


async def _save_progress(
    session: AsyncSession, job: ResendJob, owner: str, values: dict[str, object]
) -> None:
    """Write the job's new state, only while we still hold its lease (else roll back)."""
    result = await session.execute(
        update(ResendJob)
        .where(
            ResendJob.id == job.id, ResendJob.lease_owner == owner, ResendJob.status == "Running"
        )
        .values(**values)
        .returning(ResendJob.id)
        .execution_options(synchronize_session=False)
    )
    if result.scalar_one_or_none() is None:
        await session.rollback()
        raise LeaseLost(str(job.id))


async def run_batch(state: AppState, job_id: uuid.UUID, *, owner: str) -> int | None:
    """Work one batch of a job whose lease `owner` holds, in one transaction.

    Returns the number of members looked at, or None when the job has just finished (Done).
    Raises LeaseLost when the job is no longer ours (or no longer Running).
    """
    now = state.clock.now()
    async with state.sessions() as session:
        job = await _owned_job(session, job_id, owner)
        the_plan = job_plan(job)
        size = max(1, min(BATCH_SIZE, job.rate_per_second))
        ids, cursor = await next_batch(session, job, the_plan, size=size)
        if cursor is None:
            await _finish(session, job, owner, now=now, status="Done", error=None)
            await session.commit()
            return None
        if job.action == "discard":
            moved = await discard_many(
                session,
                ids,
                actor=job.created_by,
                reason=job.reason,
                now=now,
                unchanged_since=job.snapshot_at,
            )
        else:
            moved = await requeue(
                session, ids, sources=the_plan.statuses, now=now, unchanged_since=job.snapshot_at
            )
        if moved:
            await audit.record(
                session,
                principal=audit.Actor(job.created_by, "admin"),
                action=f"{job.action}_job.batch",
                reason=job.reason,
                target=str(job.id),
                affected=moved,
                details={"Batch": _batches(job) + 1},
                now=now,
            )
        # Members that changed since the snapshot; never more than the job can still account
        # for (a sending that entered the selection after the snapshot is not a member).
        room = max(0, job.total - job.done - len(moved) - job.skipped - job.failed)
        skipped = min(room, len(ids) - len(moved))
        await _save_progress(
            session,
            job,
            owner,
            {
                "done": job.done + len(moved),
                "skipped": job.skipped + skipped,
                "cursor": {"After": str(cursor), "Batches": _batches(job) + 1, "Errors": 0},
                "lease_expires_at": now + _lease(state),
                "error": None,
            },
        )
        if moved:
            await commit_and_wake(session, state.waker)
        else:
            await session.commit()
    return len(ids)


def _batches(job: ResendJob) -> int:
    return int((job.cursor or {}).get("Batches", 0))


async def _finish(
    session: AsyncSession,
    job: ResendJob,
    owner: str,
    *,
    now: datetime,
    status: str,
    error: str | None,
) -> None:
    """Close the job: members not resent are Skipped (changed since the snapshot) when it is
    Done, Failed when it failed.  Appends the `resend_job.finish` audit entry."""
    left = max(0, job.total - job.done - job.skipped - job.failed)
    skipped, failed = (
        (job.skipped + left, job.failed) if status == "Done" else (job.skipped, job.failed + left)
    )
    await _save_progress(
        session,
        job,
        owner,
        {
            "status": status,
            "skipped": skipped,
            "failed": failed,
            "finished_at": now,
            "error": error,
            "lease_owner": None,
            "lease_expires_at": None,
        },
    )
    await audit.record(
        session,
        principal=audit.Actor(job.created_by, "admin"),
        action=f"{job.action}_job.finish",
        reason=job.reason,
        target=str(job.id),
        affected_count=job.done,
        details={
            "Status": status,
            "Total": job.total,
            "Done": job.done,
            "Skipped": skipped,
            "Failed": failed,
            "Error": error,
        },
        now=now,
    )
    log.info(
        "resend job finished",
        extra={
            "action": "resend_job.finish",
            "job_id": str(job.id),
            "status": status,
            "done": job.done,
            "skipped": skipped,
            "failed": failed,
        },
    )


async def _note_error(state: AppState, job_id: uuid.UUID, owner: str, exc: Exception) -> bool:
    """Count a failed batch; after MAX_BATCH_ERRORS in a row the job ends Failed.  Returns
    True when the job was given up."""
    message = f"{type(exc).__name__} while resending a batch"
    now = state.clock.now()
    async with state.sessions() as session:
        job = await _owned_job(session, job_id, owner)
        errors = int((job.cursor or {}).get("Errors", 0)) + 1
        if errors >= MAX_BATCH_ERRORS:
            await _finish(
                session,
                job,
                owner,
                now=now,
                status="Failed",
                error=f"{message}; gave up after {errors} tries",
            )
            given_up = True
        else:
            await _save_progress(
                session,
                job,
                owner,
                {
                    "cursor": {**(job.cursor or {}), "Errors": errors},
                    "error": message,
                    "lease_expires_at": now + _lease(state),
                },
            )
            given_up = False
        await session.commit()
    return given_up


Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    """Keeps a job at or under `rate` sendings per second: after each batch of n, waits what
    is left of n / rate seconds (the time the batch itself took counts)."""

    def __init__(
        self, rate: int, *, sleep: Sleep, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = max(1, rate)
        self.sleep = sleep
        self.monotonic = monotonic
        self.started = monotonic()

    async def after(self, rows: int) -> None:
        wait = rows / self.rate - (self.monotonic() - self.started)
        if wait > 0:
            await self.sleep(wait)
        self.started = self.monotonic()


async def _no_sleep(_seconds: float) -> None:
    return None


async def work_job(
    state: AppState,
    job_id: uuid.UUID,
    *,
    owner: str,
    sleep: Sleep = _no_sleep,
    stop: asyncio.Event | None = None,
) -> None:
    """Run batches of a job we hold until it is finished, lost, or `stop` is set."""
    async with state.sessions() as session:
        rate = await session.scalar(select(ResendJob.rate_per_second).where(ResendJob.id == job_id))
    pacer = Pacer(rate or 1, sleep=sleep)
    errors = 0
    while stop is None or not stop.is_set():
        try:
            looked_at = await run_batch(state, job_id, owner=owner)
        except LeaseLost:
            return
        except Exception as exc:  # a batch failed; its transaction was rolled back
            log.warning(
                "resend batch failed",
                extra={
                    "action": "resend_job.batch_failed",
                    "job_id": str(job_id),
                    "error": type(exc).__name__,
                },
            )
            if await _note_error(state, job_id, owner, exc):
                return
            await sleep(RETRY_SECONDS[min(errors, len(RETRY_SECONDS) - 1)])
            errors += 1
            continue
        errors = 0
        if looked_at is None:
            return
        await pacer.after(looked_at)
    await release_job(state, job_id, owner=owner)


async def run_job_once(state: AppState, job_id: uuid.UUID, *, owner: str | None = None) -> None:
    """Claim `job_id` and run it to the end without pacing (tests, scripts)."""
    owner = owner or runner_name()
    if await claim_job(state, owner=owner, job_id=job_id) is None:
        raise LeaseLost(f"job {job_id} is not claimable (not Running, or held elsewhere)")
    await work_job(state, job_id, owner=owner)


async def run_resend_jobs(state: AppState, stop: asyncio.Event) -> None:
    """Work through Running resend jobs until `stop` is set."""
    owner = runner_name()

    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    while not stop.is_set():
        try:
            job_id = await claim_job(state, owner=owner)
            if job_id is not None:
                log.info(
                    "resend job claimed",
                    extra={"action": "resend_job.claim", "job_id": str(job_id)},
                )
                await work_job(state, job_id, owner=owner, sleep=sleep, stop=stop)
                continue
        except Exception as exc:  # the database went away: keep the runner alive
            log.warning(
                "resend job runner error",
                extra={"action": "resend_job.runner_error", "error": type(exc).__name__},
            )
        await sleep(POLL_SECONDS)
