"""Resending many sendings as a background job: start one (or a dry run), read its progress.

Admins only.  The job is created by `invoice_outbox.admin.resends.create_job` (its refusals:
`ResendInvalid`, `DryRunNotFound`, propagate to the error mapping of `api.errors`) and worked
through by the resend-job runner next to each worker, never in the request.  Answers are the
`RestApiResult` envelope in JSON or XML.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from invoice_outbox.admin.models import ResendJob
from invoice_outbox.admin.resends import ResendJobNotFound, create_job, job_view, recent_jobs
from invoice_outbox.admin.schemas import BulkResendIn
from invoice_outbox.api.bodies import read_body, xml_flat
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import COMMAND_RESPONSES, ENVELOPE_RESPONSES, body_doc
from invoice_outbox.api.envelopes import command_envelope
from invoice_outbox.api.security import Admin

router = APIRouter(tags=["fixing failures"])


def _xml_bulk(root: Any) -> dict[str, Any]:
    values = xml_flat(root, nested=frozenset({"Filter"}))
    if isinstance(values.get("SendingIds"), str):
        values["SendingIds"] = [values["SendingIds"]] if values["SendingIds"] else []
    return values


_BULK_EXAMPLE = {
    "Cause": "http-503",
    "SendingIds": None,
    "Filter": {
        "PracticeId": None,
        "System": "MediSwitch",
        "SendingType": None,
        "Status": ["Aborted"],
        "From": "2026-02-01T00:00:00Z",
        "To": None,
        "Q": None,
    },
    "DryRun": True,
    "Force": False,
    "Reason": "MediSwitch outage is over",
    "PreviewJobId": None,
}


@router.post(
    "/api/v1/billing/resends",
    status_code=202,
    summary="Resend many sendings: a cause group, a filter, or a list (background job)",
    description=(
        "**Admins only.** Select with `Cause` (a cause group's key, e.g. `http-503`), "
        "`SendingIds`, and/or `Filter` {`PracticeId`, `System`, `SendingType`, `Status`, "
        "`From`, `To` (SendingTime, with an offset), `Q` (text in the Reason)}; the parts given "
        "are combined with AND. By default `Failed` and `Aborted` sendings are resent; `Sent` "
        'ones only with `"Force": true` (the answer says how many `Sent` ones were included '
        "or left out, and why). Discarded sendings are left out unless named in `SendingIds`. "
        "`Reason` is required. An unknown cause simply matches nothing (`Total` 0).\n\n"
        '`"DryRun": true` changes nothing and answers at once what a run would do: `Total`, '
        "`ByStatus`, `BySystem`, a `Sample` of up to 20 sending ids, `Notes`. Pass its "
        "`JobId` as `PreviewJobId` to run exactly that (omit the selection or repeat it): "
        "only sendings unchanged since the dry run are resent; the others count as "
        "`Skipped`.\n\n"
        "A real run answers 202 with `Status` `Running` and is worked through in the "
        "background in batches (paced to `RatePerSecond`, default 500), never more than one "
        "batch in memory; read its progress with `GET api/v1/billing/resends/{jobId}`. "
        "Resending never creates a sending: it requeues the existing row, so a receiver sees "
        "the same idempotency key. The job and every batch are recorded in the audit log."
    ),
    response_class=Response,
    responses={
        202: ENVELOPE_RESPONSES[200],
        **{k: v for k, v in COMMAND_RESPONSES.items() if k != 200},
    },
    openapi_extra=body_doc(BulkResendIn, _BULK_EXAMPLE),
)
async def start_resend(request: Request, state: State, session: Session, caller: Admin) -> Response:
    body, _ = await read_body(request, BulkResendIn, _xml_bulk)
    job = await create_job(
        session,
        principal=caller,
        selection=body.selection(),
        force=body.Force,
        dry_run=body.DryRun,
        reason=body.Reason,
        now=state.clock.now(),
        preview_job_id=body.PreviewJobId,
        rate_per_second=body.RatePerSecond,
    )
    await session.commit()
    if job.dry_run:
        message = f"Dry run: {job.total} sending(s) would be queued again; nothing changed"
    else:
        message = f"Resend job started for {job.total} sending(s)"
    return command_envelope(
        request,
        state,
        job_view(job),
        root="RestApiResultOfResendJob",
        message=message,
        status_code=202,
    )


@router.get(
    "/api/v1/billing/resends/{jobId}",
    summary="A resend job's progress",
    description=(
        "**Admins only.** `Data`: `JobId`, `Status` (`Running`, `Done` or `Failed`), `Total` "
        "(sendings selected at the snapshot), `Done` (queued again), `Skipped` (changed since "
        "the snapshot, so left alone), `Failed` (not processed because the job failed; "
        "`Error` says why), `DryRun`, `Force`, `Reason`, `CreatedBy`, `CreatedAt`, "
        "`SnapshotAt`, `FinishedAt`, `Batches`, `Selection`, `ByStatus`, `BySystem`, "
        "`Sample`, `Notes`. A finished job has `Done + Skipped + Failed = Total`."
    ),
    response_class=Response,
    responses=ENVELOPE_RESPONSES,
)
async def resend_job(
    request: Request, state: State, session: Session, _caller: Admin, jobId: uuid.UUID
) -> Response:
    job = await session.get(ResendJob, jobId)
    if job is None:
        raise ResendJobNotFound(jobId)
    message = f"Resend job {job.status}: {job.done} of {job.total} queued again"
    return command_envelope(
        request, state, job_view(job), root="RestApiResultOfResendJob", message=message
    )


@router.get(
    "/api/v1/billing/resends",
    summary="Recent resend jobs and dry runs",
    description=(
        "**Admins only.** Newest first; `status` (`Running`, `Done`, `Failed`) filters, "
        "`limit` (1-200, default 50). `Data.Jobs`: jobs as `GET …/resends/{jobId}` shows them."
    ),
    response_class=Response,
    responses=ENVELOPE_RESPONSES,
)
async def resend_jobs(
    request: Request,
    state: State,
    session: Session,
    _caller: Admin,
    status: Literal["Running", "Done", "Failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    jobs = await recent_jobs(session, limit=limit, status=status)
    return command_envelope(
        request,
        state,
        {"Jobs": [job_view(j) for j in jobs]},
        root="RestApiResultOfResendJobList",
        message=f"{len(jobs)} resend job(s)",
    )
