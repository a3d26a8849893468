"""Errors in the Web API shape, mapped once for the whole app.

Every error body is ``{"Message": "..."}`` (or ``<Error><Message>...</Message></Error>``), in
the format the request's Accept header negotiates.  Nothing escapes as a bare 500 page.

The domain's errors (`invoice_outbox.errors`) are mapped here by kind, and only here; routes
let them propagate:

    NotFound 404 · Conflict 409 · Invalid 400 · Forbidden 403 · Unavailable 503 (+ Retry-After)

The message is the error's own, except an `Invalid` one, which reads as ASP.NET Web API words
a bad request: ``The request is invalid: <message>.``  `ApiError` is for answers only HTTP
knows: 401 with ``WWW-Authenticate``, and a body that is not JSON or XML of the right shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from invoice_outbox.auth.principal import DENIED
from invoice_outbox.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    OutboxError,
    Unavailable,
)
from invoice_outbox.legacy.json_format import error_json
from invoice_outbox.legacy.negotiation import negotiate
from invoice_outbox.legacy.xml_format import error_xml

log = logging.getLogger(__name__)

__all__ = [
    "DENIED",
    "STATUS_OF_KIND",
    "ApiError",
    "domain_answer",
    "error_response",
    "error_response_for_scope",
    "install_error_handlers",
    "invalid_message",
    "unauthorized",
]

#: The status code of each kind of domain error (the first kind an error is, wins).
STATUS_OF_KIND: Final[tuple[tuple[type[OutboxError], int], ...]] = (
    (NotFound, 404),
    (Conflict, 409),
    (Invalid, 400),
    (Forbidden, 403),
    (Unavailable, 503),
)


class ApiError(Exception):
    """An answer only HTTP has (401, a body that cannot be read); `message` is shown as is.

    Anything the domain decides is an `OutboxError` instead (see the module doc).
    """

    def __init__(
        self, status_code: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = dict(headers or {})


def unauthorized() -> ApiError:
    return ApiError(401, DENIED, headers={"WWW-Authenticate": 'Bearer realm="invoice-outbox"'})


def invalid_message(problem: str) -> str:
    """A bad request in ASP.NET Web API's words."""
    return f"The request is invalid: {problem}."


def domain_answer(error: OutboxError) -> tuple[int, str, dict[str, str]]:
    """Status code, message and headers of a domain error (see the module doc).

    An error of no kind (a bare `OutboxError`, which the domain must not raise) is a 500.
    """
    status = next((code for kind, code in STATUS_OF_KIND if isinstance(error, kind)), 500)
    if status == 500:
        kind = type(error).__name__
        log.error("domain error of no kind", extra={"action": "request.error", "error": kind})
        return 500, "An error has occurred.", {}
    message = invalid_message(error.message) if isinstance(error, Invalid) else error.message
    headers: dict[str, str] = {}
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return status, message, headers


def error_response(
    accept: str | None, status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error body in the negotiated format."""
    chosen = negotiate(accept)
    body = error_xml(message) if chosen.format == "xml" else error_json(message)
    return Response(body, status_code, headers=dict(headers or {}), media_type=chosen.content_type)


def error_response_for_scope(scope: Scope, status_code: int, message: str) -> Response:
    return error_response(Headers(scope=scope).get("accept"), status_code, message)


def _describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        location = [
            str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")
        ]
        name = ".".join(location) or "the body"
        problems.append(f"{name}: {error.get('msg', 'invalid')}")
    return "The request is invalid. " + "; ".join(problems) + "."


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to the Web API shape, once."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(
            request.headers.get("accept"), exc.status_code, exc.message, exc.headers
        )

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OutboxError)
        status, message, headers = domain_answer(exc)
        return error_response(request.headers.get("accept"), status, message, headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(request.headers.get("accept"), 400, _describe_validation(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"No HTTP resource was found that matches the request URI '{request.url}'."
        elif exc.status_code == 405:
            message = f"The requested resource does not support http method '{request.method}'."
        else:
            message = str(exc.detail)
        return error_response(request.headers.get("accept"), exc.status_code, message, exc.headers)

    async def on_database(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DBAPIError)
        if exc.connection_invalidated or isinstance(exc, OperationalError):
            # The pool has dropped the dead connection(s); the same request will work again.
            log.warning(
                "database connection lost",
                extra={"action": "request.db_lost", "path": request.url.path},
            )
            return error_response(
                request.headers.get("accept"),
                503,
                "The database connection was lost; try again.",
                {"Retry-After": "1"},
            )
        return await on_unexpected(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception(
            "unhandled error", extra={"action": "request.error", "path": request.url.path}
        )
        return error_response(request.headers.get("accept"), 500, "An error has occurred.")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(OutboxError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(DBAPIError, on_database)
    app.add_exception_handler(Exception, on_unexpected)
