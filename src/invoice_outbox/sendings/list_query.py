"""The query of a list of sendings, read once for every front end (the legacy routes included).

`read_params` takes a request's query as (name, value) pairs: names match case-insensitively
as ASP.NET model binding does (``practiceid`` = ``practiceId``), unknown names are ignored,
empty values count as absent, and a value that cannot mean anything is an `InvalidParameter`
naming the parameter (never echoing the value).  `scoped` narrows a selection to what the
caller may see (`AccessDenied` when it names another practice).  The API documents these
parameters (in OpenAPI); the dashboard's filter forms use the same names.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final

from invoice_outbox.auth.principal import AccessDenied, Principal
from invoice_outbox.errors import InvalidParameter
from invoice_outbox.sendings.causes import FAILURE_STATUSES
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.listing import MAX_LIMIT
from invoice_outbox.sendings.status import SendingType, Status

#: A request's query: (name, value) pairs in the order sent (a name may repeat).
QueryItems = Iterable[tuple[str, str]]

#: Page size when a list is paged without a `limit`.
DEFAULT_LIMIT: Final = 100
#: Practices listed per cause group (PracticeCount tells how many there are).
PRACTICE_CAP: Final = 100
#: Values one parameter may carry (repeated or comma-separated).
MAX_VALUES: Final = 100
MAX_TEXT: Final = 200

# Parameter names, as documented (matched case-insensitively).
PRACTICE: Final = "practiceId"
SYSTEM: Final = "system"
SENDING_TYPE: Final = "sendingType"
STATUS: Final = "status"
CAUSE: Final = "cause"
FROM: Final = "from"
TO: Final = "to"
TEXT: Final = "q"
LIMIT: Final = "limit"
CURSOR: Final = "cursor"
_MULTI = frozenset({PRACTICE, SYSTEM, SENDING_TYPE, STATUS, CAUSE})

LEGACY_PARAMS: Final = (PRACTICE, SYSTEM, SENDING_TYPE, CAUSE, FROM, TO, TEXT, LIMIT, CURSOR)
SENT_PARAMS: Final = (PRACTICE, SYSTEM, SENDING_TYPE, LIMIT, CURSOR)
LIST_PARAMS: Final = (PRACTICE, SYSTEM, SENDING_TYPE, STATUS, CAUSE, FROM, TO, TEXT, LIMIT, CURSOR)
PRACTICE_VIEW_PARAMS: Final = tuple(p for p in LIST_PARAMS if p != PRACTICE)
CAUSE_PARAMS: Final = (PRACTICE, SYSTEM, SENDING_TYPE, STATUS, CAUSE, FROM, TO, TEXT)

_SYSTEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}")
_CAUSE_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
# "…T10:00:00+02:00" sent unencoded arrives as "…T10:00:00 02:00" ("+" means space in a query).
_SPACE_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")
_DIGITS = re.compile(r"[0-9]{1,7}")


@dataclass(frozen=True, slots=True)
class ListParams:
    """What a list request asked for.  `given`: any recognised parameter had a value."""

    selection: SendingFilter
    limit: int | None
    cursor: str | None
    given: bool

    @property
    def paged(self) -> bool:
        return self.limit is not None or self.cursor is not None


def _collect(items: QueryItems, names: Collection[str]) -> dict[str, list[str]]:
    by_lower = {name.lower(): name for name in names}
    found: dict[str, list[str]] = {}
    for key, raw in items:
        name = by_lower.get(key.strip().lower())
        if name is None:
            continue
        parts = raw.split(",") if name in _MULTI else [raw]
        values = [part.strip() for part in parts if part.strip()]
        if values:
            found.setdefault(name, []).extend(values)
    for name, values in found.items():
        if len(values) > MAX_VALUES:
            raise InvalidParameter(name, f"has more than {MAX_VALUES} values")
        if any("\0" in value for value in values):
            raise InvalidParameter(name, "contains a NUL character")
    return found


def _guids(values: list[str]) -> frozenset[uuid.UUID]:
    try:
        return frozenset(uuid.UUID(v) for v in values)
    except ValueError:
        raise InvalidParameter(PRACTICE, "is not a GUID") from None


def _systems(values: list[str]) -> frozenset[str]:
    for value in values:
        if not _SYSTEM_NAME.fullmatch(value):
            raise InvalidParameter(SYSTEM, "is not a system name (letters, digits, space . _ -)")
    return frozenset(values)


def _members(
    name: str, values: list[str], enum: type[Status] | type[SendingType]
) -> frozenset[Any]:
    members = {member.value.lower(): member for member in enum}
    try:
        return frozenset(members[v.lower()] for v in values)
    except KeyError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidParameter(name, f"must be one of {allowed}") from None


def _causes(values: list[str]) -> frozenset[str]:
    causes = frozenset(v.lower() for v in values)
    if any(len(c) > 64 or not _CAUSE_SLUG.fullmatch(c) for c in causes):
        raise InvalidParameter(CAUSE, "is not a cause (a slug such as http-503 or timeout)")
    return causes


def cause_slug(value: str) -> str:
    """A cause group's key as the `cause` filter reads it (lower case); `InvalidParameter`
    when it cannot be one (the dashboard's ``/admin/causes/{cause}`` reads its path so)."""
    (slug,) = _causes([value])
    return slug


def parse_moment(name: str, raw: str, zone: tzinfo, *, end: bool) -> datetime:
    """An ISO date or date-time as an aware datetime; `InvalidParameter` (`name`) otherwise.

    A date is a calendar day in the service's zone: `from` starts at its beginning, and `to`
    (`end`) includes the whole day.  A date-time without an offset is in the service's zone.
    """
    text = _SPACE_OFFSET.sub(r"\1+\2", raw)
    try:
        if _DATE_ONLY.fullmatch(text):
            day = date.fromisoformat(text)
            if end:
                day += timedelta(days=1)
            moment = datetime.combine(day, time.min, tzinfo=zone)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
        # The instant must exist in UTC (stored) and in the zone (XML dates) calendars.
        moment.astimezone(UTC).astimezone(zone)
        return moment
    except (ValueError, OverflowError):
        raise InvalidParameter(
            name, "is not a date or date-time (yyyy-MM-dd or yyyy-MM-ddTHH:mm:ss+02:00)"
        ) from None


def _limit(raw: str) -> int:
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidParameter(LIMIT, f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def read_params(items: QueryItems, names: Collection[str], zone: tzinfo) -> ListParams:
    """The recognised parameters among `names` in `items`; `InvalidParameter` (naming it) for
    a value that is invalid."""
    found = _collect(items, names)
    first = {name: values[0] for name, values in found.items()}
    since = parse_moment(FROM, first[FROM], zone, end=False) if FROM in first else None
    until = parse_moment(TO, first[TO], zone, end=True) if TO in first else None
    if since is not None and until is not None and since >= until:
        raise InvalidParameter(FROM, "is not before to")
    text = first.get(TEXT)
    if text is not None and len(text) > MAX_TEXT:
        raise InvalidParameter(TEXT, f"is longer than {MAX_TEXT} characters")
    cursor = first.get(CURSOR)
    selection = SendingFilter(
        practices=_guids(found[PRACTICE]) if PRACTICE in found else None,
        systems=_systems(found.get(SYSTEM, [])),
        sending_types=_members(SENDING_TYPE, found.get(SENDING_TYPE, []), SendingType),
        statuses=_members(STATUS, found.get(STATUS, []), Status),
        causes=_causes(found.get(CAUSE, [])),
        since=since,
        until=until,
        text=text,
    )
    limit = _limit(first[LIMIT]) if LIMIT in first else None
    return ListParams(selection, limit, cursor, given=bool(found))


def scoped(selection: SendingFilter, caller: Principal) -> SendingFilter:
    """`selection` narrowed to what `caller` may read; `AccessDenied` if it names a practice
    that is not theirs."""
    if caller.is_admin:
        return selection
    if selection.practices is not None and not selection.practices <= caller.practices:
        raise AccessDenied()
    return selection.restricted_to(frozenset(caller.practices))


def read_cause_selection(
    items: QueryItems, zone: tzinfo, names: Collection[str] = CAUSE_PARAMS
) -> SendingFilter:
    """The filters of the cause groups (`CAUSE_PARAMS`, or fewer `names`), as `read_params`
    reads them; `status` may only be Failed or Aborted (`InvalidParameter` otherwise)."""
    selection = read_params(items, names, zone).selection
    if not selection.statuses <= frozenset(FAILURE_STATUSES):
        raise InvalidParameter(STATUS, "must be Failed or Aborted for cause groups")
    return selection
