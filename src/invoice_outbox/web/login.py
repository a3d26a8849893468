"""Sign-in and sign-out pages.

- ``GET /admin/login`` (anyone): the sign-in form.
- ``POST /admin/login`` (anyone): check name and password; on success start a session and go
  to ``next`` (local ``/admin`` paths only) or the overview.  Failures are counted
  (auth/lockout.py); a locked name or client is refused for a while.
- ``POST /admin/logout`` (signed-in users, with the CSRF token): end the session.

Sign-ins, sign-outs and lock-outs are written to the audit log.  Passwords are never logged.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from invoice_outbox.admin import audit
from invoice_outbox.admin.sign_in import LOCKED, Outcome, check_password
from invoice_outbox.api.deps import Session, State
from invoice_outbox.auth.lockout import LockoutPolicy
from invoice_outbox.auth.models import User
from invoice_outbox.web.csrf import (
    LOGIN_CSRF_COOKIE,
    CsrfForm,
    check_login_form,
    login_form_token,
    new_login_form_token,
    signed_login_form_token,
)
from invoice_outbox.web.sessions import (
    COOKIE_NAME,
    CurrentSession,
    clear_cookie,
    cookie_key,
    end_session,
    load_signed_in,
    session_id_of_cookie,
    set_cookie,
    start_session,
)
from invoice_outbox.web.templating import render

router = APIRouter(include_in_schema=False)

LOGIN_PATH: Final = "/admin/login"
HOME: Final = "/admin/"
WRONG: Final = "The user name or password is not right."
__all__ = ["LOCKED", "WRONG", "router", "safe_next"]
MAX_FIELD: Final = 1000
_UNSAFE = re.compile(r"[\x00-\x20\\\x7f]")


def safe_next(target: object) -> str:
    """`target` when it is a local dashboard path (``/admin...``), else the overview.

    Refuses absolute and scheme-relative URLs (``//evil``, ``/\\evil``), anything with control
    characters, spaces or backslashes, so a sign-in link can never send the user elsewhere.
    """
    if not isinstance(target, str) or not target or len(target) > 2000 or _UNSAFE.search(target):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return HOME
    if parts.path != "/admin" and not parts.path.startswith("/admin/"):
        return HOME
    if parts.path == LOGIN_PATH:
        return HOME
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _form_page(
    request: Request, *, next_path: str, error: str | None, status: int, user_name: str = ""
) -> Response:
    key = cookie_key(request.app.state.runtime.signing_key)
    token = login_form_token(request, key) or new_login_form_token()
    response = render(
        request,
        "login.html",
        {"next": next_path, "error": error, "login_token": token, "user_name": user_name},
        status,
    )
    set_cookie(
        response, request, LOGIN_CSRF_COOKIE, signed_login_form_token(token, key), path=LOGIN_PATH
    )
    return response


@router.get(LOGIN_PATH)
async def login_page(request: Request, state: State) -> Response:
    """Anyone: the sign-in form (already signed in: straight to ``next``)."""
    next_path = safe_next(request.query_params.get("next"))
    if await load_signed_in(request, state) is not None:
        return RedirectResponse(next_path, status_code=303)
    return _form_page(request, next_path=next_path, error=None, status=200)


def _text(value: object) -> str:
    return value[:MAX_FIELD] if isinstance(value, str) else ""


@router.post(LOGIN_PATH)
async def login(request: Request, state: State, db: Session) -> Response:
    """Anyone: sign in with a name and password (plus the form's CSRF token)."""
    key = cookie_key(state.signing_key)
    form = await request.form()
    check_login_form(request, form, key)
    name, password = _text(form.get("username")).strip(), _text(form.get("password"))
    next_path = safe_next(form.get("next"))
    if not name or not password:
        return _form_page(
            request,
            next_path=next_path,
            error="Enter your user name and password.",
            status=400,
            user_name=name,
        )
    now = state.clock.now()
    checked = await check_password(
        state.sessions,
        name=name,
        password=password,
        client=_client(request),
        now=now,
        policy=LockoutPolicy.from_settings(state.settings),
        via="dashboard",
    )
    if checked.outcome is Outcome.LOCKED:
        return _form_page(request, next_path=next_path, error=LOCKED, status=429, user_name=name)
    principal = checked.principal
    if principal is None:
        return _form_page(request, next_path=next_path, error=WRONG, status=401, user_name=name)
    user_id = await db.scalar(select(User.id).where(User.name == name))
    assert user_id is not None  # the password check found them
    old = session_id_of_cookie(request, key)
    if old is not None:
        await end_session(db, old)  # a new id at every sign-in: no session fixation
    cookie = await start_session(
        db,
        user_id=user_id,
        now=now,
        idle=timedelta(seconds=state.settings.session_idle_seconds),
        key=key,
    )
    await audit.record(db, principal=principal, action="session.sign_in", reason=None, now=now)
    await db.commit()
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(response, request, COOKIE_NAME, cookie)
    clear_cookie(response, request, LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/admin/logout")
async def logout(
    request: Request, state: State, db: Session, signed_in: CurrentSession, _form: CsrfForm
) -> Response:
    """Signed-in users (with the CSRF token): end this session and go to the sign-in page."""
    await end_session(db, signed_in.session_id)
    await audit.record(
        db,
        principal=signed_in.principal,
        action="session.sign_out",
        reason=None,
        now=state.clock.now(),
    )
    await db.commit()
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    clear_cookie(response, request, COOKIE_NAME)
    return response
