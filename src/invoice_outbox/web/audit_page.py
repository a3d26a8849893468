"""The audit log: ``GET /admin/audit``.

Who may call it: admins (practice users get a 403 page; nobody signed in goes to sign-in).

Newest first, `PAGE_SIZE` entries a page, with the API's keyset cursor (`audit.query`, so a
page deep in the log costs what the first one does).  Filters, as the API has them:
``action`` (one of `audit.ACTIONS`), ``actor`` (exact name), ``from`` and ``to`` (calendar
days in the service's time zone, both included, read by the lists' ``parse_moment``), and
``cursor`` (the "Older entries" link's; a cursor not handed out here is a 400 page).
Times are shown in the service's zone; each action in words; the reason as the person gave it.
"""

from __future__ import annotations

import uuid
from typing import Any, Final
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.admin import audit
from invoice_outbox.admin.models import AuditEntry
from invoice_outbox.api.deps import Session, State
from invoice_outbox.sendings.list_query import parse_moment
from invoice_outbox.web.errors import PageError
from invoice_outbox.web.params import query_value
from invoice_outbox.web.sessions import AdminPage
from invoice_outbox.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE: Final = 50
_DETAIL_CHARS: Final = 160

#: Each action in words (the table's "What" column and the filter's choices).
ACTION_WORDS: Final = {
    "sendings.resend": "Sent one invoice again",
    "sendings.retry_all": "Retried every failed invoice",
    "sendings.discard": "Gave up on an invoice (discarded)",
    "resend_job.start": "Started a resend job",
    "resend_job.batch": "Resend job queued a batch",
    "resend_job.finish": "Resend job finished",
    "invoice.cancel": "Cancelled an invoice",
    "system.put": "Changed a system's set-up",
    "discard_job.start": "Started discarding many invoices",
    "discard_job.batch": "Discard job discarded a batch",
    "discard_job.finish": "Discard job finished",
    "user.add": "Added a user",
    "user.password": "Changed a user's password",
    "user.unlock": "Lifted a sign-in pause",
    "practice.name": "Named a practice",
    "session.sign_in": "Signed in",
    "session.sign_out": "Signed out",
    "session.lockout": "Sign-in paused after failed attempts",
}


def action_words(action: str) -> str:
    """An action in plain words (the code itself for one this page does not know)."""
    return ACTION_WORDS.get(action, action)


def _target_href(entry: AuditEntry) -> str | None:
    """Where the entry's target can be looked at on the dashboard, if anywhere."""
    target = entry.target
    if not target:
        return None
    if entry.action.startswith("resend_job."):
        try:
            return f"/admin/jobs/{uuid.UUID(target)}"
        except ValueError:
            return None
    if entry.action == "invoice.cancel":
        return f"/admin/invoices/{quote(target, safe='')}"
    if entry.action == "system.put":
        return "/admin/systems"
    return None


def _detail_text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "\u2026"


def entry_row(entry: AuditEntry) -> dict[str, Any]:
    """What the table shows of one entry (details as short ``key: value`` texts)."""
    details = entry.details or {}
    return {
        "id": entry.id,
        "time": entry.time,
        "actor": entry.actor,
        "role": entry.actor_role,
        "action": entry.action,
        "words": action_words(entry.action),
        "reason": entry.reason,
        "target": entry.target,
        "href": _target_href(entry),
        "affected": entry.affected_count,
        "details": [(k, _detail_text(v)) for k, v in details.items() if v not in (None, "", [])],
    }


def _read_filters(request: Request, state: State) -> tuple[audit.AuditQuery, dict[str, str]]:
    """The page's filters as the API's `AuditQuery`, and as given (for the form and links)."""
    given = {
        name: value
        for name in ("action", "actor", "from", "to")
        if (value := query_value(request, name)) is not None
    }
    action = given.get("action")
    if action is not None and action not in audit.ACTIONS:
        raise PageError(400, "Please check the request", "The action filter is not an action.")
    zone = state.settings.zone
    since = parse_moment("from", given["from"], zone, end=False) if "from" in given else None
    until = parse_moment("to", given["to"], zone, end=True) if "to" in given else None
    if since is not None and until is not None and since >= until:
        raise PageError(400, "Please check the request", "The from date is after the to date.")
    filters = audit.AuditQuery(actor=given.get("actor"), action=action, since=since, until=until)
    return filters, given


@router.get("/admin/audit")
async def audit_page(request: Request, principal: AdminPage, state: State, db: Session) -> Response:
    """Admins: the audit log, newest first, a page at a time (filters: see the module doc)."""
    filters, given = _read_filters(request, state)
    cursor = query_value(request, "cursor", max_length=200)
    try:
        entries, next_cursor = await audit.query(db, filters, limit=PAGE_SIZE, cursor=cursor)
    except audit.BadCursor:
        raise PageError(
            400,
            "Please check the request",
            "This page link is not valid; start again from the first page.",
        ) from None
    query = urlencode(sorted(given.items()))
    older = None
    if next_cursor is not None:
        older = "/admin/audit?" + urlencode([*sorted(given.items()), ("cursor", next_cursor)])
    return render(
        request,
        "audit.html",
        {
            "rows": [entry_row(e) for e in entries],
            "given": given,
            "actions": ACTION_WORDS,
            "older": older,
            "first": "/admin/audit" + (f"?{query}" if query else "") if cursor else None,
            "filtered": bool(given),
        },
    )
