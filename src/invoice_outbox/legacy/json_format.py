"""JSON as ASP.NET Web API's JsonMediaTypeFormatter (Json.NET, default settings) writes it.

Compact: the formatter does not indent (the help page's sample is pretty-printed for display
only).  Strings are escaped as Json.NET's ``StringEscapeHandling.Default`` does: ``"`` and
``\\`` escaped, ``\\b \\f \\n \\r \\t`` in short form, every other char below U+0020 as
``\\u00xx`` (lower-case hex, Json.NET's ``MathUtils.IntToHex``), and U+0085, U+2028, U+2029 as
``\\u0085 \\u2028 \\u2029``; all other characters (DEL and non-ASCII included) as raw UTF-8.

orjson escapes exactly like that except for the last three, which are fixed up afterwards on
the encoded bytes (a plain ``bytes.replace``: in valid UTF-8 those byte sequences can only be
those characters).

Datetimes are written as SPEC.md's SendingTime: the instant in UTC, whole seconds (fractions
truncated, as the old service's ``yyyy-MM-ddTHH:mm:ssZ`` format did), literal ``Z``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import orjson

from invoice_outbox.legacy._columns import (
    guid_column,
    int_column,
    interleave,
    string_column,
    time_column,
)
from invoice_outbox.legacy._text import join_surrogates
from invoice_outbox.legacy.frame import Frame
from invoice_outbox.legacy.rows import (
    ATTEMPTS,
    ENCOUNTER_ID,
    INVOICE_ID,
    PRACTICE_ID,
    REASON,
    SENDING_TIME,
    SENDING_TYPE,
    STATUS,
    SYSTEM,
    Links,
    SendingRow,
    to_utc,
)

__all__ = [
    "JSON_CLOSE",
    "JSON_LIST",
    "JSON_OPEN",
    "error_json",
    "json_envelope",
    "json_envelope_rows",
    "json_envelope_rows_frame",
    "json_rows",
    "json_value",
]

JSON_OPEN = b"["
JSON_CLOSE = b"]"
#: Framing of a bare JSON list streamed with `json_rows`.
JSON_LIST = Frame(open=JSON_OPEN, close=JSON_CLOSE, empty=b"[]")

# UTC datetimes as "…Z" and without fractions; every datetime is converted to UTC beforehand.
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS

# Json.NET escapes these three (JavaScriptUtils.WriteEscapedJavaScriptString); orjson does not.
_EXTRA_ESCAPES = (
    ("\u0085".encode(), b"\\u0085"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def _dumps(value: object) -> bytes:
    """orjson with our options, Json.NET's extra escapes, and lone surrogates made U+FFFD.

    orjson refuses surrogates; the retry runs only in that (pathological) case, so the hot path
    pays nothing for it.
    """
    try:
        data = orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError subclasses TypeError
        data = orjson.dumps(_scrub(value), option=_OPTIONS)
    for raw, escaped in _EXTRA_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def _scrub(value: object) -> object:
    """A copy of `value` with surrogates in its strings joined or replaced (see _text)."""
    if isinstance(value, str):
        return join_surrogates(value)
    if isinstance(value, Mapping):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _member(before: bytes, after: bytes = b"") -> Callable[[str], bytes]:
    """Encoder of a string member's value wrapped in the markup around it."""

    def encode(text: str) -> bytes:
        return before + _dumps(text) + after

    return encode


def json_rows(rows: Iterable[SendingRow], *, first: bool) -> bytes:
    """The rows as comma-separated compact JSON objects, without the list's brackets.

    `first` says whether nothing was written into the list before this batch: if False and
    the batch has rows, the result starts with a comma.  An empty batch gives ``b""``
    whatever `first` is, so a streamed list is ``JSON_OPEN + json_rows(b1, first=True) +
    json_rows(b2, first=False) + … + JSON_CLOSE`` where `first` is True until a batch with rows
    has been written (see `Frame`).

    Each object has SPEC.md's properties in SPEC.md's order; GUIDs lower-case with hyphens;
    Reason may be null; SendingTime in UTC, whole seconds, ``Z``.  Rows are read
    positionally (see `rows`); wrong types raise TypeError, a naive SendingTime ValueError.
    """
    rows = rows if isinstance(rows, list | tuple) else list(rows)
    if not rows:
        return b""
    times = [t if (t := row[SENDING_TIME]).tzinfo is UTC else to_utc(t) for row in rows]
    # Constant markup next to a string member travels inside its (cached) encoded value: fewer
    # parts to join, which is where most of the time goes.
    out = interleave(
        len(rows),
        (
            b',{"PracticeId":"',
            guid_column(rows, PRACTICE_ID),
            b'","EncounterId":"',
            guid_column(rows, ENCOUNTER_ID),
            b'","InvoiceId":"',
            guid_column(rows, INVOICE_ID),
            string_column(rows, REASON, _member(b'","Reason":'), b'","Reason":null'),
            string_column(rows, STATUS, _member(b',"Status":'), None),
            string_column(rows, SYSTEM, _member(b',"System":', b',"SendingTime":"'), None),
            time_column(times, _OPTIONS),
            b'","SendingAttempts":',
            int_column(rows, ATTEMPTS),
            string_column(rows, SENDING_TYPE, _member(b',"SendingType":', b"}"), None),
        ),
    )
    return out[1:] if first else out  # every object came with its separating comma


def _prepare(value: object) -> object:
    """Datetimes to UTC (orjson would keep their own offset); non-finite floats refused.

    No legacy shape has a float; the service's own shapes (timeouts, jitter) use plain values
    that Json.NET and orjson print alike (``30.0``, ``0.1``).
    """
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError("NaN and infinities have no JSON form")
    if isinstance(value, Mapping):
        return {k: _prepare(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_prepare(v) for v in value]
    return value


def json_value(value: object) -> bytes:
    """Compact Json.NET-style JSON of an ordered structure (envelopes, error bodies).

    Supported: dicts (insertion order kept; str keys), lists and tuples, None (``null``),
    bool, int, str (Json.NET escaping), uuid.UUID (lower-case hyphenated string), aware
    datetime (UTC, whole seconds, ``Z``), str/int enums (their value).
    """
    return _dumps(_prepare(value))


def error_json(message: str) -> bytes:
    """Web API's HttpError body: ``{"Message":"…"}``."""
    return json_value({"Message": message})


# RestApiResult<T> -----------------------------------------------------------------------------
# Property order Sucess, ResponseCode, ResponseMessage, Data, Links: the declared order of the
# .NET class as far as SPEC.md tells (Json.NET writes properties in declaration order).  Each
# RestApiLink is written Rel, HRef, SPEC.md's order.  Links are (rel, href) pairs.


def _links_value(links: Links | None) -> list[dict[str, str | None]] | None:
    if links is None:
        return None
    return [{"Rel": rel, "HRef": href} for rel, href in links]


def _envelope_parts(
    sucess: bool, response_code: int, response_message: str | None, links: Links | None
) -> tuple[bytes, bytes]:
    """(text up to and including ``"Data":``, text after Data's value)."""
    head = json_value(
        {"Sucess": sucess, "ResponseCode": response_code, "ResponseMessage": response_message}
    )
    tail = b',"Links":' + json_value(_links_value(links)) + b"}"
    return head[:-1] + b',"Data":', tail


def json_envelope(
    *,
    sucess: bool,
    response_code: int,
    response_message: str | None,
    data: object,
    links: Links | None,
) -> bytes:
    """``RestApiResult<T>`` as JSON, with `data` written by `json_value` (e.g. a UUID)."""
    head, tail = _envelope_parts(sucess, response_code, response_message, links)
    return head + json_value(data) + tail


def json_envelope_rows_frame(
    *, sucess: bool, response_code: int, response_message: str | None, links: Links | None
) -> Frame:
    """Framing of a ``RestApiResult<List<InvoiceSendingStatusVo>>`` whose rows are streamed.

    Between `open` and `close` go `json_rows` batches, exactly as for a bare list.
    """
    head, tail = _envelope_parts(sucess, response_code, response_message, links)
    return Frame(open=head + b"[", close=b"]" + tail, empty=head + b"[]" + tail)


def json_envelope_rows(
    *,
    sucess: bool,
    response_code: int,
    response_message: str | None,
    rows: Iterable[SendingRow] | None,
    links: Links | None,
) -> bytes:
    """``RestApiResult<List<InvoiceSendingStatusVo>>`` in one piece; ``rows=None`` → null."""
    head, tail = _envelope_parts(sucess, response_code, response_message, links)
    if rows is None:
        return head + b"null" + tail
    return head + b"[" + json_rows(rows, first=True) + b"]" + tail
