"""Mounting the dashboard on the app: page routes, static files, HTML error pages.

Pages live under ``/admin``; errors there (404, 405, bad forms, CSRF, 500, and the domain's
errors by kind: `invoice_outbox.web.errors.page_error_of`) are answered with an HTML page, while
every other path keeps the API's ``{"Message": ...}`` errors: the handlers the API installed
are wrapped, not replaced.  A database that cannot be reached is translated into the domain's
`Unavailable` once, for both front ends (`invoice_outbox.api.errors`), and so shown here as the
503 page of that kind, with ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from invoice_outbox.errors import OutboxError
from invoice_outbox.web import (
    audit_page,
    bulk,
    causes,
    invoice_page,
    jobs_page,
    login,
    overview,
    practice_view,
    systems_page,
)
from invoice_outbox.web import lists as list_pages
from invoice_outbox.web.errors import UNEXPECTED, LoginRequired, PageError, page_error_of
from invoice_outbox.web.sessions import load_signed_in
from invoice_outbox.web.templating import STATIC_DIR, render

log = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[Response]]

#: Every page route of the dashboard (the next pages add their routers here).
router = APIRouter(include_in_schema=False)
router.include_router(login.router)
router.include_router(overview.router)
router.include_router(list_pages.router)
router.include_router(practice_view.router)
router.include_router(invoice_page.router)
router.include_router(causes.router)
router.include_router(jobs_page.router)
router.include_router(audit_page.router)
router.include_router(systems_page.router)
router.include_router(bulk.router)

_TITLES = {
    400: "Please check the request",
    404: "Page not found",
    405: "Not possible here",
    413: "Too large",
    429: "Too many requests",
}


def is_page_path(path: str) -> bool:
    """Whether `path` belongs to the dashboard (HTML answers)."""
    return path == "/admin" or path.startswith("/admin/")


async def error_page(request: Request, status: int, title: str, message: str) -> Response:
    """A plain HTML error page (the layout, the title, one message, a way back).

    The session is read (when the request has not yet) so a signed-in user keeps the
    navigation and sign-out form on error pages too.
    """
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        try:
            await load_signed_in(request, runtime)
        except Exception:  # the error page must render even when the database is the problem
            log.warning("session not read for an error page", extra={"action": "page.error"})
    return render(request, "error.html", {"title": title, "message": message}, status)


async def _on_page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    response = await error_page(request, exc.status, exc.title, exc.message)
    response.headers.update(exc.headers)
    return response


async def _page_domain_error(request: Request, exc: Exception) -> Response:
    """A domain error under ``/admin``: the error page of its kind (`page_error_of`)."""
    assert isinstance(exc, OutboxError)
    return await _on_page_error(request, page_error_of(exc))


async def _on_login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(
        f"{login.LOGIN_PATH}?{urlencode({'next': exc.next_path})}", status_code=303
    )


def _wrap(previous: Handler | None, page: Handler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        if is_page_path(request.url.path) or previous is None:
            return await page(request, exc)
        return await previous(request, exc)

    return handler


async def _page_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = "There is no page at this address. Check the link, or start from the overview."
    elif exc.status_code == 405:
        message = "This address does not accept that kind of request."
    else:
        message = str(exc.detail)
    title = _TITLES.get(exc.status_code, "Something is not right")
    return await error_page(request, exc.status_code, title, message)


async def _page_validation(request: Request, exc: Exception) -> Response:
    return await error_page(
        request, 400, _TITLES[400], "Some of what was sent is not valid. Go back and check it."
    )


async def _page_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"action": "page.error", "path": request.url.path})
    return await error_page(request, 500, "Something went wrong", UNEXPECTED)


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Anyone: the dashboard's icon, for browsers that ask for /favicon.ico by habit."""
    return RedirectResponse("/admin/static/favicon.svg", status_code=308)


def install(app: FastAPI) -> None:
    """Add the dashboard to `app` (after the API's error handlers are installed)."""
    app.include_router(router)
    app.mount("/admin/static", StaticFiles(directory=STATIC_DIR), name="admin-static")
    app.add_exception_handler(PageError, _on_page_error)
    app.add_exception_handler(LoginRequired, _on_login_required)
    handlers = app.exception_handlers
    for kind, page in (
        (OutboxError, _page_domain_error),
        (HTTPException, _page_http),
        (RequestValidationError, _page_validation),
        (Exception, _page_unexpected),
    ):
        previous = cast(Handler | None, handlers.get(kind))
        app.add_exception_handler(kind, _wrap(previous, page))
