"""What a practice is told about a sending: what happened and what happens next, in plain words.

The words are the causes registry's (`causes.describe`, with the rejection catalogue) and fixed
texts here; besides them, an explanation may name the system an invoice goes to (an
administrator's configuration, never patient data).  Times are in the service's zone.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from invoice_outbox.sendings.causes import (
    _ADMIN_TOLD,
    _ASK_TO_RESEND,
    _DISCARDED,
    _KEEP_TRYING,
    _TELL_ADMIN,
    describe,
)
from invoice_outbox.sendings.holds import SystemHold
from invoice_outbox.sendings.status import Acceptance, Status
from invoice_outbox.systems.rejections import Catalogue

__all__ = ["practice_explanation"]

_FOLLOWED_UP = "Nothing to do yet; your administrator is told and follows it up."

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _local(moment: datetime, zone: tzinfo) -> tuple[str, str]:
    """(``18:06 SAST``, ``5 February 2026``): the service's zone, words a practice can read."""
    local = moment.astimezone(zone)
    name = local.tzname() or ""
    clock = f"{local:%H:%M} {name}" if name.isalpha() else f"{local:%H:%M}"
    return clock, f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


def _held_words(hold: SystemHold, zone: tzinfo) -> tuple[str, str]:
    system = hold.system
    if hold.disabled:
        since = ""
        if hold.disabled_at is not None:
            clock, day = _local(hold.disabled_at, zone)
            since = f" since {clock} on {day}"
        return (
            f"{system} is switched off for now{since}, so the invoice is waiting.",
            f"Nothing to do: it is sent when an administrator switches {system} on again.",
        )
    since = ""
    if hold.down_since is not None:
        clock, day = _local(hold.down_since, zone)
        since = f" since {clock} on {day}"
    return (
        f"{system} has not been answering{since}, so the invoice is waiting; "
        "this does not use up its attempts.",
        f"Nothing to do: it is sent as soon as {system} answers again.",
    )


def _delivered_words(
    sent_at: datetime | None, zone: tzinfo, acceptance: str | None, system: str
) -> tuple[str, str]:
    when = ""
    if sent_at is not None:
        clock, day = _local(sent_at, zone)
        when = f" on {day} at {clock}"
    if acceptance == Acceptance.AWAITING.value:
        return f"Delivered{when}; waiting for {system} to accept it.", "Nothing to do."
    if acceptance == Acceptance.OVERDUE.value:
        return (
            f"Delivered{when}, but {system} has not said whether it accepts it, "
            "and it is past the time it should have.",
            _FOLLOWED_UP,
        )
    if acceptance == Acceptance.ACCEPTED.value:
        return f"Delivered{when} and accepted by {system}.", "Nothing to do."
    return f"Delivered{when}.", "Nothing to do."


def practice_explanation(
    *,
    status: str,
    cause: str | None,
    next_attempt_at: datetime | None,
    sent_at: datetime | None,
    zone: tzinfo,
    now: datetime | None = None,
    hold: SystemHold | None = None,
    acceptance: str | None = None,
    system: str | None = None,
    catalogue: Catalogue | None = None,
    admin_told: bool = False,
) -> tuple[str, str]:
    """(Explanation, NextStep) of a sending's state for a practice user, in plain words.

    "Your administrator has been told" is said only with `admin_told` (a notice reporting
    this sending's abort was sent); otherwise the practice is asked to tell them.

    A Failed sending whose next attempt is already due at `now` (its system is held while it
    is down, or the worker is busy) is promised an attempt "shortly", not at a past time.
    `hold`: the sending is held (`invoice_outbox.sendings.holds.is_held`: its system holds its
    queue, down or switched off); a waiting sending then says so, instead of promising an
    attempt that is not coming yet (or "being sent" for one whose worker is gone).
    """
    waiting = (Status.PENDING.value, Status.FAILED.value, Status.SENDING.value)
    if hold is not None and status in waiting:
        return _held_words(hold, zone)
    if status == Status.SENT.value:
        return _delivered_words(sent_at, zone, acceptance, system or "the recipient")
    if status == Status.PENDING.value:
        return "Waiting to be sent.", "Nothing to do; it will be sent shortly."
    if status == Status.SENDING.value:
        return "Being sent now.", "Nothing to do."
    if status == Status.CANCELLED.value:
        return "The invoice was cancelled, so this will not be sent.", "Nothing to do."
    info = describe(cause, catalogue)
    if status == Status.DISCARDED.value:
        return f"{info.explanation} {_DISCARDED}", _ASK_TO_RESEND
    if status == Status.FAILED.value:
        if next_attempt_at is None:
            return info.explanation, _KEEP_TRYING
        if now is not None and next_attempt_at <= now:
            step = "We will try again shortly."
        else:
            clock, day = _local(next_attempt_at, zone)
            step = f"We will try again at {clock} on {day}."
        if not info.retryable:
            step = f"{step} {info.next_step}"
        return info.explanation, step
    step = info.next_step_for(status)
    if step == _ADMIN_TOLD and not admin_told:
        step = _TELL_ADMIN
    return info.explanation, step
