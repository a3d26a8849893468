"""List cursors: opaque, URL-safe, signed, bound to the filters they were issued for."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.listing import (
    CursorError,
    CursorSigner,
    CursorState,
    Order,
    Position,
    scope_of,
)
from invoice_outbox.sendings.status import SendingType, Status

KEY = b"k" * 40
WHEN = datetime(2026, 2, 5, 16, 6, 25, 576601, tzinfo=UTC)
STATE = CursorState(
    after=Position(WHEN, uuid.UUID("00000000-0000-4000-8000-0000000000ff")),
    bound=WHEN + timedelta(days=3),
    total=12345,
)
SCOPE = scope_of(SendingFilter(statuses=frozenset({Status.ABORTED})), Order.SENDING_TIME, "a")


def test_round_trip_keeps_microseconds_ids_and_total() -> None:
    signer = CursorSigner(KEY)
    token = signer.dump(STATE, SCOPE)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token), token  # URL-safe without escaping
    assert signer.load(token, SCOPE) == STATE


def test_times_before_1970_and_far_ahead_survive() -> None:
    signer = CursorSigner(KEY)
    for moment in (datetime(1901, 1, 1, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)):
        state = CursorState(Position(moment, uuid.uuid4()), bound=moment, total=0)
        assert signer.load(signer.dump(state, SCOPE), SCOPE) == state


def test_every_altered_character_is_refused() -> None:
    signer = CursorSigner(KEY)
    token = signer.dump(STATE, SCOPE)
    for i in range(len(token)):
        replacement = "A" if token[i] != "A" else "B"
        altered = token[:i] + replacement + token[i + 1 :]
        with pytest.raises(CursorError):
            signer.load(altered, SCOPE)


def test_a_forged_payload_with_a_guessed_mac_is_refused() -> None:
    raw = base64.urlsafe_b64decode(CursorSigner(KEY).dump(STATE, SCOPE) + "==")
    forged = base64.urlsafe_b64encode(raw[:-16] + bytes(16)).rstrip(b"=").decode()
    with pytest.raises(CursorError, match="altered"):
        CursorSigner(KEY).load(forged, SCOPE)


def test_another_key_is_refused() -> None:
    token = CursorSigner(b"other-key" * 5).dump(STATE, SCOPE)
    with pytest.raises(CursorError):
        CursorSigner(KEY).load(token, SCOPE)


def test_other_filters_are_refused_with_a_message_saying_so() -> None:
    token = CursorSigner(KEY).dump(STATE, SCOPE)
    other = scope_of(SendingFilter(statuses=frozenset({Status.FAILED})), Order.SENDING_TIME, "a")
    with pytest.raises(CursorError, match="other filters"):
        CursorSigner(KEY).load(token, other)


@pytest.mark.parametrize(
    "token", ["", "abc", "!!!!", "A" * 300, "é", "AQ", "=" * 8, "a.b.c", "AAAA" * 16 + "A"]
)
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(CursorError):
        CursorSigner(KEY).load(token, SCOPE)


def test_scope_depends_on_every_filter_but_not_on_order_of_values() -> None:
    practice = uuid.uuid4()
    base = SendingFilter()
    variants = [
        SendingFilter(practices=frozenset({practice})),
        SendingFilter(practices=frozenset()),
        SendingFilter(systems=frozenset({"MediSwitch"})),
        SendingFilter(sending_types=frozenset({SendingType.CANCELLATION})),
        SendingFilter(statuses=frozenset({Status.SENT})),
        SendingFilter(causes=frozenset({"timeout"})),
        SendingFilter(since=WHEN),
        SendingFilter(until=WHEN),
        SendingFilter(text="503"),
    ]
    scopes = {scope_of(v, Order.SENDING_TIME) for v in [base, *variants]}
    assert len(scopes) == len(variants) + 1
    assert scope_of(base, Order.SENDING_TIME) != scope_of(base, Order.SENT_AT)
    assert scope_of(base, Order.SENDING_TIME, "x") != scope_of(base, Order.SENDING_TIME, "y")
    two = SendingFilter(systems=frozenset({"A", "B"}))
    assert scope_of(two, Order.SENDING_TIME) == scope_of(
        SendingFilter(systems=frozenset({"B", "A"})), Order.SENDING_TIME
    )
    # A separator inside a value cannot make two different filters look alike.
    assert scope_of(SendingFilter(text="a\0b"), Order.SENDING_TIME) != scope_of(
        SendingFilter(text="a"), Order.SENDING_TIME, "b"
    )
