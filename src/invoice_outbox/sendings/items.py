"""A sending as a list shows it: the columns a list reads, and the item built from a row.

The same item serves the API's lists (``GET api/v1/billing/sendings``, the practice view) and
the dashboard's tables, so both say the same thing about a sending: its cause group with its
label and, for practices, what happened and what happens next in plain words.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, Final

from invoice_outbox.sendings.causes import describe, group_key, practice_explanation
from invoice_outbox.sendings.holds import SystemHold, held_fields
from invoice_outbox.sendings.models import Sending

#: The columns of a list row, in the order `sending_item` reads them.
ITEM_COLUMNS: Final = (
    Sending.id,
    Sending.practice_id,
    Sending.invoice_id,
    Sending.encounter_id,
    Sending.system,
    Sending.sending_type,
    Sending.status,
    Sending.reason,
    Sending.cause,
    Sending.attempts,
    Sending.sending_time,
    Sending.next_attempt_at,
    Sending.sent_at,
    Sending.invoice_number,
    Sending.aborted_at,
    Sending.lease_expires_at,
)
#: Where `ITEM_COLUMNS` puts when the sending last became Aborted (not part of the item).
ABORTED_AT: Final = 14
#: Where `ITEM_COLUMNS` puts the claim's lease (whether a Sending one is really in flight).
LEASE_EXPIRES_AT: Final = 15


def sending_item(
    row: Sequence[Any],
    holds: Mapping[str, SystemHold] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A row of `ITEM_COLUMNS` as a list item (`Cause` is its cause group, with its label).

    With `holds` (from `held_systems`) and `now`, the item also says whether it is held:
    `Held`, `HeldReason`, `HeldSince` (`invoice_outbox.sendings.holds.held_fields`).
    """
    (
        sending_id,
        practice_id,
        invoice_id,
        encounter_id,
        system,
        sending_type,
        status,
        reason,
        cause,
        attempts,
        sending_time,
        next_attempt_at,
        sent_at,
        invoice_number,
    ) = row[:14]
    group = group_key(status, cause)
    item = {
        "SendingId": sending_id,
        "PracticeId": practice_id,
        "InvoiceId": invoice_id,
        "InvoiceNumber": invoice_number,
        "EncounterId": encounter_id,
        "System": system,
        "SendingType": sending_type,
        "Status": status,
        "Reason": reason,
        "Cause": group,
        "CauseLabel": None if group is None else describe(group).label,
        "SendingAttempts": attempts,
        "SendingTime": sending_time,
        "NextAttemptAt": next_attempt_at,
        "SentAt": sent_at,
    }
    if holds is not None and now is not None:
        item.update(
            held_fields(
                status=status,
                lease_expires_at=row[LEASE_EXPIRES_AT] if len(row) > LEASE_EXPIRES_AT else None,
                waiting_since=sending_time,
                hold=holds.get(system),
                now=now,
            )
        )
    return item


def practice_item(
    row: Sequence[Any],
    zone: tzinfo,
    now: datetime,
    holds: Mapping[str, SystemHold] | None = None,
    told: Collection[Any] = (),
) -> dict[str, Any]:
    """`sending_item` plus `Explanation` and `NextStep` in plain words (the practice view).

    `holds` (from `held_systems`): systems holding their queue, so waiting invoices say why.
    `told`: ids of the sendings whose abort a notice to the admins reported (only those say
    "your administrator has been told").
    """
    item = sending_item(row, holds or {}, now)
    explanation, next_step = practice_explanation(
        status=item["Status"],
        cause=item["Cause"],
        next_attempt_at=item["NextAttemptAt"],
        sent_at=item["SentAt"],
        zone=zone,
        now=now,
        hold=(holds or {}).get(item["System"]) if item["Held"] else None,
        admin_told=item["SendingId"] in told,
    )
    item["Explanation"] = explanation
    item["NextStep"] = next_step
    return item
