"""Every allowed and every refused status transition, enumerated."""

from __future__ import annotations

import itertools

import pytest

from invoice_outbox.sendings.status import (
    ACCEPTANCE_TRANSITIONS,
    CLAIMABLE,
    RETRYABLE,
    SHOWN_BY_DEFAULT,
    Acceptance,
    InvalidTransition,
    Status,
    can_transition,
    ensure_transition,
    sources_of,
)

S = Status
ALLOWED = {
    (S.PENDING, S.SENDING),
    (S.PENDING, S.CANCELLED),
    (S.SENDING, S.SENT),
    (S.SENDING, S.FAILED),
    (S.SENDING, S.ABORTED),
    (S.SENDING, S.PENDING),
    (S.SENDING, S.CANCELLED),
    (S.FAILED, S.SENDING),
    (S.FAILED, S.PENDING),
    (S.FAILED, S.CANCELLED),
    (S.ABORTED, S.PENDING),
    (S.ABORTED, S.CANCELLED),
    (S.ABORTED, S.DISCARDED),
    (S.DISCARDED, S.PENDING),
    (S.DISCARDED, S.CANCELLED),
    (S.SENT, S.PENDING),
    (S.SENT, S.ABORTED),  # the recipient rejected it after delivery (an acknowledgement)
}
EVERY_PAIR = list(itertools.product(Status, Status))


def test_wire_names_are_the_spec_names() -> None:
    assert [s.value for s in Status] == [
        "Pending",
        "Sending",
        "Sent",
        "Failed",
        "Aborted",
        "Cancelled",
        "Discarded",
    ]


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transition(current: Status, target: Status) -> None:
    assert can_transition(current, target)
    assert ensure_transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"), [pair for pair in EVERY_PAIR if pair not in ALLOWED]
)
def test_refused_transition(current: Status, target: Status) -> None:
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition) as raised:
        ensure_transition(current, target)
    assert raised.value.current is current
    assert raised.value.target is target
    assert current.value in str(raised.value)


def test_cancelled_is_terminal() -> None:
    assert not any(can_transition(S.CANCELLED, target) for target in Status)


def test_sources_of_matches_edges() -> None:
    for target in Status:
        assert sources_of(target) == {c for c, t in ALLOWED if t == target}


def test_claimable_and_retryable_sets() -> None:
    assert {S.PENDING, S.FAILED} == CLAIMABLE
    assert {S.FAILED, S.ABORTED} == RETRYABLE
    assert all(can_transition(s, S.SENDING) for s in CLAIMABLE)
    assert all(can_transition(s, S.PENDING) for s in RETRYABLE)


def test_only_an_aborted_sending_can_be_discarded_and_worklists_leave_it_out() -> None:
    assert sources_of(S.DISCARDED) == {S.ABORTED}
    assert S.DISCARDED not in RETRYABLE  # retry-all and bulk resends leave it alone
    assert S.DISCARDED not in CLAIMABLE
    assert frozenset(Status) - SHOWN_BY_DEFAULT == {S.DISCARDED}


A = Acceptance
ACCEPTANCE_ALLOWED = {
    (None, A.AWAITING),
    (None, A.ACCEPTED),
    (None, A.REJECTED),
    (A.AWAITING, A.ACCEPTED),
    (A.AWAITING, A.REJECTED),
    (A.AWAITING, A.OVERDUE),
    (A.OVERDUE, A.ACCEPTED),
    (A.OVERDUE, A.REJECTED),
}


def test_acceptance_graph_is_exactly_the_documented_edges() -> None:
    edges = {(s, t) for s, targets in ACCEPTANCE_TRANSITIONS.items() for t in targets}
    assert edges == ACCEPTANCE_ALLOWED
    # A verdict is final: a contradicting acknowledgement is recorded, never applied.
    assert ACCEPTANCE_TRANSITIONS[A.ACCEPTED] == ACCEPTANCE_TRANSITIONS[A.REJECTED] == set()
    assert [a.value for a in Acceptance] == ["Awaiting", "Accepted", "Rejected", "Overdue"]
