"""Database errors and the domain's `Unavailable`, mapped once for every route.

A database that cannot be reached (or cannot answer now) is no bug of the caller's nor ours:
the answer is 503 with ``Retry-After`` and the legacy error shape, and the next request after
the database is back is served as usual (the pool replaces dropped connections; nothing needs
a restart).  Any other database error is logged (its message scrubbed of row values by the
engine, `invoice_outbox.db.failures`) and answered 500 "An error has occurred.".

The dashboard wraps these handlers to answer HTML pages under ``/admin`` (`web/setup.py`).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from starlette.responses import Response

from invoice_outbox.api.errors import error_response
from invoice_outbox.db.failures import DATABASE_ERRORS, as_unavailable, describe
from invoice_outbox.errors import Unavailable

log = logging.getLogger(__name__)


def retry_after(exc: Unavailable) -> dict[str, str]:
    return {"Retry-After": str(max(1, exc.retry_after_seconds))}


async def on_unavailable(request: Request, exc: Exception) -> Response:
    """503 in the legacy shape, with ``Retry-After``."""
    assert isinstance(exc, Unavailable)
    cause = exc.__cause__
    log.warning(
        "unavailable",
        extra={
            "action": "request.unavailable",
            "path": request.url.path,
            "error": describe(cause) if cause is not None else exc.message,
        },
    )
    return error_response(request.headers.get("accept"), 503, exc.message, retry_after(exc))


async def on_database_error(request: Request, exc: Exception) -> Response:
    """Connection-level and transient errors: `Unavailable` (503); anything else: 500."""
    unavailable = as_unavailable(exc)
    if unavailable is not None:
        unavailable.__cause__ = exc
        return await on_unavailable(request, unavailable)
    log.error(
        "database error",
        exc_info=exc,
        extra={"action": "request.error", "path": request.url.path, "error": describe(exc)},
    )
    return error_response(request.headers.get("accept"), 500, "An error has occurred.")


def install_database_error_handlers(app: FastAPI) -> None:
    """Map `Unavailable` and every database error class (`DATABASE_ERRORS`), once."""
    app.add_exception_handler(Unavailable, on_unavailable)
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, on_database_error)
