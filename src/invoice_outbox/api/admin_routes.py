"""Admin actions: resend (one, a selection, a filter or cause group), discard, the audit log.

Commands answer the `RestApiResult` envelope (``Sucess``, ``ResponseCode``,
``ResponseMessage``, ``Data``, ``Links``) in JSON or XML, as the legacy commands do; the
audit log is a plain object.  Every change is audited in the transaction that makes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from invoice_outbox.admin import audit
from invoice_outbox.admin.models import ResendJob
from invoice_outbox.admin.resends import (
    MAX_SENDING_IDS,
    ResendRefused,
    Selection,
    create_job,
    job_view,
    recent_jobs,
)
from invoice_outbox.admin.sending_actions import discard_one, resend_one, sending_view
from invoice_outbox.api.bodies import answer, read_body
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import ENVELOPE_RESPONSES
from invoice_outbox.api.errors import ApiError, bad_parameter
from invoice_outbox.api.list_params import (
    FROM,
    MAX_YEAR,
    MIN_YEAR,
    PARAM_SCHEMAS,
    TO,
    YEARS_PATTERN,
    parse_moment,
)
from invoice_outbox.api.openapi import NOT_BLANK, body_doc
from invoice_outbox.api.security import Admin, Caller
from invoice_outbox.legacy.json_format import json_value
from invoice_outbox.legacy.negotiation import negotiate
from invoice_outbox.legacy.xml_objects import xml_object
from invoice_outbox.sendings.status import SendingType, Status
from invoice_outbox.state import AppState
from invoice_outbox.systems.schemas import Name
from invoice_outbox.worker.waker import notify_workers

router = APIRouter(tags=["fixing failures"])

_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=NOT_BLANK)]
StatusName = Literal["Pending", "Sending", "Sent", "Failed", "Aborted", "Cancelled"]


# Envelope --------------------------------------------------------------------------------


def command_envelope(
    request: Request,
    state: AppState,
    data: Mapping[str, Any],
    *,
    root: str,
    message: str,
    status_code: int = 200,
) -> Response:
    """``RestApiResult<T>`` for the service's own commands: JSON in the legacy member order;
    XML as DataContract writes it (members alphabetical, root ``RestApiResultOf<T>``)."""
    chosen = negotiate(request.headers.get("accept"))
    value = {
        "Sucess": True,
        "ResponseCode": status_code,
        "ResponseMessage": message,
        "Data": data,
        "Links": [],
    }
    if chosen.format == "xml":
        body = xml_object(root, value, state.settings.zone)
    else:
        body = json_value(value)
    return Response(body, status_code, media_type=chosen.content_type)


def _refused(exc: ResendRefused) -> ApiError:
    return ApiError(exc.status_code, exc.message)


# Bodies ----------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_value(element: Any) -> Any:
    """Text, None for ``i:nil``, a list for an element with children (list members)."""
    if element.get(_XSI_NIL) == "true":
        return None
    if len(element):
        return [(item.text or "").strip() for item in element]
    return (element.text or "").strip()


def _xml_flat(root: Any, *, nested: frozenset[str] = frozenset()) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for child in root:
        name = _local(child.tag)
        if name in nested and child.get(_XSI_NIL) != "true":
            values[name] = _xml_flat(child)
        else:
            values[name] = _xml_value(child)
    return values


def _xml_bulk(root: Any) -> dict[str, Any]:
    values = _xml_flat(root, nested=frozenset({"Filter"}))
    if isinstance(values.get("SendingIds"), str):
        values["SendingIds"] = [values["SendingIds"]] if values["SendingIds"] else []
    return values


class ResendIn(BaseModel):
    """``POST …/sendings/{sendingId}/resend``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    Reason: Reason
    Force: bool = False


class DiscardIn(BaseModel):
    """``POST …/sendings/{sendingId}/discard``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    Reason: Reason


_YEARS: dict[str, Any] = {"pattern": YEARS_PATTERN}


def _resendable_statuses(schema: dict[str, Any]) -> None:
    """Only the statuses a resend can take (others are refused with 400, naming them)."""
    schema["properties"]["Status"]["anyOf"][0]["items"] = {"enum": ["Failed", "Aborted", "Sent"]}


class FilterIn(BaseModel):
    """Which sendings, as the lists filter them.  Times need an offset (``Z`` for UTC)."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_resendable_statuses
    )

    PracticeId: uuid.UUID | None = None
    System: Name | None = None
    SendingType: Literal["Invoice", "Cancellation"] | None = None
    Status: list[StatusName] | None = Field(default=None, max_length=6)
    From: AwareDatetime | None = Field(
        default=None, description="SendingTime from (inclusive).", json_schema_extra=_YEARS
    )
    To: AwareDatetime | None = Field(
        default=None, description="SendingTime before (exclusive).", json_schema_extra=_YEARS
    )
    Q: str | None = Field(default=None, max_length=200, description="Text in the Reason.")

    @field_validator("From", "To")
    @classmethod
    def _in_years(cls, value: datetime | None) -> datetime | None:
        if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"must be in the years {MIN_YEAR} to {MAX_YEAR}")
        return value

    @field_validator("Status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value] if value else []
        return value


def _bulk_rules(schema: dict[str, Any]) -> None:
    """What the schema says beyond the fields: a selection is given (Cause, non-empty
    SendingIds, Filter, or PreviewJobId), and PreviewJobId only with a real run."""
    schema["allOf"] = [
        {
            "anyOf": [
                {"required": ["Cause"], "properties": {"Cause": {"type": "string"}}},
                {"required": ["SendingIds"], "properties": {"SendingIds": {"minItems": 1}}},
                {"required": ["Filter"], "properties": {"Filter": {"type": "object"}}},
                {"required": ["PreviewJobId"], "properties": {"PreviewJobId": {"type": "string"}}},
            ]
        },
        {
            "anyOf": [
                {"not": {"required": ["PreviewJobId"]}},
                {"properties": {"PreviewJobId": {"type": "null"}}},
                {"not": {"required": ["DryRun"]}},
                {"properties": {"DryRun": {"const": False}}},
            ]
        },
    ]


class BulkResendIn(BaseModel):
    """``POST api/v1/billing/resends``: give at least one of Cause, SendingIds, Filter (they
    are combined with AND), or PreviewJobId alone to run what a dry run showed."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_bulk_rules
    )

    Cause: str | None = Field(default=None, min_length=1, max_length=64, pattern=NOT_BLANK)
    SendingIds: list[uuid.UUID] | None = Field(default=None, max_length=MAX_SENDING_IDS)
    Filter: FilterIn | None = None
    DryRun: bool = False
    Force: bool = False
    Reason: Reason
    PreviewJobId: uuid.UUID | None = None
    RatePerSecond: int = Field(default=500, ge=1, le=10_000)

    def selection(self) -> Selection | None:
        given = self.Cause is not None or bool(self.SendingIds) or self.Filter is not None
        if not given:
            return None
        f = self.Filter or FilterIn()
        return Selection(
            cause=self.Cause,
            sending_ids=tuple(sorted(set(self.SendingIds or ()))),
            has_filter=self.Filter is not None,
            practice_id=f.PracticeId,
            system=f.System,
            sending_type=None if f.SendingType is None else SendingType(f.SendingType),
            statuses=tuple(sorted({Status(s) for s in f.Status or ()})),
            since=f.From,
            until=f.To,
            text=f.Q or None,
        )


_COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ENVELOPE_RESPONSES,
    409: ENVELOPE_RESPONSES[400],
}


# One sending -----------------------------------------------------------------------------


async def commit_and_wake(session: AsyncSession, state: AppState) -> None:
    """Commit a change that queued sendings, and wake the workers (here and elsewhere)."""
    await notify_workers(session)
    await session.commit()
    state.waker.wake()


@router.post(
    "/api/v1/billing/sendings/{sendingId}/resend",
    summary="Resend one sending now",
    description=(
        "**Admins; practice users for their own practices' sendings** (another practice's "
        "sending answers 404, as a missing one). A `Failed` or `Aborted` sending goes back to "
        "`Pending`, due now, with a fresh attempt budget (same idempotency key, so a receiver "
        "can drop a repeat). A discarded sending can be resent by naming it here. A `Sent` "
        'one answers 409 (it was already delivered) unless `"Force": true` (**admins only**); '
        "the audit log records forced resends as such. `Pending`, `Sending` and `Cancelled` "
        "answer 409 with the reason. Body: `Reason` (required), `Force`. JSON or XML "
        "(`<ResendRequest><Reason>…</Reason><Force>false</Force></ResendRequest>`). `Data`: "
        "`SendingId`, `PracticeId`, `InvoiceId`, `System`, `SendingType`, `PreviousStatus`, "
        "`Status`, `Reason`, `SendingAttempts`, `NextAttemptAt`."
    ),
    response_class=Response,
    responses=_COMMAND_RESPONSES,
    openapi_extra=body_doc(ResendIn, {"Reason": "MediSwitch is back up", "Force": False}),
)
async def resend_sending(
    request: Request, state: State, session: Session, caller: Caller, sendingId: uuid.UUID
) -> Response:
    body, _ = await read_body(request, ResendIn, _xml_flat)
    try:
        sending, previous = await resend_one(
            session,
            principal=caller,
            sending_id=sendingId,
            reason=body.Reason,
            force=body.Force,
            now=state.clock.now(),
        )
    except ResendRefused as exc:
        raise _refused(exc) from None
    await commit_and_wake(session, state)
    forced = " (forced: it had been delivered)" if previous == Status.SENT.value else ""
    return command_envelope(
        request,
        state,
        sending_view(sending, previous),
        root="RestApiResultOfSendingResend",
        message=f"Sending queued again{forced}",
    )


@router.post(
    "/api/v1/billing/sendings/{sendingId}/discard",
    summary="Give up on an aborted sending for good",
    description=(
        "**Admins; practice users for their own practices' sendings** (another practice's "
        "sending answers 404). Only an `Aborted` sending can be discarded (409 otherwise, "
        "also when already discarded). It stays `Aborted`; its `Reason` becomes "
        "`Discarded by <who>: <your reason>`, no attempt is scheduled, and bulk resends by "
        "cause or filter (and `retryallfailed`) leave it alone; naming it in a resend still "
        "works. Body: `Reason` (required). The audit log keeps the failure reason it had."
    ),
    response_class=Response,
    responses=_COMMAND_RESPONSES,
    openapi_extra=body_doc(DiscardIn, {"Reason": "Duplicate invoice; the practice re-issued"}),
)
async def discard_sending(
    request: Request, state: State, session: Session, caller: Caller, sendingId: uuid.UUID
) -> Response:
    body, _ = await read_body(request, DiscardIn, _xml_flat)
    try:
        sending, _previous_reason = await discard_one(
            session,
            principal=caller,
            sending_id=sendingId,
            reason=body.Reason,
            now=state.clock.now(),
        )
    except ResendRefused as exc:
        raise _refused(exc) from None
    await session.commit()
    return command_envelope(
        request,
        state,
        sending_view(sending, Status.ABORTED.value),
        root="RestApiResultOfSendingDiscard",
        message="Sending discarded",
    )


# Bulk ------------------------------------------------------------------------------------

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
        **{k: v for k, v in _COMMAND_RESPONSES.items() if k != 200},
    },
    openapi_extra=body_doc(BulkResendIn, _BULK_EXAMPLE),
)
async def start_resend(request: Request, state: State, session: Session, caller: Admin) -> Response:
    body, _ = await read_body(request, BulkResendIn, _xml_bulk)
    try:
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
    except ResendRefused as exc:
        raise _refused(exc) from None
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
        raise ApiError(404, f"No resend job has the id {jobId}.")
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


# Audit -----------------------------------------------------------------------------------


def _moment(name: str, raw: str | None, zone: tzinfo, *, end: bool) -> datetime | None:
    """`from` / `to` read as the list routes read them (`list_params.parse_moment`)."""
    return None if raw is None or not raw.strip() else parse_moment(name, raw, zone, end=end)


@router.get(
    "/api/v1/billing/audit",
    summary="The audit log: who changed what, when and why",
    description=(
        "**Admins only.** Every state-changing action by an admin, a practice user, the "
        "command line or a resend job on someone's behalf, newest first. Entries: `Id`, "
        "`Time`, `Actor`, `ActorRole` (`admin`, `practice`, `cli`), `Action`, `Reason`, "
        "`PracticeId`, `Target` (invoice id, sending id, job id, system or user name), "
        "`Affected` (up to 1,000 sending ids), `AffectedCount` (all of them), `Details`. "
        "Actions: " + ", ".join(f"`{a}`" for a in audit.ACTIONS) + ". Filters (all "
        "optional): `actor`, `action`, `practiceId`, `target`, `from` and `to` as on the "
        "lists: `yyyy-MM-dd` (a day in the service's time zone; `to` includes it) or an ISO "
        "date-time (inclusive `from`, exclusive `to`; no offset: the service's zone). "
        "Paging: `limit` (1-1000, default 100) and `cursor` = the previous page's "
        "`NextCursor` (null on the last page). The log is append-only: the database refuses "
        "to change or delete entries."
    ),
    response_class=Response,
    responses={
        400: ENVELOPE_RESPONSES[400],
        401: ENVELOPE_RESPONSES[401],
        403: ENVELOPE_RESPONSES[403],
    },
)
async def audit_log(
    request: Request,
    state: State,
    session: Session,
    _caller: Admin,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    practiceId: uuid.UUID | None = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(alias="from", json_schema_extra=PARAM_SCHEMAS[FROM])] = None,
    until: Annotated[str | None, Query(alias="to", json_schema_extra=PARAM_SCHEMAS[TO])] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    filters = audit.AuditQuery(
        actor=actor,
        action=action,
        practice_id=practiceId,
        target=target,
        since=_moment("from", since, state.settings.zone, end=False),
        until=_moment("to", until, state.settings.zone, end=True),
    )
    try:
        entries, next_cursor = await audit.query(
            session, filters, limit=limit, cursor=cursor or None
        )
    except audit.BadCursor:
        raise bad_parameter("cursor", "is not one this service handed out") from None
    value = {"Items": [audit.entry_view(e) for e in entries], "NextCursor": next_cursor}
    return answer(request, state, value, root="AuditLog")
