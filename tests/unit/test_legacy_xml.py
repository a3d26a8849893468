"""DataContractSerializer-compatible XML of the legacy lists (SPEC.md, help page sample)."""

from __future__ import annotations

import enum
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element  # only the type; parsing is defusedxml's
from zoneinfo import ZoneInfo

import pytest
from defusedxml.ElementTree import fromstring

from invoice_outbox.legacy.rows import StatusVo
from invoice_outbox.legacy.xml_format import (
    XML_LIST,
    XML_LIST_CLOSE,
    XML_NS,
    dotnet_local_time,
    error_xml,
    xml_empty_list,
    xml_list_open,
    xml_rows,
    xml_text,
)

GOLDEN = Path(__file__).parents[1] / "golden"
JOBURG = ZoneInfo("Africa/Johannesburg")
PRACTICE = uuid.UUID("1c2d9508-589f-4ac3-8898-16c402da5ea8")
ENCOUNTER = uuid.UUID("fede1c96-5f76-4f88-b173-7c5fb843bfd3")
INVOICE = uuid.UUID("a7d00b48-46d6-4e66-bf74-8ab8e731ff3c")
SENT = datetime(2026, 2, 5, 16, 6, 25, 576601, tzinfo=UTC)
NS = "{" + XML_NS + "}"


def sample_row(**changes: Any) -> tuple[object, ...]:
    row = StatusVo(
        PRACTICE,
        ENCOUNTER,
        INVOICE,
        "sample string 4",
        "sample string 5",
        "sample string 6",
        SENT,
        8,
        "sample string 9",
    )
    return tuple(row._replace(**changes))


def document(rows: list[tuple[object, ...]], zone: tzinfo = JOBURG) -> bytes:
    return xml_list_open() + xml_rows(rows, zone) + XML_LIST_CLOSE


def parse_one(row: tuple[object, ...]) -> Element:
    root = fromstring(document([row]))
    items = list(root)
    assert len(items) == 1
    item: Element = items[0]
    return item


def test_two_rows_match_the_golden_file_byte_for_byte() -> None:
    assert document([sample_row(), sample_row()]) == (GOLDEN / "aborted_two_rows.xml").read_bytes()


def test_the_empty_list_is_the_self_closed_root() -> None:
    golden = (GOLDEN / "aborted_empty.xml").read_bytes()
    assert xml_empty_list() == golden
    assert XML_LIST.empty == golden
    assert xml_rows([], JOBURG) == b""
    assert len(fromstring(golden)) == 0


def test_members_are_alphabetical_in_the_billing_namespace() -> None:
    item = parse_one(sample_row())
    assert item.tag == NS + "InvoiceSendingStatusVo"
    assert [child.tag.removeprefix(NS) for child in item] == [
        "EncounterId",
        "InvoiceId",
        "PracticeId",
        "Reason",
        "SendingAttempts",
        "SendingTime",
        "SendingType",
        "Status",
        "System",
    ]


def test_batches_concatenate_to_the_same_body_as_one_call() -> None:
    rows = [sample_row(attempts=n) for n in range(5)]
    streamed = XML_LIST.open + xml_rows(rows[:3], JOBURG) + xml_rows(rows[3:], JOBURG)
    assert streamed + XML_LIST.close == document(rows)


def test_rows_may_be_generators_or_longer_tuples() -> None:
    expected = xml_rows([sample_row()], JOBURG)
    assert xml_rows((r for r in [sample_row()]), JOBURG) == expected
    assert xml_rows([(*sample_row(), 42)], JOBURG) == expected


@pytest.mark.parametrize(
    ("reason", "element"),
    [
        (None, b'<Reason i:nil="true"/>'),
        ("", b"<Reason/>"),
        ("plain", b"<Reason>plain</Reason>"),
    ],
    ids=["null", "empty", "text"],
)
def test_reason_null_empty_and_text(reason: str | None, element: bytes) -> None:
    assert b"</PracticeId>" + element + b"<SendingAttempts>" in xml_rows(
        [sample_row(reason=reason)], JOBURG
    )


def test_empty_non_nullable_strings_are_self_closed() -> None:
    body = xml_rows([sample_row(status="", system="", sending_type="")], JOBURG)
    assert b"<SendingType/><Status/><System/></InvoiceSendingStatusVo>" in body


@pytest.mark.parametrize(
    ("text", "escaped", "parsed"),
    [
        ("A & B", "A &amp; B", "A & B"),
        ("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;", "<b>x</b>"),
        ('say "hi" it\'s', 'say "hi" it\'s', 'say "hi" it\'s'),
        ("C:\\path", "C:\\path", "C:\\path"),
        ("a\r\nb", "a&#xD;\nb", "a\r\nb"),
        ("a\rb", "a&#xD;b", "a\rb"),
        ("tab\tnew\nline", "tab\tnew\nline", "tab\tnew\nline"),
        ("M\u00fcller \u00f1 \u533b", "M\u00fcller \u00f1 \u533b", "M\u00fcller \u00f1 \u533b"),
        ("\u0085\u2028\u2029", "\u0085\u2028\u2029", "\u0085\u2028\u2029"),
        ("\U0001f600", "\U0001f600", "\U0001f600"),
        ("\ud83d\ude00", "\U0001f600", "\U0001f600"),
        ("x\x00y\x1fz", "x\ufffdy\ufffdz", "x\ufffdy\ufffdz"),
        ("\ufffe\uffff", "\ufffd\ufffd", "\ufffd\ufffd"),
        ("a\ud800b\udfffc", "a\ufffdb\ufffdc", "a\ufffdb\ufffdc"),
        ("]]>", "]]&gt;", "]]>"),
    ],
    ids=[
        "amp",
        "lt-gt",
        "quotes-untouched",
        "backslash",
        "crlf",
        "cr",
        "tab-lf",
        "non-ascii",
        "line-separators-raw",
        "astral",
        "surrogate-pair",
        "controls",
        "non-characters",
        "lone-surrogates",
        "cdata-end",
    ],
)
def test_text_escaping_and_what_a_parser_reads_back(text: str, escaped: str, parsed: str) -> None:
    assert xml_text(text) == escaped
    body = xml_rows([sample_row(reason=text, status=text)], JOBURG)
    assert f"<Reason>{escaped}</Reason>".encode() in body
    item = parse_one(sample_row(reason=text, status=text))
    assert item.findtext(NS + "Reason") == parsed
    assert item.findtext(NS + "Status") == parsed


@pytest.mark.parametrize("code", range(0x20))
def test_every_control_char_gives_well_formed_xml(code: int) -> None:
    text = f"a{chr(code)}b"
    item = parse_one(sample_row(reason=text, system=text, sending_type=text))
    expected = text if chr(code) in "\t\n\r" else "a\ufffdb"
    for name in ("Reason", "System", "SendingType"):
        assert item.findtext(NS + name) == expected


@pytest.mark.parametrize("code", [0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xFFFE, 0xFFFF])
def test_lone_surrogates_and_non_characters_give_well_formed_xml(code: int) -> None:
    item = parse_one(sample_row(reason=f"a{chr(code)}b", status=chr(code)))
    assert item.findtext(NS + "Reason") == "a\ufffdb"
    assert item.findtext(NS + "Status") == "\ufffd"


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (SENT, JOBURG, "2026-02-05T18:06:25.576601+02:00"),
        (SENT.replace(microsecond=576600), JOBURG, "2026-02-05T18:06:25.5766+02:00"),
        (SENT.replace(microsecond=500000), JOBURG, "2026-02-05T18:06:25.5+02:00"),
        (SENT.replace(microsecond=1), JOBURG, "2026-02-05T18:06:25.000001+02:00"),
        (SENT.replace(microsecond=0), JOBURG, "2026-02-05T18:06:25+02:00"),
        (SENT, UTC, "2026-02-05T16:06:25.576601+00:00"),
        (SENT, ZoneInfo("UTC"), "2026-02-05T16:06:25.576601+00:00"),
        (SENT, ZoneInfo("America/Sao_Paulo"), "2026-02-05T13:06:25.576601-03:00"),
        (SENT, timezone(timedelta(hours=5, minutes=30)), "2026-02-05T21:36:25.576601+05:30"),
        (
            SENT.astimezone(timezone(timedelta(hours=-7))),
            JOBURG,
            "2026-02-05T18:06:25.576601+02:00",
        ),
        (
            datetime(2026, 7, 1, 12, tzinfo=UTC),
            ZoneInfo("Europe/London"),
            "2026-07-01T13:00:00+01:00",
        ),
        (
            datetime(2026, 1, 1, 12, tzinfo=UTC),
            ZoneInfo("Europe/London"),
            "2026-01-01T12:00:00+00:00",
        ),
        (datetime(2026, 2, 5, 23, 0, tzinfo=UTC), JOBURG, "2026-02-06T01:00:00+02:00"),
    ],
    ids=[
        "sample",
        "trailing-zeros",
        "one-digit",
        "leading-zeros-kept",
        "no-fraction-no-dot",
        "utc-is-plus-00-00",
        "zoneinfo-utc",
        "negative-offset",
        "half-hour-offset",
        "converted-from-another-zone",
        "dst-summer",
        "dst-winter",
        "next-local-day",
    ],
)
def test_sending_time_is_dotnet_round_trip_local(
    moment: datetime, zone: tzinfo, expected: str
) -> None:
    assert dotnet_local_time(moment, zone) == expected
    body = xml_rows([sample_row(sending_time=moment)], zone)
    assert f"<SendingTime>{expected}</SendingTime>".encode() in body


def test_a_naive_sending_time_is_refused() -> None:
    naive = datetime(2026, 2, 5, 16, 6, 25)
    with pytest.raises(ValueError, match="naive"):
        xml_rows([sample_row(sending_time=naive)], JOBURG)


@pytest.mark.parametrize(
    "change",
    [
        {"practice_id": str(PRACTICE)},
        {"encounter_id": None},
        {"attempts": True},
        {"status": None},
        {"sending_type": b"Invoice"},
    ],
    ids=["str-guid", "null-guid", "bool-attempts", "null-status", "bytes-type"],
)
def test_wrong_column_types_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        xml_rows([sample_row(), sample_row(**change)], JOBURG)


def test_prefix_qualifies_every_element() -> None:
    body = xml_rows([sample_row(reason=None)], JOBURG, prefix="d2p1")
    assert body.startswith(b"<d2p1:InvoiceSendingStatusVo><d2p1:EncounterId>")
    assert b'<d2p1:Reason i:nil="true"/>' in body
    assert body.endswith(
        b"<d2p1:System>sample string 6</d2p1:System></d2p1:InvoiceSendingStatusVo>"
    )
    unprefixed = body.replace(b"d2p1:", b"")
    assert unprefixed == xml_rows([sample_row(reason=None)], JOBURG)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Authorization has been denied for this request.",
            b"<Error><Message>Authorization has been denied for this request.</Message></Error>",
        ),
        ("a < b & c", b"<Error><Message>a &lt; b &amp; c</Message></Error>"),
        ("", b"<Error><Message/></Error>"),
    ],
    ids=["401", "escaped", "empty"],
)
def test_error_xml_is_web_api_http_error(message: str, expected: bytes) -> None:
    assert error_xml(message) == expected
    assert fromstring(expected).findtext("Message") == message


def _as_a_dotnet_client_reads_it(text: str) -> str:
    """Independent model of the contract: pairs joined, unrepresentable chars → U+FFFD."""
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return "".join(
        c if c in "\t\n\r" or (ord(c) >= 0x20 and c not in "\ufffe\uffff") else "\ufffd"
        for c in text
    )


def test_random_strings_always_give_well_formed_xml_with_the_expected_text() -> None:
    pool = [chr(c) for c in range(0x00, 0x80)] + list("\u0085\u00e9\u2028\ufffe\uffff\U0001f600")
    pool += ["\ud800", "\udc00", "\ud83d", "\ude00", "&", "<", ">", "]]>", "\r\n"]
    rng = random.Random(20260205)
    texts = ["".join(rng.choices(pool, k=rng.randint(0, 12))) for _ in range(300)]
    rows = [sample_row(reason=t, system=t or "x") for t in texts]
    root = fromstring(document(rows))
    assert len(root) == len(texts)
    for item, text in zip(root, texts, strict=True):
        assert (item.findtext(NS + "Reason") or "") == _as_a_dotnet_client_reads_it(text)


class Kind(enum.StrEnum):
    ABORTED = "Aborted"
    INVOICE = "Invoice"


def test_str_enum_members_are_written_as_their_value() -> None:
    body = xml_rows([sample_row(status=Kind.ABORTED, sending_type=Kind.INVOICE)], JOBURG)
    assert b"<SendingType>Invoice</SendingType><Status>Aborted</Status>" in body
