"""Resend jobs: their list, one job's progress (a bar that updates), and running a dry run.

Routes (admins only: practice users get a 403 page, nobody signed in goes to sign-in):

- ``GET /admin/jobs``: the 50 most recent jobs and dry runs, newest first.
- ``GET /admin/jobs/{job_id}``: one job: a ``<progress>`` bar that app.js updates from the
  JSON below (``data-poll-url``) while it is Running, the counts in words (``aria-live``),
  what it selected; for a dry run, what a run would do and a form to run exactly that.
- ``GET /admin/jobs/{job_id}.json``: ``{JobId, Status, DryRun, Total, Done, Skipped,
  Failed}`` (the API's job fields, read with the session cookie; never cached).
- ``POST /admin/jobs/{job_id}/run`` (CSRF, a reason): the API's "run what the dry run
  showed" (`create_job` with ``preview_job_id``); 303 to the new job's page.

Jobs are worked through by the resend-job runner next to each worker (`resend_loop`), in
batches; these pages only read the job row.
"""

from __future__ import annotations

import uuid
from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from invoice_outbox.admin.models import ResendJob
from invoice_outbox.admin.resends import (
    ResendRefused,
    create_job,
    job_members,
    job_view,
    recent_jobs,
)
from invoice_outbox.api.deps import Session, State
from invoice_outbox.practices.service import label, practice_names
from invoice_outbox.sendings.causes import describe
from invoice_outbox.sendings.items import ITEM_COLUMNS, sending_item
from invoice_outbox.web.csrf import CsrfForm
from invoice_outbox.web.errors import PageError, page_error_of
from invoice_outbox.web.params import required_reason
from invoice_outbox.web.sessions import AdminPage
from invoice_outbox.web.templating import plural, render

router = APIRouter(include_in_schema=False)

RECENT: Final = 50
#: The fields of the JSON progress (what app.js's progress helper reads).
PROGRESS_FIELDS: Final = ("Status", "DryRun", "Total", "Done", "Skipped", "Failed")


def progress_text(view: dict[str, Any]) -> str:
    """The job's progress in words, exactly as app.js writes it while polling."""
    done, skipped, failed = view["Done"], view["Skipped"], view["Failed"]
    text = f"{done + skipped + failed} of {view['Total']} handled"
    if skipped:
        text += f", {skipped} skipped"
    if failed:
        text += f", {failed} failed"
    if view["Status"] == "Done":
        return f"Finished: {text}."
    if view["Status"] == "Failed":
        return f"Stopped with an error: {text}."
    return text + "\u2026"


def selection_words(view: dict[str, Any]) -> str:
    """What a job selected, in words: "HTTP 503 Service Unavailable on MediSwitch (Aborted)"."""
    chosen = view["Selection"]
    parts: list[str] = []
    if chosen.get("Cause"):
        parts.append(describe(chosen["Cause"]).label)
    flt = chosen.get("Filter") or {}
    if flt.get("System"):
        parts.append(f"on {flt['System']}")
    if flt.get("Q"):
        parts.append(f"matching \u201c{flt['Q']}\u201d")
    if flt.get("InvoiceIds"):
        parts.append(f"of {plural(len(flt['InvoiceIds']), 'invoice')} found by the search")
    if chosen.get("SendingIdCount"):
        parts.append(f"{plural(chosen['SendingIdCount'], 'chosen invoice')}")
    words = " ".join(parts) or "Every matching invoice"
    statuses = flt.get("Status") or []
    return f"{words} ({', '.join(s.lower() for s in statuses)})" if statuses else words


def page_notes(view: dict[str, Any]) -> list[str]:
    """What is (not) included, in the dashboard's words (the API's notes name its fields)."""
    would = "would be" if view["DryRun"] else "are"
    notes = []
    if n := view["SentLeftOut"]:
        notes.append(f"{plural(n, 'delivered invoice')} {would} left out: they got through.")
    if n := view["DiscardedLeftOut"]:
        notes.append(
            f"{plural(n, 'discarded invoice')} {would} left out: someone gave up on them. "
            "Tick them in the discarded list to resend them anyway."
        )
    if n := view["SentIncluded"]:
        notes.append(f"{plural(n, 'delivered invoice')} {would} sent again.")
    return notes


async def _job(db: Session, job_id: uuid.UUID) -> ResendJob:
    job = await db.get(ResendJob, job_id)
    if job is None:
        raise PageError(404, "No such job", "There is no resend job with this id.")
    return job


@router.get("/admin/jobs")
async def jobs_page(request: Request, principal: AdminPage, db: Session) -> Response:
    """Admins: the most recent resend jobs and dry runs."""
    views = [job_view(job) for job in await recent_jobs(db, limit=RECENT)]
    rows = [{**v, "what": selection_words(v), "progress": progress_text(v)} for v in views]
    return render(request, "jobs.html", {"rows": rows, "recent": RECENT})


# Declared before ``/admin/jobs/{job_id}``, which would otherwise take "<id>.json" as its id.
@router.get("/admin/jobs/{job_id}.json")
async def job_progress(job_id: uuid.UUID, principal: AdminPage, db: Session) -> Response:
    """Admins (session cookie): the job's progress as JSON, for the page's progress bar."""
    view = job_view(await _job(db, job_id))
    body = {"JobId": str(view["JobId"]), **{k: view[k] for k in PROGRESS_FIELDS}}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


#: What became of a job's invoices, by their status now (a resend job's words).
AFTER_RESEND: Final = {
    "Sent": "Delivered",
    "Pending": "Still waiting to be sent",
    "Sending": "Being sent now",
    "Failed": "Failed again; will be retried",
    "Aborted": "Failed again; no more attempts",
    "Discarded": "Discarded since",
    "Cancelled": "Cancelled since",
}


@router.get("/admin/jobs/{job_id}")
async def job_page(
    request: Request, job_id: uuid.UUID, principal: AdminPage, db: Session
) -> Response:
    """Admins: one job's progress (updating while it runs), then what became of each invoice
    it changed; or a dry run: what it would do, with the first invoices it would change."""
    job = await _job(db, job_id)
    view = job_view(job)
    cause = view["Selection"].get("Cause")
    members: list[Any] = []
    by_status: dict[str, int] = {}
    if job.dry_run or job.status != "Running":
        members, by_status = await job_members(db, job, ITEM_COLUMNS)
    names = await practice_names(db, {row[1] for row in members})
    rows = []
    for row in members:
        item = sending_item(row)
        item["PracticeLabel"] = label(item["PracticeId"], names.get(item["PracticeId"]))
        rows.append(item)
    outcomes = [
        (AFTER_RESEND.get(status, status), count)
        for status, count in sorted(by_status.items(), key=lambda kv: -kv[1])
    ]
    return render(
        request,
        "job.html",
        {
            "job": view,
            "discard": job.action == "discard",
            "what": selection_words(view),
            "progress": progress_text(view),
            "handled": view["Done"] + view["Skipped"] + view["Failed"],
            "notes": page_notes(view),
            "members": rows,
            "member_count": sum(by_status.values()),
            "outcomes": outcomes,
            "cause_href": f"/admin/causes/{quote(cause, safe='')}" if cause else None,
            "list_href": f"/admin/aborted?cause={quote(cause, safe='')}" if cause else None,
            "poll_url": f"/admin/jobs/{view['JobId']}.json",
        },
    )


@router.post("/admin/jobs/{job_id}/run")
async def run_preview(
    job_id: uuid.UUID, principal: AdminPage, form: CsrfForm, state: State, db: Session
) -> Response:
    """Admins, with the CSRF token and a reason: resend what dry run `job_id` showed (only
    sendings unchanged since it, as the API's ``PreviewJobId`` does); 303 to the new job."""
    reason = required_reason(form)
    preview = await _job(db, job_id)
    try:
        job = await create_job(
            db,
            principal=principal,
            selection=None,
            force=preview.force,
            dry_run=False,
            reason=reason,
            now=state.clock.now(),
            preview_job_id=job_id,
            action=preview.action,
        )
    except ResendRefused as exc:
        raise page_error_of(exc, "The resend was not started") from None
    await db.commit()
    return RedirectResponse(f"/admin/jobs/{job.id}", status_code=303)
