"""Sending statuses and the only place their transitions are defined.

A sending is one delivery of one invoice document to one external system.  Its status moves
along these edges and no others.  Every write of a status is in
`invoice_outbox.sendings.transitions` (a test proves no other module writes it): a function per
edge, each either checking `ensure_transition` on a loaded row or guarding its UPDATE with
``status IN sources_of(target)`` (or a narrower set).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from invoice_outbox.errors import Conflict


class Status(enum.StrEnum):
    """The statuses of SPEC.md, spelt as they appear on the wire."""

    PENDING = "Pending"  # waiting for its (first or next) attempt
    SENDING = "Sending"  # claimed by a worker under a lease; an attempt is in flight
    SENT = "Sent"  # the external system accepted it
    FAILED = "Failed"  # the last attempt failed; another attempt is scheduled
    ABORTED = "Aborted"  # no more automatic attempts (permanent error or attempts spent)
    CANCELLED = "Cancelled"  # the invoice was cancelled before this sending got through
    DISCARDED = "Discarded"  # given up on for good (an admin or the practice); who, when, why


class SendingType(enum.StrEnum):
    """What a sending carries."""

    INVOICE = "Invoice"
    CANCELLATION = "Cancellation"


class InvalidTransition(Conflict):
    """Raised when a sending would move along an edge the status graph does not have."""

    def __init__(self, current: Status, target: Status) -> None:
        super().__init__(f"a {current.value} sending cannot become {target.value}")
        self.current = current
        self.target = target


S = Status

#: Every allowed edge.  Why each exists:
#: Pending→Sending  a worker claims it;            Pending→Cancelled  the invoice was cancelled.
#: Sending→Sent/Failed/Aborted  an attempt's outcome;  Sending→Pending  lease released or expired.
#: Sending→Cancelled  cancelled while in flight (the worker's outcome is then recorded as an
#:                    attempt only, and a delivered one triggers a Cancellation sending).
#: Failed→Sending  its next attempt is claimed;    Failed→Pending  an admin resends it now.
#: Failed→Cancelled  the invoice was cancelled.  (Discarding applies to Aborted sendings only.)
#: Aborted→Pending  resend / retry-all;            Aborted→Cancelled  the invoice was cancelled.
#: Aborted→Discarded  an admin or the practice gives up on it for good (with a reason).
#: Discarded→Pending  a resend naming it, by an admin (retry-all and bulk resends by cause or
#:                    filter leave it alone), or a corrected document from the practice.
#: Discarded→Cancelled  the invoice was cancelled.
#: Sent→Pending  a forced resend only (callers must say so explicitly).
#: Sent→Aborted  the recipient rejected it after delivery (an acknowledgement): the legacy
#:               aborted list shows it, its Reason naming the rejection.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    S.PENDING: frozenset({S.SENDING, S.CANCELLED}),
    S.SENDING: frozenset({S.SENT, S.FAILED, S.ABORTED, S.PENDING, S.CANCELLED}),
    S.FAILED: frozenset({S.SENDING, S.PENDING, S.CANCELLED}),
    S.ABORTED: frozenset({S.PENDING, S.CANCELLED, S.DISCARDED}),
    S.DISCARDED: frozenset({S.PENDING, S.CANCELLED}),
    S.SENT: frozenset({S.PENDING, S.ABORTED}),
    S.CANCELLED: frozenset(),
}

#: Statuses a worker may claim when due.
CLAIMABLE: frozenset[Status] = frozenset({S.PENDING, S.FAILED})
#: Statuses that retry-all and resend put back in the queue without force.
RETRYABLE: frozenset[Status] = frozenset({S.FAILED, S.ABORTED})
#: Statuses from which nothing more happens automatically.
FINAL: frozenset[Status] = frozenset({S.SENT, S.ABORTED, S.CANCELLED, S.DISCARDED})
#: What a worklist shows when no status is asked for: all but the sendings given up on.
SHOWN_BY_DEFAULT: frozenset[Status] = frozenset(Status) - {S.DISCARDED}


def can_transition(current: Status, target: Status) -> bool:
    """True when `current` → `target` is an edge of the status graph."""
    return target in TRANSITIONS[current]


def ensure_transition(current: Status, target: Status) -> Status:
    """Return `target` if the edge exists, else raise `InvalidTransition`."""
    if not can_transition(current, target):
        raise InvalidTransition(current, target)
    return target


def sources_of(target: Status) -> frozenset[Status]:
    """Every status that may move to `target` (for guarded bulk UPDATE ... WHERE status IN)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def in_order(statuses: frozenset[Status]) -> list[str]:
    """The values of `statuses` in the order they are declared (stable SQL text: the due
    index's predicate is written ``status IN ('Pending', 'Failed')``)."""
    return [s.value for s in Status if s in statuses]


# Acceptance: the recipient's verdict, beside the transport status ---------------------------


class Acceptance(enum.StrEnum):
    """What the recipient made of a delivered sending (NULL: not asked, or not delivered yet).

    Only systems whose acceptance mode is ``Response`` or ``Acknowledgement`` have one; for a
    ``Transport`` system delivered means done, and the column stays NULL (no extra writes).
    """

    AWAITING = "Awaiting"  # delivered; the verdict is to come (an acknowledgement)
    ACCEPTED = "Accepted"  # the recipient accepted the claim
    REJECTED = "Rejected"  # the recipient rejected it (code, meaning, fix: the catalogue)
    OVERDUE = "Overdue"  # still no verdict past the system's AcknowledgementWithin


A = Acceptance

#: The acceptance graph.  None is "no verdict asked for yet" (a sending not delivered, or one
#: queued again: a resend or a correction starts a new round, see `transitions.requeue`).
#: None→Awaiting  delivered to a system that acknowledges later (or answered "pending");
#: None→Accepted/Rejected  the verdict came in the answer, or an acknowledgement arrived for a
#:                         sending delivered before its system asked for acceptance;
#: Awaiting→Accepted/Rejected  the acknowledgement;  Awaiting→Overdue  its deadline passed;
#: Overdue→Accepted/Rejected  a late acknowledgement still counts.
#: Accepted and Rejected are final: a later acknowledgement that contradicts them is recorded
#: (table acknowledgements) for an administrator, never applied.
ACCEPTANCE_TRANSITIONS: Mapping[Acceptance | None, frozenset[Acceptance]] = {
    None: frozenset({A.AWAITING, A.ACCEPTED, A.REJECTED}),
    A.AWAITING: frozenset({A.ACCEPTED, A.REJECTED, A.OVERDUE}),
    A.OVERDUE: frozenset({A.ACCEPTED, A.REJECTED}),
    A.ACCEPTED: frozenset(),
    A.REJECTED: frozenset(),
}
#: Verdicts still to come.
UNDECIDED: frozenset[Acceptance] = frozenset({A.AWAITING, A.OVERDUE})


def acceptance_sources_of(target: Acceptance) -> frozenset[Acceptance | None]:
    """Every acceptance that may move to `target` (None included where it may)."""
    return frozenset(s for s, targets in ACCEPTANCE_TRANSITIONS.items() if target in targets)
