"""CSRF protection for every state-changing request of the dashboard.

Each session has a random token (``web_sessions.csrf_token``).  Every form that POSTs carries it
in a hidden field, and every JavaScript ``fetch`` POST in the ``X-CSRF-Token`` header::

    <form method="post" action="...">
      <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
      ...

    fetch(url, {method: "POST", headers: {"X-CSRF-Token": invoiceOutbox.csrfToken()}, ...})

A POST route takes the checked form as a dependency, **before** it changes anything::

    @router.post("/admin/things/{id}/resend", include_in_schema=False)
    async def resend(principal: AdminPage, form: CsrfForm, ...) -> Response:
        reason = form.get("reason")
        ...

or, for a JSON/JS POST without a form, ``dependencies=[CsrfChecked]``.  A missing or wrong
token raises `CsrfRefused`: a 403 page "This form has expired; reload the page and try again",
and the route body never runs.  Tokens are compared with `hmac.compare_digest`.

The sign-in form has no session yet: it uses a signed double-submit cookie instead
(`login_form_token` / `check_login_form`), bound to the sign-in page's path.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Final

from fastapi import Depends, Request
from starlette.datastructures import FormData

from invoice_outbox.web.errors import PageError
from invoice_outbox.web.sessions import CurrentSession, sign, unsign

CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"
EXPIRED_MESSAGE: Final = "This form has expired; reload the page and try again."
LOGIN_CSRF_COOKIE: Final = "io_login_csrf"


class CsrfRefused(PageError):
    """A state-changing request without the right CSRF token (403; nothing was changed)."""

    def __init__(self) -> None:
        super().__init__(403, "This form has expired", EXPIRED_MESSAGE)


def tokens_match(expected: str, given: object) -> bool:
    """Constant-time comparison; an empty or non-text token never matches."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _given_token(request: Request, form: FormData | None) -> object:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    return form.get(CSRF_FIELD) if form is not None else None


async def verified_form(request: Request, expected: str) -> FormData:
    """The request's form, after checking its CSRF token (field or header) against `expected`.

    Raises `CsrfRefused` when it does not match.
    """
    form = await request.form()
    if not tokens_match(expected, _given_token(request, form)):
        raise CsrfRefused()
    return form


async def csrf_form(request: Request, signed_in: CurrentSession) -> FormData:
    """Dependency: the signed-in session's checked form (see the module doc)."""
    return await verified_form(request, signed_in.csrf_token)


CsrfForm = Annotated[FormData, Depends(csrf_form)]


async def csrf_header(request: Request, signed_in: CurrentSession) -> None:
    """Dependency for POSTs without a form body: the ``X-CSRF-Token`` header must match."""
    if not tokens_match(signed_in.csrf_token, request.headers.get(CSRF_HEADER)):
        raise CsrfRefused()


CsrfChecked = Depends(csrf_header)


def new_login_form_token() -> str:
    """A fresh token for the sign-in form (its field value; the cookie holds it signed)."""
    return secrets.token_urlsafe(32)


def login_form_token(request: Request, key: bytes) -> str | None:
    """The sign-in form token the browser's cookie carries (None if absent or forged)."""
    raw = request.cookies.get(LOGIN_CSRF_COOKIE)
    return unsign(raw, key) if raw else None


def signed_login_form_token(token: str, key: bytes) -> str:
    return sign(token, key)


def check_login_form(request: Request, form: FormData, key: bytes) -> None:
    """The sign-in form's field must match its cookie (double submit); else `CsrfRefused`."""
    expected = login_form_token(request, key)
    if expected is None or not tokens_match(expected, form.get(CSRF_FIELD)):
        raise CsrfRefused()
