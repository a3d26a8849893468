"""Filtered, paged lists of sendings for pages: the API's parameters, filters and keyset pages.

The pages' filter forms are GET forms whose field names are the API's query parameters
(``practiceId``, ``system``, ``cause``, ``from``, ``to``, ``q``, ``cursor``), so they are read by
the domain's `read_params` and paged by its `read_list_page` (keyset order, signed cursors, a
total fixed by the first page), exactly as the API's lists are: no query logic of the
dashboard's own.  Differences:

- a value the domain refuses (`InvalidParameter`) is a 400 *page* (`PageError`) whose message
  names the form field as the page labels it;
- ``q`` that is an invoice id selects that invoice (`SendingFilter.invoice_ids`, an index
  read); any other text searches the reasons, as the API's ``q`` does;
- pages hold `PAGE_SIZE` rows; ``page`` (the page's number) only numbers the rows shown.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request

from invoice_outbox.errors import InvalidParameter
from invoice_outbox.sendings.causes import KNOWN, UNKNOWN, describe
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.items import ITEM_COLUMNS
from invoice_outbox.sendings.list_query import (
    CAUSE,
    CURSOR,
    FROM,
    PRACTICE,
    SYSTEM,
    TEXT,
    TO,
    ListParams,
    read_params,
)
from invoice_outbox.sendings.listing import Order, Page
from invoice_outbox.sendings.pages import read_list_page
from invoice_outbox.state import AppState
from invoice_outbox.web.errors import PageError

#: Rows per page of every list of the dashboard.
PAGE_SIZE: Final = 50
PAGE_NUMBER: Final = "page"
#: The form fields of the filters, as the API names its query parameters.
FILTER_FIELDS: Final = (PRACTICE, SYSTEM, CAUSE, FROM, TO, TEXT)
#: What a form field is called on the page (for error messages).
FIELD_LABELS: Final = {
    PRACTICE: "Practice",
    SYSTEM: "System",
    CAUSE: "Cause",
    FROM: "From",
    TO: "To",
    TEXT: "Search",
    CURSOR: "The link to the next page",
    "status": "Show",
}
_PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,5}")


def bad_filter(message: str) -> PageError:
    """400: a filter value that cannot mean anything (the message names the field)."""
    return PageError(400, "Please check the filters", message)


def _filter_error(exc: InvalidParameter) -> PageError:
    """The domain's "from is not a date ..." in the form's words ("From is not a date ...")."""
    label = FIELD_LABELS.get(exc.parameter, exc.parameter)
    problem = exc.problem.rstrip(".")
    if exc.parameter == CURSOR:
        problem += ". Start again from the first page"
    return bad_filter(f"{label} {problem}.")


def read_filters(request: Request, names: Collection[str], zone: tzinfo) -> ListParams:
    """The filters of the request's query, as the API reads them; `bad_filter` (400) for a
    value the domain refuses.  A ``q`` that is a GUID selects that invoice instead of reasons."""
    try:
        params = read_params(request.query_params.multi_items(), names, zone)
    except InvalidParameter as exc:
        raise _filter_error(exc) from None
    selection = params.selection
    if selection.text is not None:
        try:
            invoice_id = uuid.UUID(selection.text.strip())
        except ValueError:
            pass
        else:
            selection = dataclasses.replace(
                selection, text=None, invoice_ids=frozenset({invoice_id})
            )
    return dataclasses.replace(params, selection=selection, limit=PAGE_SIZE)


def page_number(request: Request) -> int:
    """The ``page`` number of the request (1 without one); 400 when it is not a number."""
    raw = request.query_params.get(PAGE_NUMBER, "").strip()
    if not raw:
        return 1
    if not _PAGE_NUMBER.fullmatch(raw):
        raise bad_filter("The page number is not a whole number from 1 to 999999.")
    return int(raw)


async def read_sendings_page(
    state: AppState, params: ListParams, selection: SendingFilter, *, scope: str
) -> Page:
    """One page of `ITEM_COLUMNS` rows (SendingTime order) from the domain's keyset reader.

    `scope` names the list, so a cursor of one list is refused by another (`bad_filter`).
    """
    try:
        return await read_list_page(
            state.engine,
            params,
            selection,
            signing_key=state.signing_key,
            columns=ITEM_COLUMNS,
            order=Order.SENDING_TIME,
            scope_parts=("web", scope),
        )
    except InvalidParameter as exc:
        raise _filter_error(exc) from None


@dataclass(frozen=True, slots=True)
class Pager:
    """What the page says about where it is: rows ``first``..``last`` of ``total``, links."""

    total: int
    first: int
    last: int
    next_url: str | None
    first_url: str | None


def pager(request: Request, page: Page, number: int) -> Pager:
    """Links to the next page (the API's cursor) and back to the first (the same filters)."""
    kept = [
        (key, value)
        for key, value in request.query_params.multi_items()
        if key not in (CURSOR, PAGE_NUMBER) and value.strip()
    ]
    path = request.url.path

    def url(extra: Sequence[tuple[str, str]]) -> str:
        query = urlencode([*kept, *extra])
        return f"{path}?{query}" if query else path

    first = (number - 1) * PAGE_SIZE + 1 if page.rows else 0
    next_url = None
    if page.next_cursor is not None:
        next_url = url([(CURSOR, page.next_cursor), (PAGE_NUMBER, str(number + 1))])
    first_url = url([]) if number > 1 or CURSOR in request.query_params else None
    return Pager(
        total=page.total,
        first=first,
        last=first + len(page.rows) - 1 if page.rows else 0,
        next_url=next_url,
        first_url=first_url,
    )


def form_values(request: Request, names: Collection[str]) -> dict[str, str]:
    """The filter fields as typed (to show them again in the form)."""
    return {name: request.query_params.get(name, "") for name in names}


def cause_choices(current: str) -> list[tuple[str, str]]:
    """(slug, label) of every known cause, by label; the current one too if it is not known."""
    choices = {slug: info.label for slug, info in KNOWN.items()}
    choices.setdefault(UNKNOWN, describe(None).label)
    if current and current not in choices:
        choices[current] = describe(current).label
    return sorted(choices.items(), key=lambda item: item[1].lower())


__all__ = [
    "FILTER_FIELDS",
    "PAGE_SIZE",
    "Pager",
    "bad_filter",
    "cause_choices",
    "form_values",
    "page_number",
    "pager",
    "read_filters",
    "read_sendings_page",
]
