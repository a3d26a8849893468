"""Errors a page can raise, answered as HTML pages (never the API's JSON shape).

Raise `PageError(status, title, message)` from a page route or dependency for a plain error
page; `LoginRequired` sends the browser to the sign-in page (303) and back afterwards.
"""

from __future__ import annotations


class PageError(Exception):
    """An error page: `status`, a short `title` and one or two plain sentences in `message`."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


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
