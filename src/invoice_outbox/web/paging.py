"""Filtered, sorted, paged lists of sendings for pages: what the forms mean, and the pager.

The filter forms are GET forms whose field names are the API's query parameters
(``practiceId``, ``system``, ``cause``, ``from``, ``to``, ``q``), read by the domain's
`read_params`, plus the page's own ``sort``, ``order``, ``size``, ``cursor`` and ``page``.
What the dashboard forgives, where the API is strict:

- ``q``: an invoice id, or its first 8 or more characters as the tables show them, or the
  practice's invoice number, selects those invoices (index reads); any other text searches
  the reasons, as the API's ``q`` does;
- ``system``: a configured system's name in any case (``mediswitch`` is MediSwitch);
- ``practiceId``: a practice's id, its first 8+ characters, or its name in any case;
- a value that cannot mean anything does not lose the form: `ListForm.errors` names the field
  and the page shows the message beside it (status 400), with the list left empty.

Pages are read by `invoice_outbox.sendings.sorted_pages` (keyset both ways, signed cursors).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Final
from urllib.parse import urlencode

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.datastructures import QueryParams
from starlette.requests import Request

from invoice_outbox.errors import InvalidParameter
from invoice_outbox.practices.service import PracticeInfo, find_practice, known_practices
from invoice_outbox.sendings.causes import UNKNOWN, describe
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
    read_params,
)
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.sorted_pages import Sort, SortedPage, SortKey, read_sorted_page
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from invoice_outbox.systems.models import System
from invoice_outbox.web.errors import PageError

#: Rows per page unless the reader picks another size.
PAGE_SIZE: Final = 50
PAGE_SIZES: Final = (25, 50, 100, 200)
PAGE_NUMBER: Final = "page"
#: The form fields of the filters, as the API names its query parameters.
FILTER_FIELDS: Final = (PRACTICE, SYSTEM, CAUSE, FROM, TO, TEXT)
#: The page's own controls (kept by links, not filters).
CONTROL_FIELDS: Final = ("sort", "order", "size")
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
    "sort": "Sort",
    "order": "Order",
    "size": "Rows per page",
}
SORTS: Final = {
    SortKey.LAST_ATTEMPT.value: "Last attempt",
    SortKey.ATTEMPTS.value: "Attempts",
    SortKey.SYSTEM.value: "System",
}
ORDERS: Final = {"oldest": "Oldest first", "newest": "Newest first"}
_PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,5}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{8,32}")
#: Invoices a search by id prefix or invoice number may select at most.
MAX_FOUND: Final = 500


def bad_filter(message: str) -> PageError:
    """400: a filter value that cannot mean anything (the message names the field)."""
    return PageError(400, "Please check the filters", message)


def _message(exc: InvalidParameter) -> str:
    """The domain's "from is not a date ..." in the form's words ("From is not a date ...")."""
    label = FIELD_LABELS.get(exc.parameter, exc.parameter)
    problem = exc.problem.rstrip(".")
    if exc.parameter == CURSOR:
        problem += ". Start again from the first page"
    return f"{label} {problem}."


@dataclass(slots=True)
class ListForm:
    """A list's form as read: the selection, the page's controls, and what was wrong."""

    selection: SendingFilter
    sort: Sort
    size: int
    cursor: str | None
    number: int
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _control(query: QueryParams, name: str, allowed: Collection[str], default: str) -> str:
    value = query.get(name, "").strip() or default
    if value not in allowed:
        raise InvalidParameter(name, "is not one of the choices offered")
    return value


def form_values(query: QueryParams, names: Collection[str]) -> dict[str, str]:
    """The filter fields as typed (to show them again in the form)."""
    return {name: query.get(name, "").strip() for name in names}


async def read_list_form(
    request: Request,
    state: AppState,
    names: Collection[str],
    *,
    practices: Sequence[PracticeInfo],
    systems: Sequence[str],
    default_order: str = "oldest",
    query: QueryParams | None = None,
) -> ListForm:
    """The list's filters and controls (see the module doc); never raises for bad input.
    `query`: read these instead of the request's (the bulk form's copy of a list's filter)."""
    zone: tzinfo = state.settings.zone
    query = request.query_params if query is None else query
    values = form_values(query, [*FILTER_FIELDS, *CONTROL_FIELDS])
    form = ListForm(SendingFilter(), Sort(), PAGE_SIZE, None, 1, values)
    items = [
        (key, value) for key, value in query.multi_items() if key not in (PRACTICE, SYSTEM, TEXT)
    ]
    try:
        params = read_params(items, names, zone)
        form.selection, form.cursor = params.selection, params.cursor
        since, until = form.selection.since, form.selection.until
        if since is not None and until is not None and since >= until:
            # The API selects nothing; a form says why.
            form.errors[FROM] = "From is not before to."
    except InvalidParameter as exc:
        form.errors[exc.parameter] = _message(exc)
    defaults = {"sort": SortKey.LAST_ATTEMPT.value, "order": default_order, "size": str(PAGE_SIZE)}
    allowed: dict[str, Collection[str]] = {
        "sort": SORTS,
        "order": ORDERS,
        "size": [str(n) for n in PAGE_SIZES],
    }
    for name, default in defaults.items():
        try:
            values[name] = _control(query, name, allowed[name], default)
        except InvalidParameter as exc:
            form.errors[name] = _message(exc)
            values[name] = default
    form.sort = Sort(SortKey(values["sort"]), descending=values["order"] == "newest")
    form.size = int(values["size"])
    raw_number = query.get(PAGE_NUMBER, "").strip()
    form.number = int(raw_number) if _PAGE_NUMBER.fullmatch(raw_number) else 1
    if raw_number and not _PAGE_NUMBER.fullmatch(raw_number):
        form.errors[PAGE_NUMBER] = "The page number is not a whole number from 1 to 999999."
    if PRACTICE in names and values[PRACTICE]:
        found = find_practice(practices, values[PRACTICE])
        whole = _guid(values[PRACTICE])
        if found is None and whole is not None:
            # A whole id is taken as given: scoping decides whether the caller may see it.
            form.selection = dataclasses.replace(form.selection, practices=frozenset({whole}))
        elif found is None:
            form.errors[PRACTICE] = "No practice has this name or id. Pick one from the list."
        else:
            form.selection = dataclasses.replace(form.selection, practices=frozenset({found.id}))
            values[PRACTICE] = str(found.id)
    if values[SYSTEM]:
        by_lower = {name.lower(): name for name in systems}
        system = by_lower.get(values[SYSTEM].lower())
        if system is None:
            # Not configured (any more): taken as typed, if it can be a system's name at all.
            try:
                read_params([(SYSTEM, values[SYSTEM])], (SYSTEM,), zone)
                system = values[SYSTEM]
            except InvalidParameter as exc:
                form.errors[SYSTEM] = _message(exc)
        if system is not None:
            form.selection = dataclasses.replace(form.selection, systems=frozenset({system}))
            values[SYSTEM] = system
    if values[TEXT]:
        if len(values[TEXT]) > 200 or "\0" in values[TEXT]:
            form.errors[TEXT] = "Search is longer than 200 characters."
        else:
            async with state.engine.connect() as connection:
                form.selection = await _search(connection, form.selection, values[TEXT])
    return form


def _guid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def _search(
    connection: AsyncConnection, selection: SendingFilter, text: str
) -> SendingFilter:
    """`text` as invoice ids (whole, a prefix of 8+ characters, or an invoice number) when it
    finds any, else as words in the reason."""
    try:
        return dataclasses.replace(selection, invoice_ids=frozenset({uuid.UUID(text)}))
    except ValueError:
        pass
    conditions = [Sending.invoice_number == text]
    if text.upper() != text:
        conditions.append(Sending.invoice_number == text.upper())
    hex_text = text.lower().replace("-", "")
    if _HEX_PREFIX.fullmatch(hex_text):
        low = int(hex_text.ljust(32, "0"), 16)
        high = low + 16 ** (32 - len(hex_text))
        span = Sending.invoice_id >= uuid.UUID(int=low)
        if high < 2**128:
            span = span & (Sending.invoice_id < uuid.UUID(int=high))
        conditions.append(span)
    found = await connection.scalars(
        select(Sending.invoice_id).distinct().where(or_(*conditions)).limit(MAX_FOUND)
    )
    ids = frozenset(found.all())
    if ids:
        return dataclasses.replace(selection, invoice_ids=ids)
    return dataclasses.replace(selection, text=text)


async def read_page(
    state: AppState, form: ListForm, selection: SendingFilter, *, scope: str
) -> SortedPage:
    """One page of `ITEM_COLUMNS` rows of `selection` in the form's order (an empty page when
    the form has errors).  A cursor of another list is a form error (the pager's field)."""
    if not form.ok:
        return SortedPage([], 0, None, None)
    try:
        async with state.engine.connect() as connection:
            return await read_sorted_page(
                connection,
                columns=ITEM_COLUMNS,
                selection=selection,
                sort=form.sort,
                limit=form.size,
                cursor=form.cursor,
                signing_key=state.signing_key,
                scope_parts=("web", scope),
            )
    except InvalidParameter as exc:
        form.errors[exc.parameter] = _message(exc)
        return SortedPage([], 0, None, None)


@dataclass(frozen=True, slots=True)
class Pager:
    """What the page says about where it is: rows ``first``..``last`` of ``total``, links."""

    total: int
    first: int
    last: int
    next_url: str | None
    prev_url: str | None
    first_url: str | None
    csv_url: str
    order_words: str


def _kept(request: Request) -> list[tuple[str, str]]:
    return [
        (key, value)
        for key, value in request.query_params.multi_items()
        if key not in (CURSOR, PAGE_NUMBER) and value.strip()
    ]


def pager(request: Request, page: SortedPage, form: ListForm, *, csv_path: str) -> Pager:
    """Links to the next and previous pages (signed cursors), the first page, the CSV."""
    kept = _kept(request)
    path = request.url.path

    def url(extra: Sequence[tuple[str, str]]) -> str:
        query = urlencode([*kept, *extra])
        return f"{path}?{query}" if query else path

    number = form.number
    first = (number - 1) * form.size + 1 if page.rows else 0
    next_url = prev_url = None
    if page.next_cursor is not None:
        next_url = url([(CURSOR, page.next_cursor), (PAGE_NUMBER, str(number + 1))])
    if page.prev_cursor is not None:
        back = [(CURSOR, page.prev_cursor), (PAGE_NUMBER, str(number - 1))]
        prev_url = url([]) if number <= 2 else url(back)
    first_url = url([]) if number > 2 or (number > 1 and page.prev_cursor is None) else None
    query = urlencode(kept)
    sort_words = SORTS[form.sort.key.value].lower()
    order = "newest first" if form.sort.descending else "oldest first"
    if form.sort.key is SortKey.LAST_ATTEMPT:
        words = order
    elif form.sort.key is SortKey.ATTEMPTS:
        words = f"by attempts, {'most' if form.sort.descending else 'fewest'} first"
    else:
        words = f"by {sort_words}, {'Z to A' if form.sort.descending else 'A to Z'}"
    return Pager(
        total=page.total,
        first=max(first, 1) if page.rows else 0,
        last=first + len(page.rows) - 1 if page.rows else 0,
        next_url=next_url,
        prev_url=prev_url,
        first_url=first_url,
        csv_url=f"{csv_path}?{query}" if query else csv_path,
        order_words=words,
    )


async def cause_choices(
    state: AppState,
    current: str,
    *,
    statuses: Collection[Status],
    practices: Collection[uuid.UUID] | None,
) -> list[tuple[str, str]]:
    """(slug, label) of the causes that occur among `statuses` (of `practices`, None: all),
    by label; the current one too (so the form shows what was asked)."""
    statement = (
        select(Sending.cause)
        .distinct()
        .where(Sending.status.in_(sorted(s.value for s in statuses)))
    )
    if practices is not None:
        statement = statement.where(Sending.practice_id.in_(sorted(practices)))
    async with state.engine.connect() as connection:
        found = {c or UNKNOWN for c in (await connection.scalars(statement)).all()}
    if current:
        found.add(current)
    return sorted(((c, describe(c).label) for c in found), key=lambda item: item[1].lower())


async def system_names(state: AppState) -> list[str]:
    """The configured systems' names (the system filter's choices)."""
    async with state.engine.connect() as connection:
        return list((await connection.scalars(select(System.name).order_by(System.name))).all())


async def practice_choices(
    state: AppState, only: Collection[uuid.UUID] | None = None
) -> list[PracticeInfo]:
    """The practices the filter offers: all (admins), or `only` a practice user's own."""
    async with state.engine.connect() as connection:
        return await known_practices(connection, only)


__all__ = [
    "FILTER_FIELDS",
    "PAGE_SIZE",
    "ListForm",
    "Pager",
    "bad_filter",
    "cause_choices",
    "form_values",
    "pager",
    "practice_choices",
    "read_list_form",
    "read_page",
    "system_names",
]
