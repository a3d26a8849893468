"""Lists of sendings in the order a person picks, a page at a time, forwards and back.

The dashboard's lists sort by last attempt (SendingTime), by attempts or by system, newest or
oldest first, and page both ways.  Every order ends with the sending's id, so no two rows tie
and a page boundary is an exact position; the next page starts strictly after the last row
shown and the previous one strictly before the first (keyset, never OFFSET: a deep page
costs what the first does).  The first page counts the matching rows; the total travels in
the cursor, so every page reports the same one.

A cursor is opaque and signed with the service's key (HMAC-SHA256) over the list's scope (its
filters and order), so it cannot be forged and works only with the list it came from
(`CursorError` otherwise, an `InvalidParameter` naming ``cursor``).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import QueryableAttribute

from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.listing import CursorError, Order, scope_of
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import selection_clauses

_DOMAIN: Final = b"invoice-outbox/sorted-cursor/v1\0"
_MAC_BYTES: Final = 16


class SortKey(enum.StrEnum):
    """What a list is sorted by (then by SendingTime where it ties, then by id)."""

    LAST_ATTEMPT = "last"
    ATTEMPTS = "attempts"
    SYSTEM = "system"

    @property
    def columns(self) -> tuple[QueryableAttribute[Any], ...]:
        if self is SortKey.ATTEMPTS:
            return (Sending.attempts, Sending.sending_time, Sending.id)
        if self is SortKey.SYSTEM:
            return (Sending.system, Sending.sending_time, Sending.id)
        return (Sending.sending_time, Sending.id)


@dataclass(frozen=True, slots=True)
class Sort:
    key: SortKey = SortKey.LAST_ATTEMPT
    descending: bool = False

    def order_by(self, *, reverse: bool = False) -> list[Any]:
        down = self.descending != reverse
        return [c.desc() if down else c.asc() for c in self.key.columns]


@dataclass(frozen=True, slots=True)
class SortedPage:
    """Rows of a page (`columns`, then the sort key's values), the list's total, and the
    cursors of the pages after and before it (None at either end)."""

    rows: list[Sequence[Any]]
    total: int
    next_cursor: str | None
    prev_cursor: str | None


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decode(column: QueryableAttribute[Any], value: Any) -> Any:
    if column is Sending.sending_time:
        return datetime.fromisoformat(str(value))
    if column is Sending.id:
        return uuid.UUID(str(value))
    if column is Sending.attempts:
        return int(value)
    return str(value)


class SortedCursors:
    """Writes and reads the signed cursors of one list (`scope`: its filters and order)."""

    def __init__(self, key: bytes, scope: bytes) -> None:
        self._key = key
        self._scope = scope

    def _mac(self, payload: bytes) -> bytes:
        digest = hmac.new(self._key, _DOMAIN + self._scope + payload, hashlib.sha256).digest()
        return digest[:_MAC_BYTES]

    def dump(self, direction: str, values: Sequence[Any], total: int) -> str:
        payload = orjson.dumps([direction, [_encode(v) for v in values], total])
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def load(self, token: str, sort: Sort) -> tuple[str, list[Any], int]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise CursorError("is not a cursor this service issued") from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise CursorError(
                "is not a cursor of this list: it was issued for other filters or another "
                "list, or altered"
            )
        try:
            direction, values, total = orjson.loads(payload)
            columns = sort.key.columns
            if direction not in ("next", "prev") or len(values) != len(columns):
                raise ValueError(direction)
            return direction, [_decode(c, v) for c, v in zip(columns, values, strict=True)], total
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise CursorError("is not a cursor this service issued") from None


def sorted_statement(
    columns: Sequence[QueryableAttribute[Any]], selection: SendingFilter, sort: Sort
) -> Select[Any]:
    """Every matching row in the chosen order (a list streamed whole, e.g. as CSV)."""
    return select(*columns).where(*selection_clauses(selection)).order_by(*sort.order_by())


async def read_sorted_page(
    connection: AsyncConnection,
    *,
    columns: Sequence[QueryableAttribute[Any]],
    selection: SendingFilter,
    sort: Sort,
    limit: int,
    cursor: str | None,
    signing_key: bytes,
    scope_parts: Sequence[str] = (),
) -> SortedPage:
    """The first page (no `cursor`) or the page a cursor of this list points to."""
    keys = sort.key.columns
    cursors = SortedCursors(
        signing_key,
        scope_of(selection, Order.SENDING_TIME, sort.key.value, str(sort.descending), *scope_parts),
    )
    clauses = selection_clauses(selection)
    direction, boundary, total = "next", None, None
    if cursor is not None:
        direction, boundary, total = cursors.load(cursor, sort)
    if total is None:
        counted = await connection.scalar(select(func.count()).select_from(Sending).where(*clauses))
        total = int(counted or 0)
    backwards = direction == "prev"
    statement = select(*columns, *keys).where(*clauses)
    if boundary is not None:
        after = tuple_(*keys) > tuple_(*boundary)
        before = tuple_(*keys) < tuple_(*boundary)
        # Forwards in a descending list (or backwards in an ascending one) goes to lower keys.
        statement = statement.where(before if sort.descending != backwards else after)
    statement = statement.order_by(*sort.order_by(reverse=backwards)).limit(limit + 1)
    rows: list[Sequence[Any]] = list((await connection.execute(statement)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    if not rows:
        return SortedPage([], total, None, None)
    width = len(keys)
    has_next = more if not backwards else True
    has_prev = (boundary is not None) if not backwards else more
    next_cursor = cursors.dump("next", rows[-1][-width:], total) if has_next else None
    prev_cursor = cursors.dump("prev", rows[0][-width:], total) if has_prev else None
    return SortedPage(rows, total, next_cursor, prev_cursor)
