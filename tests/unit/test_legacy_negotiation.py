"""ASP.NET Web API DefaultContentNegotiator behaviour for the JSON and XML formatters."""

from __future__ import annotations

import pytest

from invoice_outbox.legacy.negotiation import AcceptValue, Negotiated, negotiate, parse_accept

JSON = Negotiated("json", "application/json; charset=utf-8")
TEXT_JSON = Negotiated("json", "text/json; charset=utf-8")
XML = Negotiated("xml", "application/xml; charset=utf-8")
TEXT_XML = Negotiated("xml", "text/xml; charset=utf-8")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/json", TEXT_JSON),
        ("application/xml", XML),
        ("text/xml", TEXT_XML),
        ("application/xml;q=0.5, application/json;q=0.9", JSON),
        ("application/json;q=0.5, application/xml;q=0.9", XML),
        # text/* covers the JSON formatter's second type first (JSON is the first formatter).
        ("text/*", TEXT_JSON),
        # Both formatters match application/* (q=0.2) before text/xml (q=0.1): tie → JSON.
        ("application/*;q=0.2, text/xml;q=0.1", JSON),
        ("text/xml;q=0.3, application/*;q=0.2", TEXT_XML),
        ("image/png", JSON),
        ("application/xml;q=0", JSON),
        ("application/xml;q=0, */*", JSON),
        ("application/xml;q=0.0, text/xml;q=0.1", TEXT_XML),
        ("garbage", JSON),
        ("APPLICATION/XML", XML),
        ("Text/Xml", TEXT_XML),
        ("application/xml;Q=0.2, application/json;q=0.1", XML),
        # Equal quality, both literal: the first formatter (JSON) keeps it.
        ("text/xml, application/json", JSON),
        ("application/xml, text/json", TEXT_JSON),
        # Equal quality, but a literal match beats the other formatter's */* match.
        ("*/*, application/xml", XML),
        ("application/*, text/xml", TEXT_XML),
        # Higher quality beats literal: XML's text/xml at 0.5 loses to */* at 1.
        ("text/xml;q=0.5, */*", JSON),
        # A browser's header: literal application/xml q=0.9 beats */* q=0.8 (JSON).
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
            XML,
        ),
        # Parameters other than q are ignored for matching.
        ("application/xml; charset=utf-16", XML),
        ('text/xml; foo="a,b;c"; q=0.7, application/json; q=0.6', TEXT_XML),
        # An invalid q counts as 1 (MediaTypeWithQualityHeaderValue.Quality is then null).
        ("application/xml;q=abc, application/json;q=0.9", XML),
        ('application/xml;q="0.1", application/json;q=0.9', XML),
        ("application/xml;q=-1, application/json;q=0.9", XML),
        # Malformed elements are skipped, the rest still counts.
        ("garbage, application/xml", XML),
        ("application/xml;;, ,", XML),
        ("application/xml;=1, text/json", TEXT_JSON),
    ],
)
def test_negotiation_table(accept: str | None, expected: Negotiated) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    "accept",
    [
        "\x00",
        ";;;",
        ",,,",
        "/",
        "*/",
        "/xml",
        "application/xml;q=",
        "application/xml;q=1e999",
        "application/xml;q=" + "9" * 400,
        'application/xml;q="unterminated, text/json',
        "\u00e9/\u00e9",
        "application/xml\r\n\tq=1",
        "a" * 10_000,
    ],
)
def test_never_raises_and_always_answers_json_or_xml(accept: str) -> None:
    result = negotiate(accept)
    assert result.format in ("json", "xml")
    assert result.content_type.endswith("; charset=utf-8")


@pytest.mark.parametrize(
    ("accept", "parsed"),
    [
        (None, []),
        ("text/XML;q=0.5", [AcceptValue("text", "xml", 0.5)]),
        ("*/*", [AcceptValue("*", "*", None)]),
        ("application/xml;q=.5", [AcceptValue("application", "xml", 0.5)]),
        ("application/xml;q=1.", [AcceptValue("application", "xml", 1.0)]),
        ("application/xml;q=1e-1", [AcceptValue("application", "xml", None)]),
        ("x/y;a=1;q=0.2;q=0.9", [AcceptValue("x", "y", 0.2)]),  # the first q wins
        ("garbage, a/b", [AcceptValue("a", "b", None)]),
        ('a/b;t="x,y", c/d', [AcceptValue("a", "b", None), AcceptValue("c", "d", None)]),
    ],
)
def test_parse_accept(accept: str | None, parsed: list[AcceptValue]) -> None:
    assert parse_accept(accept) == parsed


def test_ranks() -> None:
    assert [v.rank for v in parse_accept("a/b, a/*, */*")] == [2, 1, 0]
