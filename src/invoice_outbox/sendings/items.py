"""A sending as a list shows it: the columns a list reads, and the item built from a row.

The same item serves the API's lists (``GET api/v1/billing/sendings``, the practice view) and
the dashboard's tables, so both say the same thing about a sending: its cause group with its
label and, for practices, what happened and what happens next in plain words.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, Final

from invoice_outbox.sendings.causes import describe, group_key
from invoice_outbox.sendings.holds import SystemHold, held_fields
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.practice_words import practice_explanation
from invoice_outbox.systems.rejections import Catalogue

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
    Sending.acceptance,
    Sending.acceptance_code,
    Sending.follows_id,
)
#: Where `ITEM_COLUMNS` puts when the sending last became Aborted (not part of the item).
ABORTED_AT: Final = 14


def sending_item(
    row: Sequence[Any],
    holds: Mapping[str, SystemHold] | None = None,
    now: datetime | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """A row of `ITEM_COLUMNS` as a list item (`Cause` is its cause group, with its label;
    a rejection's label comes from `catalogue`, the file's alone when None).

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
        _aborted_at,
        lease_expires_at,
        acceptance,
        acceptance_code,
        follows_id,
    ) = row[:19]
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
        "CauseLabel": None if group is None else describe(group, catalogue).label,
        "SendingAttempts": attempts,
        "SendingTime": sending_time,
        "NextAttemptAt": next_attempt_at,
        "SentAt": sent_at,
        "Acceptance": acceptance,
        "AcceptanceCode": acceptance_code,
        "WaitsFor": follows_id,
    }
    if holds is not None and now is not None:
        item.update(
            held_fields(
                status=status,
                lease_expires_at=lease_expires_at,
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
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """`sending_item` plus `Explanation` and `NextStep` in plain words (the practice view),
    and for a rejection `WhoMustAct` and `MustCorrect` (the practice must correct it).

    `holds` (from `held_systems`): systems holding their queue, so waiting invoices say why.
    `told`: ids of the sendings whose abort a notice to the admins reported (only those say
    "your administrator has been told").
    """
    item = sending_item(row, holds or {}, now, catalogue)
    info = describe(item["Cause"], catalogue) if item["Cause"] else None
    who = info.who if info is not None and item["Acceptance"] == "Rejected" else None
    item["WhoMustAct"] = who
    item["MustCorrect"] = who == "practice" and item["Status"] == "Aborted"
    if item["WaitsFor"] is not None and item["Status"] == "Pending" and not item["NextAttemptAt"]:
        item["Explanation"] = (
            f"This corrected invoice waits until {item['System']} has accepted the reversal "
            "of the earlier one, so that it never holds two live claims for this invoice."
        )
        item["NextStep"] = "Nothing to do: it is sent as soon as the reversal is accepted."
        return item
    explanation, next_step = practice_explanation(
        status=item["Status"],
        cause=item["Cause"],
        next_attempt_at=item["NextAttemptAt"],
        sent_at=item["SentAt"],
        zone=zone,
        now=now,
        hold=(holds or {}).get(item["System"]) if item["Held"] else None,
        admin_told=item["SendingId"] in told,
        acceptance=item["Acceptance"],
        system=item["System"],
        catalogue=catalogue,
    )
    item["Explanation"] = explanation
    item["NextStep"] = next_step
    return item
