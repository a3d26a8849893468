"""Json.NET-compatible JSON of the legacy lists (SPEC.md, help page sample)."""

from __future__ import annotations

import enum
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from invoice_outbox.legacy.json_format import (
    JSON_CLOSE,
    JSON_LIST,
    JSON_OPEN,
    error_json,
    json_rows,
    json_value,
)
from invoice_outbox.legacy.rows import StatusVo

GOLDEN = Path(__file__).parents[1] / "golden"
PRACTICE = uuid.UUID("1c2d9508-589f-4ac3-8898-16c402da5ea8")
ENCOUNTER = uuid.UUID("fede1c96-5f76-4f88-b173-7c5fb843bfd3")
INVOICE = uuid.UUID("a7d00b48-46d6-4e66-bf74-8ab8e731ff3c")
# The help page's instant: 18:06:25.5766012 in Johannesburg, i.e. 16:06:25.576601Z.
SENT = datetime(2026, 2, 5, 16, 6, 25, 576601, tzinfo=UTC)


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


def one(row: tuple[object, ...]) -> dict[str, object]:
    parsed = json.loads(JSON_OPEN + json_rows([row], first=True) + JSON_CLOSE)
    assert isinstance(parsed, list)
    assert len(parsed) == 1
    result: dict[str, object] = parsed[0]
    return result


def test_two_rows_match_the_golden_file_byte_for_byte() -> None:
    body = JSON_OPEN + json_rows([sample_row(), sample_row()], first=True) + JSON_CLOSE
    assert body == (GOLDEN / "aborted_two_rows.json").read_bytes()


def test_properties_are_in_spec_order() -> None:
    assert list(one(sample_row())) == [
        "PracticeId",
        "EncounterId",
        "InvoiceId",
        "Reason",
        "Status",
        "System",
        "SendingTime",
        "SendingAttempts",
        "SendingType",
    ]


def test_batches_concatenate_to_the_same_body_as_one_call() -> None:
    rows = [sample_row(attempts=n) for n in range(5)]
    whole = JSON_OPEN + json_rows(rows, first=True) + JSON_CLOSE
    streamed = (
        JSON_OPEN
        + json_rows(rows[:2], first=True)
        + json_rows([], first=False)
        + json_rows(rows[2:], first=False)
        + JSON_CLOSE
    )
    assert streamed == whole
    assert [o["SendingAttempts"] for o in json.loads(whole)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("first", [True, False])
def test_an_empty_batch_writes_nothing(first: bool) -> None:
    assert json_rows([], first=first) == b""
    assert json_rows(iter(()), first=first) == b""


def test_a_later_batch_starts_with_a_comma_and_the_empty_list_frame_is_brackets() -> None:
    assert json_rows([sample_row()], first=False).startswith(b',{"PracticeId"')
    assert json_rows([sample_row()], first=True).startswith(b'{"PracticeId"')
    assert JSON_LIST.empty == b"[]"
    assert (JSON_LIST.open, JSON_LIST.close) == (JSON_OPEN, JSON_CLOSE)


def test_null_reason_is_written_out() -> None:
    assert b'"Reason":null,' in json_rows([sample_row(reason=None)], first=True)


def test_rows_may_be_generators_longer_tuples_or_namedtuples() -> None:
    expected = json_rows([sample_row()], first=True)
    assert json_rows((r for r in [sample_row()]), first=True) == expected
    assert json_rows([(*sample_row(), "extra cursor column")], first=True) == expected
    assert json_rows([StatusVo(*sample_row())], first=True) == expected  # type: ignore[arg-type]


def test_guids_are_lower_case_with_hyphens() -> None:
    upper = uuid.UUID("ABCDEF01-2345-6789-ABCD-EF0123456789")
    assert (
        one(sample_row(practice_id=upper))["PracticeId"] == "abcdef01-2345-6789-abcd-ef0123456789"
    )


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (SENT, "2026-02-05T16:06:25Z"),
        (SENT.astimezone(ZoneInfo("Africa/Johannesburg")), "2026-02-05T16:06:25Z"),
        (SENT.astimezone(timezone(timedelta(hours=-5))), "2026-02-05T16:06:25Z"),
        (SENT.astimezone(ZoneInfo("UTC")), "2026-02-05T16:06:25Z"),
        (datetime(2026, 2, 5, 23, 59, 59, 999999, tzinfo=UTC), "2026-02-05T23:59:59Z"),
        (datetime(2026, 1, 1, tzinfo=ZoneInfo("Africa/Johannesburg")), "2025-12-31T22:00:00Z"),
    ],
    ids=["utc", "johannesburg", "minus5", "zoneinfo-utc", "truncated-not-rounded", "new-year"],
)
def test_sending_time_is_true_utc_whole_seconds_z(moment: datetime, expected: str) -> None:
    assert one(sample_row(sending_time=moment))["SendingTime"] == expected


def test_a_naive_sending_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        json_rows([sample_row(sending_time=datetime(2026, 2, 5, 16, 6, 25))], first=True)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"practice_id": str(PRACTICE)}, TypeError),
        ({"invoice_id": None}, TypeError),
        ({"attempts": True}, TypeError),
        ({"attempts": "8"}, TypeError),
        ({"status": None}, TypeError),
        ({"system": 5}, TypeError),
    ],
    ids=["str-guid", "null-guid", "bool-attempts", "str-attempts", "null-status", "int-system"],
)
def test_wrong_column_types_are_refused(change: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        json_rows([sample_row(), sample_row(**change)], first=True)


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ('say "hi"', b'"say \\"hi\\""'),
        ("C:\\path", b'"C:\\\\path"'),
        ("\b\f\n\r\t", b'"\\b\\f\\n\\r\\t"'),
        ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),
        ("\x0b\x1b", b'"\\u000b\\u001b"'),  # lower-case hex, as Json.NET's IntToHex
        ("\x7f", b'"\x7f"'),  # DEL is not escaped by Json.NET's default handling
        ("\u0085\u2028\u2029", b'"\\u0085\\u2028\\u2029"'),
        ("M\u00fcller \u00f1 \u533b", '"M\u00fcller \u00f1 \u533b"'.encode()),
        ("<a href='x'>&amp;</a> /", b"\"<a href='x'>&amp;</a> /\""),
        ("\U0001f600", '"\U0001f600"'.encode()),
        ("\ud83d\ude00", '"\U0001f600"'.encode()),  # a surrogate pair is the character
        ("a\ud800b", '"a\ufffdb"'.encode()),  # a lone half is no text: U+FFFD
        ("", b'""'),
    ],
    ids=[
        "quote",
        "backslash",
        "short-escapes",
        "u00xx",
        "lower-hex",
        "del",
        "js-line-terminators",
        "non-ascii",
        "html-untouched",
        "astral",
        "surrogate-pair",
        "lone-surrogate",
        "empty",
    ],
)
def test_strings_are_escaped_as_json_net_default(text: str, encoded: bytes) -> None:
    body = json_rows([sample_row(reason=text)], first=True)
    assert b'"Reason":' + encoded + b',"Status"' in body
    assert json_value(text) == encoded


@pytest.mark.parametrize("code", range(0x20))
def test_every_control_char_is_escaped_and_round_trips(code: int) -> None:
    text = f"a{chr(code)}b"
    body = json_rows([sample_row(reason=text, system=text)], first=True)
    assert chr(code).encode() not in body  # escaped, never raw
    parsed = one(sample_row(reason=text, system=text))
    assert parsed["Reason"] == text
    assert parsed["System"] == text


def test_a_value_repeated_across_rows_is_encoded_identically() -> None:
    rows = [sample_row(reason="x\u2028y", attempts=n) for n in range(3)]
    assert json_rows(rows, first=True).count(b'"Reason":"x\\u2028y"') == 3


class Colour(enum.StrEnum):
    RED = "Red"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, b"null"),
        (True, b"true"),
        (False, b"false"),
        (-12, b"-12"),
        ("\u2029", b'"\\u2029"'),
        (INVOICE, b'"a7d00b48-46d6-4e66-bf74-8ab8e731ff3c"'),
        (SENT.astimezone(ZoneInfo("Africa/Johannesburg")), b'"2026-02-05T16:06:25Z"'),
        ({"b": 1, "a": [None, (1, 2)]}, b'{"b":1,"a":[null,[1,2]]}'),
        ([{"when": SENT}], b'[{"when":"2026-02-05T16:06:25Z"}]'),
        (Colour.RED, b'"Red"'),
        ({}, b"{}"),
    ],
    ids=[
        "none",
        "true",
        "false",
        "int",
        "escape",
        "uuid",
        "datetime",
        "order",
        "nested-datetime",
        "strenum",
        "empty",
    ],
)
def test_json_value(value: object, expected: bytes) -> None:
    assert json_value(value) == expected


@pytest.mark.parametrize(
    "value",
    [float("nan"), {"x": [float("inf")]}, datetime(2026, 1, 1)],
    ids=["nan", "nested-infinity", "naive"],
)
def test_json_value_refuses_what_has_no_json_meaning(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        json_value(value)


def test_json_value_writes_plain_floats_like_json_net() -> None:
    expected = b'{"TimeoutSeconds":30.0,"Jitter":0.1}'
    assert json_value({"TimeoutSeconds": 30.0, "Jitter": 0.1}) == expected


def test_error_json_is_web_api_http_error() -> None:
    assert (
        error_json("Authorization has been denied for this request.")
        == b'{"Message":"Authorization has been denied for this request."}'
    )
    assert json.loads(error_json('bad "sentDate"\n')) == {"Message": 'bad "sentDate"\n'}


def test_random_strings_round_trip_through_json_loads() -> None:
    pool = [chr(c) for c in range(0x00, 0x80)] + list("\u0085\u00e9\u2028\u2029\U0001f600")
    rng = random.Random(20260205)
    texts = ["".join(rng.choices(pool, k=rng.randint(0, 12))) for _ in range(300)]
    rows = [sample_row(reason=t, status=t) for t in texts]
    body = JSON_OPEN + json_rows(rows, first=True) + JSON_CLOSE
    for raw in ("\u0085", "\u2028", "\u2029"):
        assert raw.encode() not in body
    parsed = json.loads(body)
    assert [o["Reason"] for o in parsed] == texts
    assert [o["Status"] for o in parsed] == texts


def test_str_enum_members_are_written_as_their_value() -> None:
    parsed = one(sample_row(status=Colour.RED, sending_type=Colour.RED))
    assert (parsed["Status"], parsed["SendingType"]) == ("Red", "Red")
