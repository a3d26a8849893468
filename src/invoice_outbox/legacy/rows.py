"""Shapes the legacy writers read: a sending row (SPEC.md's InvoiceSendingStatusVo), links.

Rows come straight from a database cursor, so the writers read them *positionally*: a plain
tuple, a SQLAlchemy ``Row`` or a `StatusVo` all work.  The positions follow the JSON property
order of SPEC.md; extra trailing columns (a keyset cursor, say) are ignored by the writers.

| index | field         | Python type                                   |
|-------|---------------|-----------------------------------------------|
| 0     | practice_id   | uuid.UUID                                     |
| 1     | encounter_id  | uuid.UUID                                     |
| 2     | invoice_id    | uuid.UUID                                     |
| 3     | reason        | str or None                                   |
| 4     | status        | str (a `Status` value)                        |
| 5     | system        | str                                           |
| 6     | sending_time  | timezone-aware datetime, any zone             |
| 7     | attempts      | int                                           |
| 8     | sending_type  | str (a `SendingType` value)                   |

The writers check types column-wise at C speed and raise TypeError for a mismatch: GUID
columns must really be ``uuid.UUID`` (SQLAlchemy's ``Uuid`` type returns them; a str from a
raw SQLite query would be 32 hex digits), attempts a real ``int``, strings ``str`` (a
``StrEnum`` member is fine).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeAlias

__all__ = [
    "ATTEMPTS",
    "ENCOUNTER_ID",
    "INVOICE_ID",
    "PRACTICE_ID",
    "REASON",
    "ROW_WIDTH",
    "SENDING_TIME",
    "SENDING_TYPE",
    "STATUS",
    "SYSTEM",
    "LinkPair",
    "Links",
    "SendingRow",
    "StatusVo",
    "to_utc",
]

PRACTICE_ID = 0
ENCOUNTER_ID = 1
INVOICE_ID = 2
REASON = 3
STATUS = 4
SYSTEM = 5
SENDING_TIME = 6
ATTEMPTS = 7
SENDING_TYPE = 8
#: Number of columns the writers read; a row may be longer, never shorter.
ROW_WIDTH = 9

#: Anything indexable with the positions above (tuple, SQLAlchemy Row, StatusVo).
SendingRow: TypeAlias = Sequence[Any]

#: One ``RestApiLink`` of the envelope, as ``(rel, href)``; `Links` is the envelope's list.
LinkPair: TypeAlias = tuple[str | None, str | None]
Links: TypeAlias = Sequence[LinkPair]


class StatusVo(NamedTuple):
    """A typed row, for code that builds rows itself (tests, the retry command's answer).

    Being a tuple in the layout's order, it is itself a valid `SendingRow`.
    """

    practice_id: uuid.UUID
    encounter_id: uuid.UUID
    invoice_id: uuid.UUID
    reason: str | None
    status: str
    system: str
    sending_time: datetime
    attempts: int
    sending_type: str


def to_utc(moment: datetime) -> datetime:
    """The same instant with ``tzinfo=datetime.UTC``.

    Raises ValueError for a naive datetime: guessing its zone is how the old service came to
    write local time followed by ``Z`` (SPEC.md), so an unknown zone is a bug, not a default.
    """
    tz = moment.tzinfo
    if tz is UTC:
        return moment
    if tz is None or tz.utcoffset(moment) is None:
        raise ValueError(f"naive datetime {moment!r}: SendingTime must be timezone-aware")
    return moment.astimezone(UTC)
