"""Reading a page's own query and form values (text, reasons, checkboxes), as HTML errors.

The lists' parameters are read by the domain's parsers (`invoice_outbox.sendings.list_query`),
whose `InvalidParameter` becomes a 400 page by itself (`invoice_outbox.web.errors`).  Their
messages name the parameter and never echo its value, and neither do the ones here, so
nothing a user typed (or a link carried) is reflected into the page unescaped or into the logs.
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import FormData
from starlette.requests import Request

from invoice_outbox.web.errors import PageError, bad_form

#: Longest reason a form accepts (the API's `Reason` limit).
MAX_REASON: Final = 1000


def query_value(request: Request, name: str, *, max_length: int = 200) -> str | None:
    """The first non-empty value of query parameter `name`, stripped; None when absent.

    400 when it is longer than `max_length` or holds a NUL character.
    """
    raw = request.query_params.get(name)
    value = raw.strip() if raw is not None else ""
    if not value:
        return None
    if len(value) > max_length or "\0" in value:
        raise PageError(
            400, "Please check the request", f"The {name} filter is too long or not valid text."
        )
    return value


def form_text(form: FormData, name: str) -> str:
    """A text field of a posted form, stripped ("" when absent or not text)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def required_reason(form: FormData, name: str = "reason") -> str:
    """The form's reason: required, at most `MAX_REASON` characters (else a 400 page)."""
    reason = form_text(form, name)
    if not reason:
        raise bad_form("Give a reason: it is kept in the audit log with what you did.")
    if len(reason) > MAX_REASON or "\0" in reason:
        raise bad_form(f"The reason must be at most {MAX_REASON} characters of text.")
    return reason


def checked(form: FormData, name: str) -> bool:
    """Whether a checkbox was ticked (present with any value)."""
    return form.get(name) is not None
