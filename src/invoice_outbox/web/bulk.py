"""Acting on many invoices at once: ``POST /admin/bulk`` from a list's or a cause group's form.

Who may call it: admins, with the form's CSRF token and a reason.  The form carries the
ticked rows (``sending``, sending ids) or ``all_matching`` with the list's filter (its fields
prefixed ``filter_``, read exactly as the list read them, so "every one matching" means the
rows the list counted), ``status`` (the list's), ``action`` (``resend`` or ``discard``) and
``dry_run``.  It starts the API's background job (`create_job`: a resend job, or a discard
job for Aborted ones), audited as the API audits it, and answers 303 to the job's page, where
progress, then each invoice's outcome, is shown.  A dry run's page lists what would be done.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response

from invoice_outbox.admin.resends import (
    MAX_SENDING_IDS,
    ResendRefused,
    Selection,
    create_job,
)
from invoice_outbox.api.deps import Session, State
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.status import Status
from invoice_outbox.web.csrf import CsrfForm
from invoice_outbox.web.errors import bad_form, page_error_of
from invoice_outbox.web.lists import LIST_FIELDS
from invoice_outbox.web.paging import practice_choices, read_list_form, system_names
from invoice_outbox.web.params import checked, form_text, required_reason
from invoice_outbox.web.sessions import AdminPage

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

ACTIONS: Final = ("resend", "discard")
_STATUSES: Final = {s.value: s for s in (Status.ABORTED, Status.FAILED, Status.DISCARDED)}


def selection_of(selection: SendingFilter, status: Status) -> Selection:
    """A list's filter (one practice, system and cause at most, as its form sends) as the
    bulk job's selection."""

    def one(values: Any) -> Any:
        if values is not None and len(values) > 1:
            raise bad_form("Choose one practice, system and cause at a time.")
        return next(iter(values), None) if values else None

    return Selection(
        cause=one(selection.causes),
        has_filter=True,
        practice_id=one(selection.practices),
        system=one(selection.systems),
        statuses=(status,),
        since=selection.since,
        until=selection.until,
        text=selection.text,
        invoice_ids=tuple(sorted(selection.invoice_ids)),
    )


def _named(form: Any) -> tuple[uuid.UUID, ...]:
    raw = [v for v in form.getlist("sending") if isinstance(v, str) and v.strip()]
    if len(raw) > MAX_SENDING_IDS:
        raise bad_form(f"Choose at most {MAX_SENDING_IDS} invoices at a time.")
    try:
        return tuple(sorted({uuid.UUID(v.strip()) for v in raw}))
    except ValueError:
        raise bad_form(
            "The ticked rows are not valid; reload the list and tick them again."
        ) from None


@router.post("/admin/bulk")
async def bulk(
    request: Request, principal: AdminPage, form: CsrfForm, state: State, db: Session
) -> Response:
    """Admins: resend or discard the ticked invoices, or every one matching a list's filter,
    as a background job (or its dry run); 303 to ``/admin/jobs/{id}``."""
    action = form_text(form, "action")
    if action not in ACTIONS:
        raise bad_form("Choose Resend or Discard.")
    status = _STATUSES.get(form_text(form, "status"))
    if status is None:
        raise bad_form("The list this form came from is not known; reload it.")
    reason = required_reason(form)
    if checked(form, "all_matching"):
        if status is Status.DISCARDED and action == "resend":
            raise bad_form(
                "Tick the discarded invoices to resend: they are never resent by filter."
            )
        pairs = [
            (key.removeprefix("filter_"), value)
            for key, value in form.multi_items()
            if key.startswith("filter_") and isinstance(value, str)
        ]
        practices = await practice_choices(state)
        listed = await read_list_form(
            request,
            state,
            LIST_FIELDS,
            practices=practices,
            systems=await system_names(state),
            query=QueryParams(pairs),
        )
        if listed.errors:
            raise bad_form("The list's filter cannot be read: " + " ".join(listed.errors.values()))
        selection = selection_of(listed.selection, status)
    else:
        named = _named(form)
        if not named:
            raise bad_form("Tick at least one invoice, or choose every one matching the filter.")
        selection = Selection(sending_ids=named)
    if action == "discard" and status is not Status.ABORTED:
        raise bad_form("Only aborted invoices can be discarded.")
    try:
        job = await create_job(
            db,
            principal=principal,
            selection=dataclasses.replace(selection),
            force=False,
            dry_run=checked(form, "dry_run"),
            reason=reason,
            now=state.clock.now(),
            action=action,
        )
    except ResendRefused as exc:
        raise page_error_of(exc, "The job was not started") from None
    await db.commit()
    log.info(
        f"dashboard bulk {action}",
        extra={
            "action": f"web.bulk_{action}",
            "actor": principal.subject,
            "job_id": str(job.id),
            "total": job.total,
            "dry_run": job.dry_run,
        },
    )
    return RedirectResponse(f"/admin/jobs/{job.id}", status_code=303)
