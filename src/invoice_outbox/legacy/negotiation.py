"""Content negotiation as ASP.NET Web API's DefaultContentNegotiator does it.

Two formatters, in Web API's default order: JSON (``application/json``, ``text/json``), then
XML (``application/xml``, ``text/xml``).  Ported from aspnet/AspNetWebStack
(``System.Net.Http.Formatting``: DefaultContentNegotiator, MediaTypeHeaderValueExtensions.
IsSubsetOf, ParsedMediaTypeHeaderValue, MediaTypeWithQualityHeaderValueComparer):

1. The Accept values are sorted by q descending, then specific types before ``type/*``
   before ``*/*``; the sort is stable.  A missing or unparsable q counts as 1.
2. Each formatter walks the sorted values and, within each, its own media types in order; the
   first supported type that the value covers (equal, ``type/*`` of the same type, or ``*/*``)
   is its match, ranked Literal, SubtypeMediaRange or AllMediaRange by the Accept value, with
   the value's quality.  Values with q=0 never match.  Parameters other than q do not matter.
3. Within each rank the first formatter wins unless a later one has a strictly higher
   quality; then Literal's winner is replaced by SubtypeMediaRange's only if the latter's
   quality is strictly higher, and that by AllMediaRange's likewise.  (So on equal quality a
   literal ``application/xml`` beats the JSON formatter's ``*/*`` match.)
4. No match at all (no header, nothing acceptable): JSON, ``application/json``.

The response Content-Type is the chosen media type with ``; charset=utf-8``.

Deliberate differences from .NET, both for robustness: a malformed element of the header is
skipped (System.Net.Http drops the *whole* header when one element does not parse, which
then means JSON); Accept-Charset is not consulted (.NET could answer UTF-16; the service
always writes UTF-8).  The ``X-Requested-With: XMLHttpRequest`` mapping of the JSON formatter
is not needed: it only applies without Accept or with ``*/*`` alone, where JSON wins anyway.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["FORMATTERS", "AcceptValue", "Negotiated", "negotiate", "parse_accept"]

Format = Literal["json", "xml"]

#: The formatters in Web API's order, each with its supported media types in order.
FORMATTERS: Final[tuple[tuple[Format, tuple[str, ...]], ...]] = (
    ("json", ("application/json", "text/json")),
    ("xml", ("application/xml", "text/xml")),
)

# Ranks of an Accept value, also its specificity for sorting (higher sorts first).
_ALL_RANGE, _SUBTYPE_RANGE, _LITERAL = 0, 1, 2

# RFC 7230 token characters.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"({_TCHARS})/({_TCHARS})\Z")
_PARAMETER = re.compile(rf"({_TCHARS})\s*(?:=\s*({_TCHARS}|\"(?:[^\"\\]|\\.)*\"))?\Z", re.S)
# .NET reads q with double.TryParse(NumberStyles.AllowDecimalPoint): digits and one dot only.
_QUALITY = re.compile(r"(?:\d+\.?\d*|\.\d+)\Z")
# Elements are split on commas and parameters on semicolons, but not inside quoted strings.
_ELEMENT = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*"?)+', re.S)
_PART = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*"?)+', re.S)


@dataclass(frozen=True, slots=True)
class AcceptValue:
    """One parsed Accept element: media type (lower-cased), q (None when absent/invalid)."""

    type: str
    subtype: str
    quality: float | None

    @property
    def rank(self) -> int:
        """2 for ``type/subtype``, 1 for ``type/*``, 0 for ``*/*``."""
        if self.subtype != "*":
            return _LITERAL
        return _ALL_RANGE if self.type == "*" else _SUBTYPE_RANGE

    @property
    def effective_quality(self) -> float:
        return 1.0 if self.quality is None else self.quality


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome: which writer to use and the response's Content-Type."""

    format: Format
    content_type: str


def _quality(parameters: list[str]) -> float | None:
    for parameter in parameters:
        match = _PARAMETER.match(parameter.strip())
        if match is None:
            return None  # unreachable after parse_accept's check; keeps this total
        if match.group(1).lower() != "q":
            continue
        value = match.group(2)  # first q wins (NameValueHeaderValue.Find)
        if value is None or _QUALITY.match(value) is None:
            return None
        quality = float(value)
        return quality if math.isfinite(quality) else None
    return None


def parse_accept(header: str | None) -> list[AcceptValue]:
    """The Accept header's valid elements, in header order; never raises.

    Elements that are not ``type/subtype`` followed by well-formed parameters are skipped.
    """
    if not header:
        return []
    values: list[AcceptValue] = []
    for element in _ELEMENT.findall(header):
        parts = _PART.findall(element)
        if not parts:
            continue
        media = _MEDIA_TYPE.match(parts[0].strip())
        parameters = [p for p in parts[1:] if p.strip()]  # tolerate stray ';'
        if media is None or any(_PARAMETER.match(p.strip()) is None for p in parameters):
            continue
        values.append(
            AcceptValue(media.group(1).lower(), media.group(2).lower(), _quality(parameters))
        )
    return values


def _covers(accept: AcceptValue, supported: str) -> bool:
    """IsSubsetOf: does the Accept value cover the (parameter-less) supported media type?"""
    supported_type, _, supported_subtype = supported.partition("/")
    if accept.type != supported_type:
        return accept.rank == _ALL_RANGE
    return accept.subtype == supported_subtype or accept.rank == _SUBTYPE_RANGE


def negotiate(accept_header: str | None) -> Negotiated:
    """Choose JSON or XML for a request with this Accept header (None: no header)."""
    ordered = sorted(
        parse_accept(accept_header), key=lambda v: (v.effective_quality, v.rank), reverse=True
    )
    # Python's sort stays stable with reverse=True, like LINQ's OrderByDescending.
    best_by_rank: dict[int, tuple[float, Format, str]] = {}
    for name, media_types in FORMATTERS:
        match = next(
            (
                (value, supported)
                for value in ordered
                if value.quality != 0
                for supported in media_types
                if _covers(value, supported)
            ),
            None,
        )
        if match is None:
            continue
        value, supported = match
        current = best_by_rank.get(value.rank)
        if current is None or value.effective_quality > current[0]:
            best_by_rank[value.rank] = (value.effective_quality, name, supported)

    best: tuple[float, Format, str] | None = None
    for rank in (_LITERAL, _SUBTYPE_RANGE, _ALL_RANGE):
        candidate = best_by_rank.get(rank)
        if candidate is not None and (best is None or candidate[0] > best[0]):
            best = candidate
    if best is None:  # MatchOnCanWriteType: the first formatter, its first media type
        best = (1.0, FORMATTERS[0][0], FORMATTERS[0][1][0])
    _, name, media_type = best
    return Negotiated(format=name, content_type=f"{media_type}; charset=utf-8")
