"""Errors a page can raise, answered as HTML pages (never the API's JSON shape).

Raise `PageError(status, title, message)` from a page route or dependency for a plain error
page; `LoginRequired` sends the browser to the sign-in page (303) and back afterwards.

The domain's errors (`invoice_outbox.errors`) need no translating: raised under ``/admin``
they become the error page of their kind, once, in `invoice_outbox.web.setup` (via
`page_error_of`).  A page that words one its own way (a form shown again with the message, a
title of its own) catches the specific error and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from invoice_outbox.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    OutboxError,
    Unavailable,
)

log = logging.getLogger(__name__)

#: What the 500 page says.
UNEXPECTED: Final = (
    "The page could not be shown because of an error on our side. It has been logged; "
    "try again in a moment."
)

#: Status code and page title of each kind of domain error (the first kind an error is wins).
KINDS: Final[tuple[tuple[type[OutboxError], int, str], ...]] = (
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Not possible now"),
    (Invalid, 400, "Please check the request"),
    (Forbidden, 403, "Not available to your account"),
    (Unavailable, 503, "Please try again in a moment"),
)


class PageError(Exception):
    """An error page: `status`, a short `title` and one or two plain sentences in `message`
    (and `headers` for the answer, such as ``Retry-After``)."""

    def __init__(
        self, status: int, title: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.headers = dict(headers or {})


class LoginRequired(Exception):
    """No valid session: redirect (303) to ``/admin/login?next=<next_path>``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def not_for_you() -> PageError:
    """403 for a signed-in user whose role may not see the page."""
    return PageError(
        403,
        "Not available to your account",
        "This page is for administrators. Use the links above to see your practice's invoices.",
    )


def bad_form(message: str) -> PageError:
    """400 for form input that cannot mean anything (the message names the field)."""
    return PageError(400, "Please check the form", message)


def error_text(error: OutboxError) -> str:
    """What the page says of a domain error: its message, an `Invalid` one framed as the API
    frames it ("The request is invalid: <message>.")."""
    return (
        f"The request is invalid: {error.message}." if isinstance(error, Invalid) else error.message
    )


def page_error_of(error: OutboxError, title: str | None = None) -> PageError:
    """The error page of a domain error's kind, with `title` or the kind's own.

    An error of no kind (a bare `OutboxError`, which the domain must not raise) is logged and
    shown as the 500 page.
    """
    for kind, status, kind_title in KINDS:
        if isinstance(error, kind):
            headers: dict[str, str] = {}
            if isinstance(error, Unavailable):
                headers["Retry-After"] = str(error.retry_after_seconds)
            return PageError(status, title or kind_title, error_text(error), headers=headers)
    log.error(
        "domain error of no kind", extra={"action": "page.error", "error": type(error).__name__}
    )
    return PageError(500, "Something went wrong", UNEXPECTED)
