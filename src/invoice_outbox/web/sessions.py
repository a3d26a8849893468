"""Sign-in sessions of the dashboard: a server-side table and a signed cookie.

The cookie ``io_session`` holds a random token signed with a key derived from the service's
signing key (auth/keys.py): ``<token>.<hmac>``.  The database keeps only SHA-256 of the token
(table ``web_sessions``), so signing out or idling out really ends a session, in every process.
Cookie flags: HttpOnly, SameSite=Lax, Path=/admin, Secure when the request came over HTTPS, no
Max-Age (the browser forgets it when closed; the server forgets it after
``INVOICE_OUTBOX_SESSION_IDLE_SECONDS`` without a request).

Dependencies for page routes (FastAPI ``Annotated`` types):

- `PagePrincipal`: the signed-in `Principal`; without a valid session the browser is redirected
  (303) to ``/admin/login?next=<this page>``.
- `AdminPage`: the same, for admins only; a practice user gets a plain 403 page.
- `CurrentSession`: the `SignedIn` record (principal, CSRF token, ids), e.g. for logout.

Time is the injected clock (``state.clock``), so tests move it instead of sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Final

from fastapi import Depends, Request
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from invoice_outbox.api.deps import State
from invoice_outbox.auth.models import User, WebSession
from invoice_outbox.auth.principal import Principal
from invoice_outbox.auth.users import principal_of
from invoice_outbox.state import AppState
from invoice_outbox.web.errors import LoginRequired, not_for_you

COOKIE_NAME: Final = "io_session"
COOKIE_PATH: Final = "/admin"
#: A session's last-seen time is written at most this often (one write a minute, not per page).
TOUCH_EVERY: Final = timedelta(seconds=60)
_KEY_PURPOSE: Final = b"invoice-outbox/web-session/v1"
_UNSET: Final = object()


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The signed-in browser of a request."""

    principal: Principal
    csrf_token: str
    session_id: str
    user_id: uuid.UUID


def cookie_key(signing_key: bytes) -> bytes:
    """The key that signs session (and sign-in form) cookies, derived from the service's key:
    a leaked cookie key does not let anyone forge bearer tokens, and no secret is in the repo."""
    return hmac.new(signing_key, _KEY_PURPOSE, hashlib.sha256).digest()


def sign(value: str, key: bytes) -> str:
    """``value.<mac>``: `value` with an HMAC-SHA256 tag (URL-safe base64)."""
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return f"{value}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def unsign(signed: str, key: bytes) -> str | None:
    """The value of a `sign`ed string, or None when the tag is missing or wrong."""
    value, dot, _ = signed.rpartition(".")
    if not dot or not value:
        return None
    return value if hmac.compare_digest(sign(value, key).encode(), signed.encode()) else None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS (the cookie is then marked Secure)."""
    return request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, name: str, value: str, *, path: str = COOKIE_PATH
) -> None:
    """Set a dashboard cookie with the flags every one of them carries."""
    response.set_cookie(
        name,
        value,
        path=path,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_cookie(
    response: Response, request: Request, name: str, *, path: str = COOKIE_PATH
) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=is_https(request))


async def start_session(
    db: AsyncSession, *, user_id: uuid.UUID, now: datetime, idle: timedelta, key: bytes
) -> str:
    """Create a session for `user_id` (flushed, not committed); return the cookie value.

    Sessions idle longer than `idle` (anyone's) are deleted on the way: cheap, by index.
    """
    token = secrets.token_urlsafe(32)
    await db.execute(delete(WebSession).where(WebSession.last_seen_at < now - idle))
    db.add(
        WebSession(
            id=_hash(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
        )
    )
    await db.flush()
    return sign(token, key)


async def end_session(db: AsyncSession, session_id: str) -> None:
    """Delete a session (flushed, not committed): its cookie no longer signs anyone in."""
    await db.execute(delete(WebSession).where(WebSession.id == session_id))


def session_id_of_cookie(request: Request, key: bytes) -> str | None:
    """The stored id of the session the request's cookie names (not checked against the table)."""
    raw = request.cookies.get(COOKIE_NAME)
    token = unsign(raw, key) if raw else None
    return _hash(token) if token else None


async def load_signed_in(request: Request, state: AppState) -> SignedIn | None:
    """The request's valid session, or None.  Cached on the request; expires idle sessions and
    moves `last_seen_at` forward (committed in a short transaction of its own)."""
    cached = getattr(request.state, "signed_in", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    signed_in = await _load(request, state)
    request.state.signed_in = signed_in
    return signed_in


async def _load(request: Request, state: AppState) -> SignedIn | None:
    session_id = session_id_of_cookie(request, cookie_key(state.signing_key))
    if session_id is None:
        return None
    now = state.clock.now()
    idle = timedelta(seconds=state.settings.session_idle_seconds)
    async with state.sessions() as db:
        row = (
            await db.execute(
                select(WebSession, User)
                .join(User, User.id == WebSession.user_id)
                .where(WebSession.id == session_id)
            )
        ).first()
        if row is None:
            return None
        stored, user = row
        if now - stored.last_seen_at >= idle:
            await end_session(db, session_id)
            await db.commit()
            return None
        if now - stored.last_seen_at >= TOUCH_EVERY:
            await db.execute(
                update(WebSession).where(WebSession.id == session_id).values(last_seen_at=now)
            )
            await db.commit()
        return SignedIn(
            principal=principal_of(user),
            csrf_token=stored.csrf_token,
            session_id=session_id,
            user_id=user.id,
        )


def signed_in_of(request: Request) -> SignedIn | None:
    """The session already loaded for this request by a dependency (None if none was)."""
    found = getattr(request.state, "signed_in", None)
    return found if isinstance(found, SignedIn) else None


def _login_target(request: Request) -> str:
    if request.method not in ("GET", "HEAD"):
        return "/admin/"  # a form posted after the session ended: start again from the overview
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def current_session(request: Request, state: State) -> SignedIn:
    """The signed-in browser; redirect to the sign-in page without one."""
    signed_in = await load_signed_in(request, state)
    if signed_in is None:
        raise LoginRequired(_login_target(request))
    return signed_in


CurrentSession = Annotated[SignedIn, Depends(current_session)]


async def page_principal(signed_in: CurrentSession) -> Principal:
    """Any signed-in user (admins and practice users)."""
    return signed_in.principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


async def admin_page(principal: PagePrincipal) -> Principal:
    """Admins only: a practice user gets a plain 403 page."""
    if not principal.is_admin:
        raise not_for_you()
    return principal


AdminPage = Annotated[Principal, Depends(admin_page)]
