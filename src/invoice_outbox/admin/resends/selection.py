"""What a bulk resend or discard is about: a `Selection`, resolved into a `Plan`.

A selection names sendings (ids, a filter, a cause group; the parts given are ANDed); its plan
says which statuses move (`plan`: Failed and Aborted, Sent only when forced; `discard_plan`:
Aborted only) and gives the SQL conditions of the members.  Both are stored on the job as
JSON and read back (`job_plan`).  Pure: nothing here touches the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement

from invoice_outbox.admin.models import ResendJob
from invoice_outbox.admin.resends.refusals import ResendInvalid
from invoice_outbox.sendings.commands import resend_sources
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import selection_clauses
from invoice_outbox.sendings.status import RETRYABLE, SendingType, Status

MAX_SENDING_IDS = 10_000


@dataclass(frozen=True, slots=True)
class Selection:
    """Which sendings a bulk resend is about.  The parts given are ANDed together.

    `statuses` are those asked for in the filter (empty: the default, Failed and Aborted).
    `has_filter` records that a Filter was given (an empty one means every sending).
    """

    cause: str | None = None
    sending_ids: tuple[uuid.UUID, ...] = ()
    has_filter: bool = False
    practice_id: uuid.UUID | None = None
    system: str | None = None
    sending_type: SendingType | None = None
    statuses: tuple[Status, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    #: Invoices a list's search found (by id, id prefix or invoice number): "all matching".
    invoice_ids: tuple[uuid.UUID, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.cause is None and not self.sending_ids and not self.has_filter

    def sending_filter(self, *, with_ids: bool = True) -> SendingFilter:
        """Everything but the status condition (that is the plan's business); `with_ids`
        False leaves the named ids out (a batch names its own window of them)."""
        return SendingFilter(
            practices=None if self.practice_id is None else frozenset({self.practice_id}),
            systems=frozenset({self.system}) if self.system else frozenset(),
            sending_types=frozenset({self.sending_type}) if self.sending_type else frozenset(),
            causes=frozenset({self.cause}) if self.cause is not None else frozenset(),
            sending_ids=frozenset(self.sending_ids) if with_ids else frozenset(),
            invoice_ids=frozenset(self.invoice_ids),
            since=self.since,
            until=self.until,
            text=self.text,
        )

    def to_json(self) -> dict[str, Any]:
        filter_json = None
        if self.has_filter:
            filter_json = {
                "PracticeId": None if self.practice_id is None else str(self.practice_id),
                "System": self.system,
                "SendingType": None if self.sending_type is None else self.sending_type.value,
                "Status": [s.value for s in self.statuses],
                "From": None if self.since is None else self.since.isoformat(),
                "To": None if self.until is None else self.until.isoformat(),
                "Q": self.text,
                **({"InvoiceIds": [str(i) for i in self.invoice_ids]} if self.invoice_ids else {}),
            }
        return {
            "Cause": self.cause,
            "SendingIds": [str(i) for i in self.sending_ids],
            "Filter": filter_json,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Selection:
        filter_json = value.get("Filter")
        selection = cls(
            cause=value.get("Cause"),
            sending_ids=tuple(uuid.UUID(i) for i in value.get("SendingIds") or ()),
        )
        if filter_json is None:
            return selection

        def when(key: str) -> datetime | None:
            raw = filter_json.get(key)
            return None if raw is None else datetime.fromisoformat(raw)

        practice = filter_json.get("PracticeId")
        sending_type = filter_json.get("SendingType")
        return replace(
            selection,
            has_filter=True,
            practice_id=None if practice is None else uuid.UUID(practice),
            system=filter_json.get("System"),
            sending_type=None if sending_type is None else SendingType(sending_type),
            statuses=tuple(Status(s) for s in filter_json.get("Status") or ()),
            since=when("From"),
            until=when("To"),
            text=filter_json.get("Q"),
            invoice_ids=tuple(uuid.UUID(i) for i in filter_json.get("InvoiceIds") or ()),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """A selection resolved into SQL: which statuses move, whether discarded ones are left."""

    selection: Selection
    force: bool
    statuses: frozenset[Status]
    #: Sent sendings matching the selection that are left out (no Force) -- worth saying.
    sent_left_out: bool
    exclude_discarded: bool

    def base_clauses(self, *, with_ids: bool = True) -> list[ColumnElement[bool]]:
        """The selection's conditions; the cause ``unknown`` is the cause groups' one (failures
        recorded without a cause), as in the lists and ``GET api/v1/billing/causes``."""
        return selection_clauses(self.selection.sending_filter(with_ids=with_ids))

    def member_clauses(self, *, with_ids: bool = True) -> list[ColumnElement[bool]]:
        """The sendings this plan resends (before the snapshot condition)."""
        clauses = self.base_clauses(with_ids=with_ids)
        clauses.append(Sending.status.in_(sorted(s.value for s in self.statuses)))
        return clauses

    def to_json(self) -> dict[str, Any]:
        return {
            **self.selection.to_json(),
            "Statuses": sorted(s.value for s in self.statuses),
            "SentLeftOut": self.sent_left_out,
            "ExcludeDiscarded": self.exclude_discarded,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any], *, force: bool) -> Plan:
        statuses = frozenset(Status(s) for s in value.get("Statuses") or ())
        exclude_discarded = bool(value.get("ExcludeDiscarded"))
        if not exclude_discarded and Status.ABORTED in statuses:
            # Planned before Discarded was a status of its own (discarded ones were Aborted).
            statuses |= {Status.DISCARDED}
        return cls(
            selection=Selection.from_json(value),
            force=force,
            statuses=statuses,
            sent_left_out=bool(value.get("SentLeftOut")),
            exclude_discarded=exclude_discarded,
        )


def plan(selection: Selection, *, force: bool) -> Plan:
    """Resolve statuses: Failed and Aborted by default, Sent only when forced.

    Statuses that cannot be resent at all (Pending, Sending, Cancelled) in the filter are a
    400.  Discarded sendings are left out unless the selection names sendings by id.
    """
    if selection.is_empty:
        raise ResendInvalid("give Cause, SendingIds or Filter")
    resendable = RETRYABLE | {Status.SENT}
    wrong = [s.value for s in selection.statuses if s not in resendable]
    if wrong:
        raise ResendInvalid(
            f"Filter.Status {', '.join(wrong)} cannot be resent "
            "(only Failed, Aborted, and Sent with Force)"
        )
    wanted = frozenset(selection.statuses) or RETRYABLE | {Status.SENT}
    named = bool(selection.sending_ids)
    if named and Status.ABORTED in wanted:
        wanted |= {Status.DISCARDED}  # given up on, but named: an admin's decision
    allowed = resend_sources(force=force, discarded=named)
    return Plan(
        selection=selection,
        force=force,
        statuses=wanted & allowed,
        sent_left_out=Status.SENT in wanted and not force,
        exclude_discarded=not named,
    )


def discard_plan(selection: Selection) -> Plan:
    """What a discard job changes: the Aborted sendings of the selection (nothing else can be
    discarded; named ones in another status are reported, not changed)."""
    if selection.is_empty:
        raise ResendInvalid("give Cause, SendingIds or Filter")
    wrong = [s.value for s in selection.statuses if s is not Status.ABORTED]
    if wrong:
        raise ResendInvalid(f"only Aborted sendings can be discarded, not {', '.join(wrong)}")
    return Plan(
        selection=selection,
        force=False,
        statuses=frozenset({Status.ABORTED}),
        sent_left_out=False,
        exclude_discarded=True,
    )


def job_plan(job: ResendJob) -> Plan:
    return Plan.from_json(job.selection, force=job.force)
