"""The cause registry: every cause the channels and the worker can record has words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from invoice_outbox import demo
from invoice_outbox.sendings.causes import (
    KNOWN,
    UNKNOWN,
    describe,
    group_key,
)
from invoice_outbox.sendings.holds import SystemHold
from invoice_outbox.sendings.practice_words import practice_explanation
from invoice_outbox.sendings.status import Status

SRC = Path(__file__).resolve().parents[2] / "src" / "invoice_outbox"
#: Where DeliveryErrors are raised: the channels, and the worker for its own failures.
RAISING_MODULES = sorted((SRC / "systems" / "channels").glob("*.py")) + sorted(
    (SRC / "worker").glob("*.py")
)
LITERAL = re.compile(r"""cause\s*=\s*["']([a-z0-9-]+)["']""")
TEMPLATE = re.compile(r"""cause\s*=\s*f["']([a-z]+)-\{""")
ZONE = ZoneInfo("Africa/Johannesburg")
WHEN = datetime(2026, 2, 5, 16, 36, tzinfo=UTC)  # 18:36 in Johannesburg
#: Words that would mean a text leaks something from a request or a document.
FORBIDDEN = ("{", "}", "%s", "patient name", "ID number")


def _sources() -> str:
    return "\n".join(path.read_text() for path in RAISING_MODULES)


def test_the_scan_finds_the_causes_we_know_are_there() -> None:
    # Guards the regexes below: if the channels' spelling changes, this fails first.
    literals = set(LITERAL.findall(_sources()))
    assert {"timeout", "config", "connection-refused", "smtp-auth", "internal"} <= literals
    assert set(TEMPLATE.findall(_sources())) == {"http", "smtp"}


@pytest.mark.parametrize("slug", sorted(set(LITERAL.findall(_sources()))))
def test_every_literal_cause_has_its_own_entry(slug: str) -> None:
    info = describe(slug)
    assert slug in KNOWN, f"add {slug!r} to sendings/causes.py"
    assert info.known
    assert info.label
    assert info.explanation
    assert info.next_step


@pytest.mark.parametrize("family", sorted(set(TEMPLATE.findall(_sources()))))
def test_every_code_a_family_can_produce_has_words(family: str) -> None:
    codes = range(300, 600) if family == "http" else range(400, 600)
    for code in codes:
        info = describe(f"{family}-{code}")
        assert info.known, code
        assert str(code) in info.label
        assert info.explanation
        assert info.next_step


def test_the_demo_causes_have_entries() -> None:
    for failures in demo.FAILURES.values():
        for failure in failures:
            assert failure.cause in KNOWN, failure.cause


def test_the_http_channel_classification_matches_the_registry() -> None:
    # The channel retries 408, 429 and 5xx; everything else is permanent.
    for code in (408, 429, 500, 502, 503, 504, 507):
        assert describe(f"http-{code}").retryable, code
    for code in (301, 400, 401, 403, 404, 409, 418, 422):
        assert not describe(f"http-{code}").retryable, code
    assert describe("smtp-451").retryable
    assert not describe("smtp-550").retryable


@pytest.mark.parametrize(
    ("slug", "label"),
    [
        ("http-503", "HTTP 503 Service Unavailable"),
        ("timeout", "Timed out"),
        ("connection-refused", "Connection refused"),
        ("http-422", "Rejected by the receiver (HTTP 422)"),
        ("smtp-550", "Mailbox refused the message (SMTP 550)"),
        ("config", "System misconfigured"),
        ("worker-lost", "Interrupted (worker stopped)"),
        ("http-418", "HTTP 418"),
        ("smtp-599", "SMTP 599"),
        ("something-new", "Other (something-new)"),
    ],
)
def test_labels(slug: str, label: str) -> None:
    assert describe(slug).label == label


def test_the_issue_examples_word_for_word() -> None:
    assert describe("http-503").explanation == (
        "The system the invoice is sent to is temporarily unavailable."
    )
    assert describe("http-503").next_step == (
        "We will keep trying automatically; nothing to do unless it stays like this for a day."
    )
    assert describe("http-422").next_step == (
        "Check the invoice and the patient's medical-aid details (member number, dependant "
        "code) in the patient's file, correct them and send again."
    )
    assert (
        describe("config").explanation == "The connection to this system is not set up correctly."
    )
    assert describe("config").next_step.startswith("Your administrator has been told")
    assert describe("rejected-member-number").explanation == (
        "The medical aid rejected the member number."
    )
    assert describe("rejected-member-number").next_step == (
        "Correct it in the patient's file and send again."
    )


def test_unknown_slugs_and_none_never_fail() -> None:
    assert describe(None) is KNOWN[UNKNOWN]
    odd = describe("totally-new-thing")
    assert not odd.known
    assert odd.explanation
    assert odd.next_step


def test_no_text_carries_placeholders_or_personal_data() -> None:
    samples = [*KNOWN.values(), describe("http-418"), describe("smtp-421"), describe("new-x")]
    for info in samples:
        for text in (info.label, info.explanation, info.next_step):
            assert not any(word in text for word in FORBIDDEN), (info.slug, text)
            assert text.strip() == text, (info.slug, text)
            assert text[0].isupper(), (info.slug, text)


def test_group_key() -> None:
    assert group_key("Aborted", "http-503") == "http-503"
    assert group_key("Aborted", None) == UNKNOWN
    assert group_key("Failed", None) == UNKNOWN
    assert group_key("Sent", None) is None
    assert group_key("Pending", "timeout") == "timeout"  # resent: the last failure's cause


def _explain(status: Status, cause: str | None = None) -> tuple[str, str]:
    return practice_explanation(
        status=status.value, cause=cause, next_attempt_at=WHEN, sent_at=WHEN, zone=ZONE
    )


def test_practice_explanations_by_status() -> None:
    assert _explain(Status.SENT) == (
        "Delivered on 5 February 2026 at 18:36 SAST.",
        "Nothing to do.",
    )
    assert _explain(Status.PENDING)[0] == "Waiting to be sent."
    assert _explain(Status.SENDING)[0] == "Being sent now."
    assert "cancelled" in _explain(Status.CANCELLED)[0]
    failed = _explain(Status.FAILED, "http-503")
    assert failed == (
        "The system the invoice is sent to is temporarily unavailable.",
        "We will try again at 18:36 SAST on 5 February 2026.",
    )
    aborted = _explain(Status.ABORTED, "http-422")
    assert aborted == ("The receiver rejected the invoice.", describe("http-422").next_step)


def test_an_aborted_retryable_failure_does_not_promise_more_attempts() -> None:
    explanation, next_step = _explain(Status.ABORTED, "timeout")
    assert explanation == describe("timeout").explanation
    assert "keep trying" not in next_step
    assert "stopped trying" in next_step


def test_time_words_follow_the_service_zone() -> None:
    utc_words = practice_explanation(
        status="Sent", cause=None, next_attempt_at=None, sent_at=WHEN, zone=UTC
    )
    assert utc_words[0] == "Delivered on 5 February 2026 at 16:36 UTC."
    late = practice_explanation(
        status="Failed",
        cause="timeout",
        next_attempt_at=WHEN + timedelta(hours=6),
        sent_at=None,
        zone=ZONE,
    )
    assert late[1] == "We will try again at 00:36 SAST on 6 February 2026."


def test_an_overdue_attempt_is_promised_shortly_not_in_the_past() -> None:
    overdue = practice_explanation(
        status="Failed",
        cause="http-503",
        next_attempt_at=WHEN,
        sent_at=None,
        zone=ZONE,
        now=WHEN + timedelta(hours=2),
    )
    assert overdue[1] == "We will try again shortly."
    ahead = practice_explanation(
        status="Failed",
        cause="http-503",
        next_attempt_at=WHEN,
        sent_at=None,
        zone=ZONE,
        now=WHEN - timedelta(seconds=1),
    )
    assert ahead[1] == "We will try again at 18:36 SAST on 5 February 2026."


def test_a_held_system_is_named_instead_of_a_promise() -> None:
    down = SystemHold(system="MediSwitch", disabled=False, down_since=WHEN)
    # Sending: a held sending whose worker is gone (callers pass `hold` only when held).
    for status in ("Pending", "Failed", "Sending"):
        words = practice_explanation(
            status=status,
            cause="http-503",
            next_attempt_at=WHEN,
            sent_at=None,
            zone=ZONE,
            hold=down,
        )
        assert words == (
            "MediSwitch has not been answering since 18:36 SAST on 5 February 2026, so the "
            "invoice is waiting; this does not use up its attempts.",
            "Nothing to do: it is sent as soon as MediSwitch answers again.",
        )
    for status in ("Sent", "Aborted", "Cancelled"):
        held = practice_explanation(
            status=status,
            cause="http-503",
            next_attempt_at=None,
            sent_at=WHEN,
            zone=ZONE,
            hold=down,
        )
        plain = practice_explanation(
            status=status, cause="http-503", next_attempt_at=None, sent_at=WHEN, zone=ZONE
        )
        assert held == plain
    off = SystemHold(system="PracticeLedger", disabled=True, down_since=None)
    assert practice_explanation(
        status="Pending", cause=None, next_attempt_at=None, sent_at=None, zone=ZONE, hold=off
    )[0] == ("PracticeLedger is switched off for now, so the invoice is waiting.")
