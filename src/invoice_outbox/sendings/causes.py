"""Cause groups: what a failure's cause slug means, for admins and for practices, and counts.

The worker stores a cause slug (``http-503``, ``timeout``, ``smtp-550``, ...) on a sending when
a failure is recorded (see `invoice_outbox.systems.channels.base.DeliveryError.cause`).  This
module turns a slug into words:

- `CauseInfo.label`: short, for admins ("HTTP 503 Service Unavailable");
- `CauseInfo.explanation` and `CauseInfo.next_step`: plain words for practice users ("The
  receiver rejected the invoice." / "Check the patient's medical-aid details ...").

Every text is fixed in this module: nothing from a request, a reason or a document is ever
put into one, so no patient data can appear in them.  Unknown slugs get a generic entry
(``http-418`` → "HTTP 418"); `describe` never fails.

What a practice is told about a sending (with these words) is `practice_words`; counting by
cause is `cause_groups`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from invoice_outbox.sendings.queries import (
    UNKNOWN_CAUSE,
)
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.rejections import PREFIX as REJECTION_PREFIX
from invoice_outbox.systems.rejections import Catalogue, file_catalogue

__all__ = [
    "FAILURE_STATUSES",
    "KNOWN",
    "OVERDUE",
    "UNKNOWN",
    "CauseInfo",
    "describe",
    "group_key",
]

#: The group of failures recorded without a cause (older rows, manual changes).
UNKNOWN: Final = UNKNOWN_CAUSE
#: Delivered sendings whose acknowledgement is past its deadline (notices, overview).
OVERDUE: Final = "acknowledgement-overdue"
#: The statuses cause groups are made of (discarded sendings were given up on: not a worklist).
FAILURE_STATUSES: Final = (Status.FAILED, Status.ABORTED)
#: Statuses whose sendings' last attempt failed (a failure without a cause is `UNKNOWN`).
_FAILED_ONCE: Final = frozenset(s.value for s in (*FAILURE_STATUSES, Status.DISCARDED))

_KEEP_TRYING = (
    "We will keep trying automatically; nothing to do unless it stays like this for a day."
)
_GAVE_UP = (
    "We stopped trying automatically after several attempts. Your administrator can send it "
    "again once the system is back; contact them if it is urgent."
)
_ADMIN_TOLD = "Your administrator has been told; nothing to do on your side."
_TELL_ADMIN = (
    "Please tell your administrator: the connection to this system needs fixing before it "
    "can be sent."
)
_DISCARDED = "Sending it was then stopped for good."
_ASK_TO_RESEND = (
    "Nothing to do, unless it must still be sent: then ask your administrator to send it again."
)
_FIX_DETAILS = (
    "Check the invoice and the patient's medical-aid details (member number, dependant code) "
    "in the patient's file, correct them and send again."
)


@dataclass(frozen=True, slots=True)
class CauseInfo:
    """What one cause slug means.

    `retryable`: the channels try this cause again by themselves; once such a sending is
    Aborted, its attempts were spent, and the next step says so.  `known` is False only for
    slugs this registry has never heard of (a generic entry was made up).
    """

    slug: str
    label: str
    explanation: str
    next_step: str
    retryable: bool
    known: bool = True
    #: Rejections by the recipient (catalogue entries): who must act, and whether sending the
    #: same invoice again unchanged can help (False: a correction is needed, so a cause group
    #: offers no blind "resend all").  None for other causes.
    who: str | None = None
    resend_helps: bool | None = None

    @property
    def rejection(self) -> bool:
        return self.slug.startswith(REJECTION_PREFIX)

    @property
    def needs_correction(self) -> bool:
        """Sending it again unchanged cannot help: something must be corrected first."""
        return self.resend_helps is False

    def next_step_for(self, status: str) -> str:
        """The next step for a sending in `status` failed with this cause."""
        if self.retryable and status == Status.ABORTED.value:
            return _GAVE_UP
        return self.next_step


def _temporary(slug: str, label: str, explanation: str) -> CauseInfo:
    return CauseInfo(slug, label, explanation, _KEEP_TRYING, retryable=True)


def _setup(slug: str, label: str, explanation: str, *, retryable: bool = False) -> CauseInfo:
    return CauseInfo(slug, label, explanation, _ADMIN_TOLD, retryable=retryable)


def _rejected(slug: str, label: str, explanation: str, next_step: str = _FIX_DETAILS) -> CauseInfo:
    return CauseInfo(slug, label, explanation, next_step, retryable=False)


_UNAVAILABLE = "The system the invoice is sent to is temporarily unavailable."
_NOT_ANSWERING = "The system the invoice is sent to did not answer in time."
_UNREACHABLE = "We could not reach the system the invoice is sent to; it may be down."
_WRONG_ADDRESS = "The address set up for this system is not correct."
_LOGIN = "The system the invoice is sent to did not accept our login."
_MAIL_LATER = "The mail server asked us to try again later."
_MAIL_REFUSED = "The mailbox the invoice is sent to refused it."
_OUR_SIDE = "Something went wrong on our side while sending."

_ENTRIES: tuple[CauseInfo, ...] = (
    # Network and transport (both channels).
    _temporary("timeout", "Timed out", _NOT_ANSWERING),
    _temporary("connection-refused", "Connection refused", _UNREACHABLE),
    _temporary("connection-closed", "Connection closed unexpectedly", _UNREACHABLE),
    _temporary("connection-reset", "Connection reset", _UNREACHABLE),
    _temporary("connection", "Could not connect", _UNREACHABLE),
    _temporary("unreachable", "Network unreachable", _UNREACHABLE),
    _temporary("dns", "Host name not found (DNS)", _UNREACHABLE),
    _temporary("proxy", "Proxy refused the connection", _UNREACHABLE),
    _setup(
        "tls",
        "Secure connection failed (TLS)",
        "A secure connection to the system the invoice is sent to could not be made.",
        retryable=True,
    ),
    # Set-up of the system in this service.
    _setup(
        "config", "System misconfigured", "The connection to this system is not set up correctly."
    ),
    _setup("smtp-auth", "Mailbox login refused (SMTP authentication)", _LOGIN),
    _temporary(
        "smtp-protocol",
        "Mail server answered oddly",
        "The mail server gave an answer we could not understand.",
    ),
    # This service itself.
    _temporary("internal", "Internal error in invoice-outbox", _OUR_SIDE),
    _temporary(
        "worker-lost",
        "Interrupted (worker stopped)",
        "Sending was interrupted on our side before it finished.",
    ),
    _setup(
        "document-unreadable",
        "Stored document could not be decrypted",
        "The invoice as stored here was altered or damaged, so it was not sent.",
    ),
    _temporary(
        "document-key",
        "Document key missing on a worker",
        "A part of this service lacks the key to read the stored invoice; it will try again.",
    ),
    _rejected(
        "no-document",
        "Document no longer stored",
        "The invoice document is no longer kept here, so it cannot be sent again.",
        "Submit the invoice again from your practice software.",
    ),
    # HTTP answers.
    _rejected(
        "http-400",
        "Bad request (HTTP 400)",
        "The receiver could not accept the invoice as it is.",
        "Check the invoice's details (codes, amounts, the patient's medical-aid details), correct "
        "them and send again. Ask your administrator if it keeps failing.",
    ),
    _setup("http-401", "Credentials refused (HTTP 401)", _LOGIN),
    _setup("http-403", "Access refused (HTTP 403)", _LOGIN),
    _setup("http-404", "Wrong address (HTTP 404)", _WRONG_ADDRESS),
    _setup("http-405", "Wrong address (HTTP 405)", _WRONG_ADDRESS),
    _temporary("http-408", "Receiver timed out (HTTP 408)", _NOT_ANSWERING),
    _rejected(
        "http-409",
        "Conflict (HTTP 409)",
        "The receiver already holds a different version of this invoice.",
        "Ask your administrator: the receiver's copy must be checked before sending again.",
    ),
    _rejected(
        "http-410",
        "Gone (HTTP 410)",
        "The receiver no longer accepts this invoice.",
        "Ask your administrator whether it must still be sent.",
    ),
    _rejected(
        "http-413",
        "Invoice too large (HTTP 413)",
        "The invoice is larger than the receiver accepts.",
        "Remove large attachments from the invoice and send again.",
    ),
    _setup(
        "http-415",
        "Format not accepted (HTTP 415)",
        "The receiver does not accept invoices in this format.",
    ),
    _rejected(
        "http-422", "Rejected by the receiver (HTTP 422)", "The receiver rejected the invoice."
    ),
    _temporary(
        "http-429",
        "Too many requests (HTTP 429)",
        "The system the invoice is sent to asked us to slow down.",
    ),
    _temporary(
        "http-500",
        "HTTP 500 Internal Server Error",
        "The system the invoice is sent to had an internal error.",
    ),
    _temporary("http-502", "HTTP 502 Bad Gateway", _UNAVAILABLE),
    _temporary("http-503", "HTTP 503 Service Unavailable", _UNAVAILABLE),
    _temporary("http-504", "HTTP 504 Gateway Timeout", _NOT_ANSWERING),
    # SMTP replies.
    _temporary("smtp-421", "Mail server unavailable (SMTP 421)", _UNAVAILABLE),
    _temporary("smtp-450", "Mailbox busy (SMTP 450)", _MAIL_LATER),
    _temporary("smtp-451", "Mail server deferred the message (SMTP 451)", _MAIL_LATER),
    _temporary("smtp-452", "Mail server out of space (SMTP 452)", _MAIL_LATER),
    _setup("smtp-530", "Mail server requires a login (SMTP 530)", _LOGIN),
    _setup("smtp-535", "Mailbox login refused (SMTP 535)", _LOGIN),
    _setup("smtp-550", "Mailbox refused the message (SMTP 550)", _MAIL_REFUSED),
    _setup("smtp-551", "Mailbox not here (SMTP 551)", _MAIL_REFUSED),
    _rejected(
        "smtp-552",
        "Mailbox full or message too large (SMTP 552)",
        "The mailbox is full, or the invoice is larger than it accepts.",
        "Ask your administrator; the receiver must make room before we send again.",
    ),
    _setup("smtp-553", "Mailbox address not accepted (SMTP 553)", _MAIL_REFUSED),
    _setup("smtp-554", "Message refused (SMTP 554)", _MAIL_REFUSED),
    # Receivers' own rejections (named by what was wrong).
    _rejected("rejected", "Rejected by the receiver", "The receiver rejected the invoice."),
    CauseInfo(
        OVERDUE,
        "No acknowledgement yet (overdue)",
        "The invoice was delivered, but the system it was sent to has not said whether it "
        "accepts it, and it is past the time it should have.",
        "Nothing to do yet; your administrator is told and follows it up.",
        retryable=False,
    ),
    _setup(
        "no-verdict",
        "No verdict in the answer",
        "The system the invoice is sent to answered, but not in the form it is set up to "
        "answer in, so we cannot tell whether it accepted the invoice.",
    ),
    _rejected(
        "rejected-member-number",
        "Rejected: invalid member number",
        "The medical aid rejected the member number.",
        "Correct it in the patient's file and send again.",
    ),
    CauseInfo(
        UNKNOWN,
        "Unknown cause",
        "The invoice could not be sent.",
        "Your administrator can see the details; contact them if it is urgent.",
        retryable=False,
    ),
)

#: Every cause with its own entry, by slug.
KNOWN: Final[Mapping[str, CauseInfo]] = {entry.slug: entry for entry in _ENTRIES}

_FAMILY = re.compile(r"(http|smtp)-([1-9][0-9]{2})")


def _family(slug: str, kind: str, code: int) -> CauseInfo:
    """The generic entry of an HTTP status or SMTP reply code without its own entry."""
    label = f"{kind.upper()} {code}"
    if kind == "http":
        if 300 <= code <= 399:
            return _setup(slug, label, _WRONG_ADDRESS)
        if 400 <= code <= 499:
            return _rejected(slug, label, "The receiver rejected the invoice.")
        if 500 <= code <= 599:
            return _temporary(slug, label, _UNAVAILABLE)
        return _temporary(slug, label, "The system the invoice is sent to answered oddly.")
    if 400 <= code <= 499:
        return _temporary(slug, label, _MAIL_LATER)
    if 500 <= code <= 599:
        return _setup(slug, label, _MAIL_REFUSED)
    return _temporary(slug, label, "The mail server gave an answer we could not understand.")


def _rejection(slug: str, catalogue: Catalogue | None) -> CauseInfo:
    entry = (catalogue or file_catalogue()).by_slug(slug)
    if entry is None:
        return CauseInfo(
            slug,
            f"Unknown rejection code ({slug[len(REJECTION_PREFIX) + 2 :]})",
            "The recipient rejected the invoice with a code we have no explanation for yet.",
            "Your administrator can see the recipient's code and find out what it means; "
            "contact them if it is urgent.",
            retryable=False,
            known=False,
            who="administrator",
        )
    return CauseInfo(
        slug,
        entry.label,
        entry.meaning,
        entry.fix,
        retryable=False,
        who=entry.who,
        resend_helps=entry.resend_helps,
    )


def describe(slug: str | None, catalogue: Catalogue | None = None) -> CauseInfo:
    """What `slug` means; None is the `UNKNOWN` group.  Never raises.

    A recipient's rejection (a ``code-...`` slug) reads from `catalogue` (the file's alone
    when None: pass `systems.rejections.load_catalogue`'s to include administrators'
    overrides)."""
    if slug is None:
        return KNOWN[UNKNOWN]
    if slug.startswith(REJECTION_PREFIX):
        return _rejection(slug, catalogue)
    entry = KNOWN.get(slug)
    if entry is not None:
        return entry
    match = _FAMILY.fullmatch(slug)
    if match is not None:
        return _family(slug, match[1], int(match[2]))
    return CauseInfo(
        slug,
        f"Other ({slug})",
        "The invoice could not be sent.",
        "Your administrator can see the details; contact them if it is urgent.",
        retryable=False,
        known=False,
    )


def group_key(status: str, cause: str | None) -> str | None:
    """The cause group a sending belongs to: its slug, `UNKNOWN` for a failure without one,
    None for sendings that are not failures (Sent, Pending, ...) and have no cause."""
    if cause is not None:
        return cause
    return UNKNOWN if status in _FAILED_ONCE else None
