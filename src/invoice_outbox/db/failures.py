"""What a database error means for a caller, and what of it may be written down.

Two jobs, done once for every engine (`db/engine.py` installs `scrub_error` as the engines'
``handle_error`` hook; the front ends map with `as_unavailable`):

- **Classify.** A database that cannot be reached (refused or dropped connections, a server
  shutting down, a SQLite file that cannot be opened) or is too busy to answer now (pool
  exhausted, lock or deadlock timeouts, SQLite's "database is locked") is the domain's
  `Unavailable`: the same request may work in a moment, and the caller is told so (503 with
  Retry-After).  Every other database error is a bug of ours (500).
- **Scrub.** Statement parameters are hidden by ``hide_parameters=True``, but PostgreSQL puts
  row values into its messages too (``DETAIL: Failing row contains (...)``, ``Key (x)=(...)``,
  ``invalid input syntax for type uuid: "..."``).  `scrub_error` cuts every driver message
  down to its first line, without quoted values, before anything can log it, so no invoice
  content reaches a log line, a traceback or an error answer.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Final

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext

from invoice_outbox.errors import Unavailable

#: Exception classes the front ends treat as database errors (SQLAlchemy's, or a driver's raw).
DATABASE_ERRORS: Final[tuple[type[Exception], ...]] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    psycopg.Error,
    sqlite3.Error,
)

UNREACHABLE: Final = "The database is unavailable; try again in a moment."
BUSY: Final = "The database is busy; try again in a moment."
RETRY_AFTER_SECONDS: Final = 5

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_UNREACHABLE_CLASSES: Final = frozenset({"08", "53", "57"})  # connection, resources, operator
_BUSY_CODES: Final = frozenset(
    {"40001", "40P01", "55P03", "57014"}
)  # retry, deadlock, lock, timeout
_SQLITE_UNREACHABLE: Final = ("unable to open", "disk i/o error", "readonly database")
_SQLITE_BUSY: Final = ("database is locked", "database table is locked", "busy")
_QUOTED_VALUE: Final = re.compile(r""":\s*(["'(]).*$""", re.DOTALL)


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached, or cannot answer now; retry after a while."""


def _driver_error(exc: BaseException) -> BaseException:
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def as_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """`exc` as the domain's Unavailable when it is connection-level or transient, else None."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return DatabaseUnavailable(BUSY, retry_after_seconds=RETRY_AFTER_SECONDS)
    invalidated = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    driver = _driver_error(exc)
    if isinstance(driver, psycopg.Error):
        state = driver.sqlstate or ""
        if state in _BUSY_CODES:
            return DatabaseUnavailable(BUSY, retry_after_seconds=1)
        if (
            invalidated
            or isinstance(driver, psycopg.InterfaceError | psycopg.OperationalError)
            or state[:2] in _UNREACHABLE_CLASSES
        ):
            return DatabaseUnavailable(UNREACHABLE, retry_after_seconds=RETRY_AFTER_SECONDS)
        return None
    if isinstance(driver, sqlite3.Error):
        text = str(driver).lower()
        if any(words in text for words in _SQLITE_BUSY):
            return DatabaseUnavailable(BUSY, retry_after_seconds=1)
        if invalidated or any(words in text for words in _SQLITE_UNREACHABLE):
            return DatabaseUnavailable(UNREACHABLE, retry_after_seconds=RETRY_AFTER_SECONDS)
        return None
    if invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return DatabaseUnavailable(UNREACHABLE, retry_after_seconds=RETRY_AFTER_SECONDS)
    return None


def safe_message(driver_error: BaseException) -> str:
    """The driver's message without row values: its first line, minus a quoted value at the end
    (``invalid input syntax for type uuid: "..."``)."""
    if isinstance(driver_error, psycopg.Error) and driver_error.diag.message_primary:
        text = driver_error.diag.message_primary
    else:
        text = str(driver_error)
    first = text.strip().splitlines()[0] if text.strip() else type(driver_error).__name__
    return _QUOTED_VALUE.sub("", first)


def scrub_error(context: ExceptionContext) -> None:
    """Engine ``handle_error`` hook: rewrite the driver's and SQLAlchemy's messages in place.

    The exception keeps its class, ``orig``, SQLSTATE and ``diag`` (code can still tell a
    unique violation from a deadlock); only the text that logs and tracebacks show changes.
    """
    driver = context.original_exception
    safe = safe_message(driver)
    driver.args = (safe,)
    wrapped = context.sqlalchemy_exception
    if isinstance(wrapped, sa_exc.StatementError) and wrapped.args:
        kind = f"{type(driver).__module__}.{type(driver).__name__}"
        wrapped.args = (f"({kind}) {safe}", *wrapped.args[1:])


def describe(exc: BaseException) -> str:
    """A one-line description of a database error for a log line (class, SQLSTATE, message)."""
    driver = _driver_error(exc)
    state = getattr(driver, "sqlstate", None)
    code = f" [{state}]" if state else ""
    return f"{type(driver).__name__}{code}: {safe_message(driver)}"
