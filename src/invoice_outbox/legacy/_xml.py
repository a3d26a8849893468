"""XML as ASP.NET Web API's XmlMediaTypeFormatter (DataContractSerializer) writes it.

No declaration, no indentation, no whitespace between elements; members in alphabetical
order; null as ``i:nil="true"``; an empty element (empty string, empty list) self-closed.

Text is escaped ``&amp; &lt; &gt;``; ``\\r`` is written ``&#xD;`` so that it survives parsing
(a parser turns a raw CR into LF); tab and newline are kept.  Characters XML 1.0 cannot carry
(controls other than tab/LF/CR, lone surrogates, U+FFFE, U+FFFF) become U+FFFD: Web API writes
them raw (its writer has ``CheckCharacters = false``), which makes the whole document
unreadable for a .NET client; replacing one character is the lesser harm.

Dates are .NET's round-trip form of a Local DateTime (``XmlConvert.ToString(…,
RoundtripKind)``): local time in the service's zone, the fraction's 7 digits with trailing
zeros dropped (no dot if none is left), then the zone's offset (``+00:00`` for zero).
Python has microseconds, so the 7th digit is always 0.

Public names are re-exported by `xml_format`; the envelope is in `xml_envelope`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Final

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
    SendingRow,
)

__all__ = [
    "EMPTY_END",
    "LIST_ROOT",
    "XML_LIST",
    "XML_LIST_CLOSE",
    "XML_NS",
    "XSI_NS",
    "dotnet_local_time",
    "error_xml",
    "root_open",
    "xml_empty_list",
    "xml_list_open",
    "xml_rows",
    "xml_text",
]

XML_NS: Final = (
    "http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.ValueObjects"
)
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
#: DataContract name of the list (``ArrayOf`` + item name, in the item's namespace).
LIST_ROOT: Final = "ArrayOfInvoiceSendingStatusVo"

#: How an element without content ends.  SPEC.md fixes ``<Reason i:nil="true"/>``, which is
#: what DataContractSerializer writes through XmlDictionaryWriter.  ASP.NET Web API writes
#: through ``XmlWriter.Create``, whose raw writer emits ``" />"`` (with a space); parsers do
#: not care.  Every self-closed element in this package is built from this one constant.
EMPTY_END: Final = "/>"

XML_LIST_CLOSE: Final = f"</{LIST_ROOT}>".encode()


def root_open(name: str, namespace: str, *, self_closed: bool = False) -> str:
    """A DataContractSerializer root element's start tag (``xmlns:i`` first, as .NET does)."""
    end = EMPTY_END if self_closed else ">"
    return f'<{name} xmlns:i="{XSI_NS}" xmlns="{namespace}"{end}'


_LIST_OPEN: Final = root_open(LIST_ROOT, XML_NS).encode()
_LIST_EMPTY: Final = root_open(LIST_ROOT, XML_NS, self_closed=True).encode()
#: Framing of a bare XML list streamed with `xml_rows`.
XML_LIST: Final = Frame(open=_LIST_OPEN, close=XML_LIST_CLOSE, empty=_LIST_EMPTY)


def xml_list_open() -> bytes:
    """``<ArrayOfInvoiceSendingStatusVo xmlns:i="…" xmlns="…">``."""
    return _LIST_OPEN


def xml_empty_list() -> bytes:
    """The whole body of an empty list: the self-closed root element."""
    return _LIST_EMPTY


# Text -----------------------------------------------------------------------------------------

_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_REPLACEMENTS: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"}


def _replace(match: re.Match[str]) -> str:
    return _REPLACEMENTS.get(match.group(), "\ufffd")


def xml_text(text: str) -> str:
    """`text` as XML element content (see the module docstring for the rules)."""
    if _SPECIAL.search(text) is None:  # the common case: nothing to do
        return text
    return _SPECIAL.sub(_replace, join_surrogates(text))


# Dates ----------------------------------------------------------------------------------------


def dotnet_local_time(moment: datetime, zone: tzinfo) -> str:
    """One SendingTime in .NET's round-trip local form in `zone` (see the module docstring)."""
    return _trim_fraction(orjson.dumps(_local(moment, zone))[1:-1]).decode()


def _local(moment: datetime, zone: tzinfo) -> datetime:
    if moment.tzinfo is None:  # astimezone() would silently take the host's zone
        raise ValueError(f"naive datetime {moment!r}: SendingTime must be timezone-aware")
    return moment.astimezone(zone)


def _trim_fraction(text: bytes) -> bytes:
    """orjson writes ``…:SS.ffffff±HH:MM`` (no fraction when it is 0): drop trailing zeros."""
    if len(text) > 25 and text[25] == 0x30:  # the fraction's last digit is "0"
        return text[:20] + text[20:26].rstrip(b"0") + text[26:]
    return text


# Rows -----------------------------------------------------------------------------------------


def _encode_text(text: str) -> bytes:
    return xml_text(text).encode()


@functools.lru_cache(maxsize=8)
def _item_markup(prefix: str) -> tuple[bytes, bytes, bytes, bytes]:
    """The constant markup between a row's GUIDs and before its times, for `prefix`."""
    p = f"{prefix}:" if prefix else ""
    return (
        f"<{p}InvoiceSendingStatusVo><{p}EncounterId>".encode(),
        f"</{p}EncounterId><{p}InvoiceId>".encode(),
        f"</{p}InvoiceId><{p}PracticeId>".encode(),
        f"</{p}SendingAttempts><{p}SendingTime>".encode(),
    )


def _string_element(name: str, before: str = "", after: str = "") -> Callable[[str], bytes]:
    """Encoder of a string member as its element, wrapped in the markup around it."""
    empty = f"{before}<{name}{EMPTY_END}{after}".encode()

    def encode(text: str) -> bytes:
        if text == "":
            return empty
        return f"{before}<{name}>{xml_text(text)}</{name}>{after}".encode()

    return encode


def xml_rows(rows: Iterable[SendingRow], zone: tzinfo, *, prefix: str = "") -> bytes:
    """The rows as ``<InvoiceSendingStatusVo>`` elements, concatenated.

    Members in DataContract (alphabetical) order: EncounterId, InvoiceId, PracticeId, Reason,
    SendingAttempts, SendingTime, SendingType, Status, System.  SendingTime is written in
    `zone`.  `prefix` (e.g. ``"d2p1"``) qualifies every element name, for rows nested in an
    envelope's ``Data`` (see `xml_envelope`).  Rows are read positionally (see `rows`); wrong
    types raise TypeError, a naive SendingTime ValueError.
    """
    rows = rows if isinstance(rows, list | tuple) else list(rows)
    if not rows:
        return b""
    p = f"{prefix}:" if prefix else ""
    open_item, after_encounter, after_invoice, before_time = _item_markup(prefix)
    # Constant markup next to a string member travels inside its (cached) encoded value: fewer
    # parts to join, which is where most of the time goes.
    reason_before, reason_after = f"</{p}PracticeId>", f"<{p}SendingAttempts>"
    reason_nil = f'{reason_before}<{p}Reason i:nil="true"{EMPTY_END}{reason_after}'.encode()
    # option 0: orjson keeps each datetime's own (zone) offset and its microseconds.
    times = time_column([_local(row[SENDING_TIME], zone) for row in rows], 0)
    return interleave(
        len(rows),
        (
            open_item,
            guid_column(rows, ENCOUNTER_ID),
            after_encounter,
            guid_column(rows, INVOICE_ID),
            after_invoice,
            guid_column(rows, PRACTICE_ID),
            string_column(
                rows, REASON, _string_element(f"{p}Reason", reason_before, reason_after), reason_nil
            ),
            int_column(rows, ATTEMPTS),
            before_time,
            # _trim_fraction's test inlined: most fractions do not end in 0.
            [t if len(t) < 26 or t[25] != 0x30 else _trim_fraction(t) for t in times],
            string_column(
                rows, SENDING_TYPE, _string_element(f"{p}SendingType", f"</{p}SendingTime>"), None
            ),
            string_column(rows, STATUS, _string_element(f"{p}Status"), None),
            string_column(
                rows,
                SYSTEM,
                _string_element(f"{p}System", after=f"</{p}InvoiceSendingStatusVo>"),
                None,
            ),
        ),
    )


def error_xml(message: str) -> bytes:
    """Web API's HttpError body: ``<Error><Message>…</Message></Error>`` (no namespace)."""
    body = f"<Message{EMPTY_END}" if message == "" else f"<Message>{xml_text(message)}</Message>"
    return f"<Error>{body}</Error>".encode()
