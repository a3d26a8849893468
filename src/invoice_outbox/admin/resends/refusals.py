"""The refusals of bulk and one-sending resends and discards.

Each is also one of the domain's kinds (`invoice_outbox.errors`), which the front ends map to
their answers.  `ResendRefused` is the base of the refusals of an action as asked (catch it to
handle every one of them, here and in `sending_actions`); a missing job
(`ResendJobNotFound`) and a cause group that needs a correction (`ResendNeedsCorrection`) are
not among them.
"""

from __future__ import annotations

import uuid

from invoice_outbox.errors import Conflict, Forbidden, Invalid, NotFound, OutboxError


class ResendRefused(OutboxError):
    """A resend or discard that cannot be done as asked.  Never raised itself: each refusal
    below is also one of the domain's kinds, which the front ends map (catch this to handle
    every refusal of this module and of `sending_actions`)."""


class ResendInvalid(ResendRefused, Invalid):
    """The request contradicts itself: no selection, statuses that cannot be resent, a
    PreviewJobId with a dry run or with another selection."""


class ForceNotAllowed(ResendRefused, Forbidden):
    """Only admins may force a resend of a delivered sending."""


class DiscardedResendNotAllowed(ResendRefused, Forbidden):
    """Only admins may resend a discarded sending."""


class SendingNotFound(ResendRefused, NotFound):
    """No sending has the id, or none the caller may see (the same answer for both)."""

    def __init__(self, sending_id: uuid.UUID) -> None:
        super().__init__(f"No sending has the id {sending_id}.")


class DryRunNotFound(ResendRefused, NotFound):
    """PreviewJobId names no dry run."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(f"No dry run has the id {job_id}.")


class ResendConflict(ResendRefused, Conflict):
    """The sending's state refuses the action now (delivered, queued, in flight, cancelled,
    not Aborted, already discarded, or changed meanwhile); the message says which."""


class ResendJobNotFound(NotFound):
    """No resend job (or dry run) has the id."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(f"No resend job has the id {job_id}.")


class ResendNeedsCorrection(Conflict):
    """A cause group whose fix is a correction: resending it unchanged cannot help."""

    def __init__(self, label: str) -> None:
        super().__init__(
            f'The fix for "{label}" is a correction of each invoice: sending them again '
            "unchanged cannot help. Have the practices correct them (a corrected invoice is "
            "sent by itself), or pass Force to resend them anyway."
        )
