"""One invoice: its sendings and every attempt (``GET /admin/invoices/{invoice_id}``), and the
admins' single actions on a sending of it (resend, discard).

Who may call:

- ``GET /admin/invoices/{invoice_id}``: admins (any invoice) and practice users (invoices of
  their own practices).  An invoice of another practice answers **404**, the very page a
  made-up id gets, never 403: a 403 would confirm that the id exists elsewhere, and invoice
  ids are not for other practices to probe.  The API draws the same line where the URL names
  only the object (resend/discard of a sending: 404 alike for missing and for another
  practice's); its detail route answers 403 only because its path names a practice, which the
  caller can check for themselves.  An id that is not a GUID is also 404.
- ``POST /admin/invoices/{invoice_id}/sendings/{sending_id}/resend`` and ``.../discard``:
  admins, with the form's CSRF token (`CsrfForm`) and a reason (1 to 1000 characters).  They
  call the API's service functions (`resend_one`, `discard_one`), so the change and its audit
  entry are exactly those of ``POST api/v1/billing/sendings/{id}/resend`` / ``discard``, then
  redirect (303) back to the invoice with ``?done=resent`` / ``?done=discarded``, shown as a
  ``role="status"`` message.  Without a reason, or when the sending cannot take the action
  now (409: e.g. it is Pending already), the invoice page is shown again with the error and
  that status; nothing is changed.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Final

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from invoice_outbox.admin.resends import ResendRefused
from invoice_outbox.admin.sending_actions import discard_one, resend_one
from invoice_outbox.api.deps import Session, State
from invoice_outbox.auth.principal import Principal
from invoice_outbox.db.waker import commit_and_wake
from invoice_outbox.errors import NotFound
from invoice_outbox.practices.service import label, practice_names
from invoice_outbox.sendings.invoice_history import invoice_sendings
from invoice_outbox.state import AppState
from invoice_outbox.web.csrf import CsrfForm
from invoice_outbox.web.errors import PageError, page_error_of
from invoice_outbox.web.invoice_view import MAX_REASON, invoice_view
from invoice_outbox.web.sessions import AdminPage, PagePrincipal
from invoice_outbox.web.templating import render

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

#: What a ``?done=`` confirmation says.
DONE: Final = {
    "resent": "Queued again: it will be sent shortly. Your reason is in the audit log.",
    "discarded": (
        "Discarded: no more attempts will be made, and bulk resends leave it alone. "
        "Your reason is in the audit log."
    ),
}


def not_found() -> PageError:
    """404 alike for an id nobody has and for another practice's invoice (module doc)."""
    return PageError(
        404,
        "Invoice not found",
        "There is no invoice with this id that you can see. Check the link, or find the "
        "invoice in the lists.",
    )


def _id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise not_found() from None


async def _page(
    request: Request,
    state: AppState,
    session: AsyncSession,
    principal: Principal,
    invoice_id: uuid.UUID,
    *,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> Response:
    practices = None if principal.is_admin else principal.practices
    sendings = await invoice_sendings(session, invoice_id, practices=practices)
    if not sendings:
        raise not_found()
    view = await invoice_view(
        session, sendings, zone=state.settings.zone, now=state.clock.now(), admin=principal.is_admin
    )
    done = request.query_params.get("done", "")
    names = await practice_names(session, view.practice_ids)
    context: dict[str, Any] = {
        "invoice": view,
        "practice_labels": {p: label(p, names.get(p)) for p in view.practice_ids},
        "done": DONE.get(done) if status == 200 else None,
        "error": None,
        "error_for": None,
        "reason_value": "",
        "max_reason": MAX_REASON,
    }
    context.update(extra or {})
    return render(request, "invoice.html", context, status)


@router.get("/admin/invoices/{invoice_id}")
async def invoice_page(
    request: Request, principal: PagePrincipal, state: State, session: Session, invoice_id: str
) -> Response:
    """Admins: any invoice; practice users: their practices' invoices (else 404)."""
    return await _page(request, state, session, principal, _id(invoice_id))


def _reason_problem(form_value: object) -> str | None:
    reason = form_value.strip() if isinstance(form_value, str) else ""
    if not reason:
        return "Give a reason: it is kept in the audit log with what you did."
    if len(reason) > MAX_REASON or "\0" in reason:
        return f"The reason must be at most {MAX_REASON} characters of text."
    return None


async def _act(
    request: Request,
    state: AppState,
    session: AsyncSession,
    principal: Principal,
    form: Any,
    ids: tuple[str, str],
    action: str,
) -> Response:
    invoice_id, sending_id = _id(ids[0]), _id(ids[1])
    raw_reason = form.get("reason")
    typed = raw_reason if isinstance(raw_reason, str) else ""
    sendings = await invoice_sendings(session, invoice_id, practices=None)
    if sending_id not in {s.id for s in sendings}:
        raise not_found()

    async def again(status: int, message: str) -> Response:
        await session.rollback()
        extra = {
            "error": message,
            "error_for": (str(sending_id), action),
            "reason_value": typed[:MAX_REASON],
        }
        return await _page(
            request, state, session, principal, invoice_id, status=status, extra=extra
        )

    problem = _reason_problem(raw_reason)
    if problem is not None:
        return await again(400, problem)
    reason, now = typed.strip(), state.clock.now()
    try:
        if action == "resend":
            await resend_one(
                session,
                principal=principal,
                sending_id=sending_id,
                reason=reason,
                force=False,
                now=now,
            )
            await commit_and_wake(session, state.waker)
        else:
            await discard_one(
                session, principal=principal, sending_id=sending_id, reason=reason, now=now
            )
            await session.commit()
    except ResendRefused as exc:
        if isinstance(exc, NotFound):
            raise not_found() from None
        refused = page_error_of(exc)
        return await again(refused.status, refused.message)
    done = "resent" if action == "resend" else "discarded"
    log.info(
        f"dashboard {action}",
        extra={
            "action": f"web.{action}",
            "actor": principal.subject,
            "sending_id": str(sending_id),
            "invoice_id": str(invoice_id),
        },
    )
    return RedirectResponse(
        f"/admin/invoices/{invoice_id}?done={done}#sending-{sending_id}", status_code=303
    )


@router.post("/admin/invoices/{invoice_id}/sendings/{sending_id}/resend")
async def resend(
    request: Request,
    principal: AdminPage,
    form: CsrfForm,
    state: State,
    session: Session,
    invoice_id: str,
    sending_id: str,
) -> Response:
    """Admins: queue a Failed or Aborted sending of this invoice again (reason required)."""
    return await _act(request, state, session, principal, form, (invoice_id, sending_id), "resend")


@router.post("/admin/invoices/{invoice_id}/sendings/{sending_id}/discard")
async def discard(
    request: Request,
    principal: AdminPage,
    form: CsrfForm,
    state: State,
    session: Session,
    invoice_id: str,
    sending_id: str,
) -> Response:
    """Admins: give up for good on an Aborted sending of this invoice (reason required)."""
    return await _act(request, state, session, principal, form, (invoice_id, sending_id), "discard")
