"""Filtered lists of sendings, a page at a time: keyset order, signed cursors, a stable total.

Order is (key time, id), where the key time is SendingTime (or SentAt for the sent list), so
two rows never tie and a page ends at an exact position.  The next page starts strictly
after that position (keyset): never OFFSET, so deep pages cost what shallow ones do.

The first page also fixes the walk: it counts the matching rows and notes the latest key time
among them (the *bound*).  Both travel in the cursor, so every later page reports the same
total and serves only rows up to the bound: rows added behind the cursor are not counted
twice, rows added after the walk started wait for the next walk, and a walk serves each row
it counted once, in order (a row whose SendingTime changes mid-walk, e.g. by a new attempt,
moves; that is the nature of a live queue).

A cursor is opaque, URL-safe, and signed with the service's key (HMAC-SHA256): it cannot be
forged or altered, and it only works with the filters it was issued for.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, func, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import QueryableAttribute

from invoice_outbox.errors import InvalidParameter
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import AnySelect, selection_clauses
from invoice_outbox.sendings.status import Status

__all__ = [
    "MAX_LIMIT",
    "CursorError",
    "CursorSigner",
    "CursorState",
    "Order",
    "Page",
    "Position",
    "filtered_statement",
    "page_statement",
    "read_page",
    "scope_of",
]

#: The largest page.
MAX_LIMIT: Final = 1000


class Order(enum.Enum):
    """The key a list is ordered by (then by id)."""

    SENDING_TIME = "SendingTime"
    SENT_AT = "SentAt"

    @property
    def column(self) -> QueryableAttribute[Any]:
        return Sending.sent_at if self is Order.SENT_AT else Sending.sending_time


@dataclass(frozen=True, slots=True)
class Position:
    """A row's place in the order: its key time and id."""

    time: datetime
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CursorState:
    """Where a walk is (`after`: the last row served), and what its first page fixed."""

    after: Position
    bound: datetime
    total: int


class CursorError(InvalidParameter):
    """A cursor this service did not issue, or issued for other filters (the ``cursor``
    parameter of the lists; `problem` says which)."""

    def __init__(self, problem: str) -> None:
        super().__init__("cursor", problem)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_VERSION: Final = 1
# version, after time (µs since the epoch), after id, bound (µs), total, scope digest.
_LAYOUT: Final = struct.Struct(">Bq16sqQ8s")
_MAC_BYTES: Final = 16
_DOMAIN: Final = b"invoice-outbox/list-cursor/v1\0"


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def scope_of(selection: SendingFilter, order: Order, *parts: str) -> bytes:
    """A digest of what a list selects (filters, order, route-specific `parts`).

    A cursor carries it, so it is refused with any other filters; the page size is not in
    it (a client may change `limit` between pages).
    """

    def names(values: frozenset[Any]) -> str:
        return ",".join(sorted(str(v) for v in values))

    practices = "*" if selection.practices is None else names(selection.practices)
    fields = (
        order.value,
        practices,
        names(selection.systems),
        names(selection.sending_types),
        names(selection.statuses),
        names(selection.causes),
        names(selection.invoice_ids),
        names(selection.sending_ids),
        "" if selection.since is None else str(_micros(selection.since)),
        "" if selection.until is None else str(_micros(selection.until)),
        selection.text or "",
        *parts,
    )
    canonical = "\0".join(f.replace("\\", "\\\\").replace("\0", "\\0") for f in fields)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest()[:8]


class CursorSigner:
    """Writes and reads cursors, signed with `key` (the service's signing key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _DOMAIN + payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def dump(self, state: CursorState, scope: bytes) -> str:
        """`state` as an opaque URL-safe token (base64url, no padding)."""
        payload = _LAYOUT.pack(
            _VERSION,
            _micros(state.after.time),
            state.after.id.bytes,
            _micros(state.bound),
            state.total,
            scope,
        )
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def load(self, token: str, scope: bytes) -> CursorState:
        """The state in `token`; CursorError if it is not ours, altered, or for other filters."""
        if not token.isascii() or len(token) > 200:
            raise CursorError("is not a cursor this service issued")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise CursorError("is not a cursor this service issued") from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
            raise CursorError("is not a cursor this service issued (or it was altered)")
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(payload) != _LAYOUT.size or not hmac.compare_digest(mac, self._mac(payload)):
            raise CursorError("is not a cursor this service issued (or it was altered)")
        version, after, after_id, bound, total, issued_for = _LAYOUT.unpack(payload)
        if version != _VERSION:
            raise CursorError("is from an older version of this service; start again")
        if not hmac.compare_digest(issued_for, scope):
            raise CursorError(
                "belongs to a list with other filters; repeat the first request's filters"
            )
        try:
            position = Position(_moment(after), uuid.UUID(bytes=after_id))
            return CursorState(after=position, bound=_moment(bound), total=total)
        except (OverflowError, ValueError):
            raise CursorError("is not a cursor this service issued") from None


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of one page (each ending with its key time and id), the walk's total, and the
    cursor of the next page (None on the last)."""

    rows: list[Sequence[Any]]
    total: int
    next_cursor: str | None


def _splits(selection: SendingFilter, order: Order) -> tuple[Status, ...] | None:
    """The statuses to read one by one (each in its status index's order), or None.

    A list over several statuses in SendingTime order is a merge of per-status lists, each
    read from ix_sendings_status_time with the page's limit: no sort of the whole table.
    """
    if order is not Order.SENDING_TIME or len(selection.statuses) == 1:
        return None
    return tuple(sorted(selection.statuses or Status, key=list(Status).index))


def _clauses(
    selection: SendingFilter, extra: Sequence[ColumnElement[bool]]
) -> list[ColumnElement[bool]]:
    return [*selection_clauses(selection), *extra]


def filtered_statement(
    columns: Sequence[QueryableAttribute[Any]],
    selection: SendingFilter,
    order: Order,
    extra: Sequence[ColumnElement[bool]] = (),
) -> AnySelect:
    """Every matching row, in order (for lists streamed whole)."""
    return select(*columns).where(*_clauses(selection, extra)).order_by(order.column, Sending.id)


def page_statement(
    columns: Sequence[QueryableAttribute[Any]],
    selection: SendingFilter,
    order: Order,
    *,
    limit: int,
    after: Position | None,
    bound: datetime | None,
    extra: Sequence[ColumnElement[bool]] = (),
) -> AnySelect:
    """Up to `limit` rows after `after` (keyset), key time at most `bound`, in order.

    Each row is `columns` followed by its key time and id (labelled ``key_time``/``key_id``).
    """
    key = order.column
    clauses = list(extra)
    if bound is not None:
        clauses.append(key <= bound)
    if after is not None:
        clauses.append(tuple_(key, Sending.id) > (after.time, after.id))
    labelled = [*columns, key.label("key_time"), Sending.id.label("key_id")]
    statuses = _splits(selection, order)
    if statuses is None:
        return (
            select(*labelled)
            .where(*_clauses(selection, clauses))
            .order_by(key, Sending.id)
            .limit(limit)
        )
    each = SendingFilter(
        practices=selection.practices,
        systems=selection.systems,
        sending_types=selection.sending_types,
        causes=selection.causes,
        invoice_ids=selection.invoice_ids,
        sending_ids=selection.sending_ids,
        since=selection.since,
        until=selection.until,
        text=selection.text,
    )
    branches = [
        select(
            select(*labelled)
            .where(Sending.status == status.value, *_clauses(each, clauses))
            .order_by(key, Sending.id)
            .limit(limit)
            .subquery()
        )
        for status in statuses
    ]
    merged = union_all(*branches).subquery()
    return select(merged).order_by(merged.c.key_time, merged.c.key_id).limit(limit)


def count_statement(
    selection: SendingFilter, order: Order, extra: Sequence[ColumnElement[bool]] = ()
) -> AnySelect:
    """How many rows match, and the latest key time among them."""
    return select(func.count(), func.max(order.column)).where(*_clauses(selection, extra))


async def read_page(
    connection: AsyncConnection,
    *,
    columns: Sequence[QueryableAttribute[Any]],
    selection: SendingFilter,
    order: Order,
    limit: int,
    cursor: CursorState | None,
    signer: CursorSigner,
    scope: bytes,
    extra: Sequence[ColumnElement[bool]] = (),
) -> Page:
    """One page of the list: the first (no `cursor`) or the one after `cursor`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}, got {limit}")
    if cursor is None:
        total, bound = (await connection.execute(count_statement(selection, order, extra))).one()
        if not total or bound is None:
            return Page([], 0, None)
        after = None
    else:
        total, bound, after = cursor.total, cursor.bound, cursor.after
    statement = page_statement(
        columns, selection, order, limit=limit + 1, after=after, bound=bound, extra=extra
    )
    rows: list[Sequence[Any]] = list((await connection.execute(statement)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        state = CursorState(Position(last[-2], last[-1]), bound=bound, total=total)
        next_cursor = signer.dump(state, scope)
    return Page(rows, int(total), next_cursor)
