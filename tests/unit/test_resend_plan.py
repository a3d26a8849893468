"""Resend selections, plans, pacing and audit cursors: pure values, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from invoice_outbox.admin.audit import BadCursor, decode_cursor
from invoice_outbox.admin.resend_loop import Pacer
from invoice_outbox.admin.resends import Plan, ResendInvalid, Selection, notes, plan
from invoice_outbox.sendings.commands import resend_sources
from invoice_outbox.sendings.status import SendingType, Status, can_transition

S = Status
WHEN = datetime(2026, 2, 5, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("force", "discarded", "expected"),
    [
        (False, False, {S.FAILED, S.ABORTED}),
        (True, False, {S.FAILED, S.ABORTED, S.SENT}),
        (False, True, {S.FAILED, S.ABORTED, S.DISCARDED}),
    ],
)
def test_resend_sources_follow_the_status_graph(
    force: bool, discarded: bool, expected: set[Status]
) -> None:
    assert resend_sources(force=force, discarded=discarded) == expected
    assert all(can_transition(s, S.PENDING) for s in expected)


@pytest.mark.parametrize(
    ("selection", "force", "statuses", "sent_left_out", "exclude_discarded"),
    [
        (Selection(cause="http-503"), False, {S.FAILED, S.ABORTED}, True, True),
        (Selection(cause="http-503"), True, {S.FAILED, S.ABORTED, S.SENT}, False, True),
        (Selection(has_filter=True, statuses=(S.ABORTED,)), False, {S.ABORTED}, False, True),
        (Selection(has_filter=True, statuses=(S.SENT,)), False, set(), True, True),
        (Selection(has_filter=True, statuses=(S.SENT,)), True, {S.SENT}, False, True),
        (
            Selection(sending_ids=(uuid.UUID(int=1),)),
            False,
            {S.FAILED, S.ABORTED, S.DISCARDED},
            True,
            False,
        ),
    ],
)
def test_plans(
    selection: Selection,
    force: bool,
    statuses: set[Status],
    sent_left_out: bool,
    exclude_discarded: bool,
) -> None:
    resolved = plan(selection, force=force)
    assert resolved.statuses == statuses
    assert resolved.sent_left_out is sent_left_out
    assert resolved.exclude_discarded is exclude_discarded


def test_an_empty_selection_is_refused_but_an_empty_filter_means_everything() -> None:
    with pytest.raises(ResendInvalid):
        plan(Selection(), force=False)
    assert plan(Selection(has_filter=True), force=False).statuses == {S.FAILED, S.ABORTED}


@pytest.mark.parametrize("status", [S.PENDING, S.SENDING, S.CANCELLED, S.DISCARDED])
def test_statuses_that_cannot_be_resent_are_refused(status: Status) -> None:
    with pytest.raises(ResendInvalid, match=f"{status.value} cannot be resent"):
        plan(Selection(has_filter=True, statuses=(status,)), force=True)


def test_a_plan_survives_its_json_form() -> None:
    selection = Selection(
        cause="timeout",
        sending_ids=(uuid.UUID(int=1), uuid.UUID(int=2)),
        has_filter=True,
        practice_id=uuid.UUID(int=3),
        system="MediSwitch",
        sending_type=SendingType.INVOICE,
        statuses=(S.ABORTED,),
        since=WHEN,
        until=WHEN.replace(hour=12),
        text="503",
    )
    original = plan(selection, force=True)
    assert Plan.from_json(original.to_json(), force=True) == original
    assert Selection.from_json(Selection(cause="x").to_json()) == Selection(cause="x")


def test_notes_say_what_was_left_out_and_why() -> None:
    preview = {"SentLeftOut": 2, "DiscardedLeftOut": 1, "NotFound": 3}
    dry = notes(preview, dry_run=True)
    assert dry[0].startswith("2 sending(s) already Sent would be left out")
    assert '"Force": true' in dry[0]
    assert "1 discarded sending(s) would be left out" in dry[1]
    assert dry[2] == "3 named sending(s) do not exist."
    assert notes({"SentIncluded": 4}, dry_run=False)[0].startswith(
        "4 sending(s) already Sent are included because Force is true"
    )
    assert notes({}, dry_run=True) == []


def test_a_job_planned_before_discarded_was_a_status_still_resends_named_discarded_ones() -> None:
    """Jobs stored before migration 0004 name Aborted only; their discarded members moved."""
    stored = {"SendingIds": [str(uuid.UUID(int=1))], "Statuses": ["Aborted", "Failed"]}
    assert Plan.from_json(stored, force=False).statuses == {S.FAILED, S.ABORTED, S.DISCARDED}
    by_cause = {"Cause": "timeout", "Statuses": ["Aborted"], "ExcludeDiscarded": True}
    assert Plan.from_json(by_cause, force=False).statuses == {S.ABORTED}


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_pacer_keeps_a_job_under_its_rate() -> None:
    fake = FakeTime()
    pacer = Pacer(500, sleep=fake.sleep, monotonic=fake.monotonic)
    fake.now += 0.2  # the batch took 0.2 s
    await pacer.after(500)  # 500 rows at 500/s: one second in all
    fake.now += 1.5  # a slow batch: no waiting on top
    await pacer.after(500)
    await pacer.after(0)
    assert fake.slept == [pytest.approx(0.8)]


def test_audit_cursors_from_elsewhere_are_refused() -> None:
    for cursor in ("", "garbage", "WzEsMl0", "WyIyMDI2LTAyLTA1VDEwOjAwOjAwIiwgMV0"):
        with pytest.raises(BadCursor):
            decode_cursor(cursor)
