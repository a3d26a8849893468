"""Every write of a sending's status: one function per edge of `status.TRANSITIONS`.

This package is the only writer of ``sendings.status`` and ``sendings.acceptance`` (any of
its modules may write them, no module outside it may: ``tests/unit/test_status_writer.py``
scans the source tree to keep it so).  Each function is named for its edge and applies it in
one of two ways:

- a guarded UPDATE whose WHERE clause selects ``status IN sources_of(target)`` or a narrower
  set, so a row that changed meanwhile is left alone instead of being overwritten;
- on a row the caller loaded (and locked, where it matters): `ensure_transition` first.

Two edges also have a PostgreSQL path as fixed SQL text, the worker's two hottest statements:
the claim (`CLAIMED_CTE`, inside the lane claim of ``worker/lane_sql.py``, which picks the rows
fairly per system), and the Sent outcome (its UPDATE and the attempt's INSERT in one round
trip).  Built with the expression language, each cost more Python to build (and, with IN lists
of varying length, PostgreSQL more to parse and plan) than the row work it did.  Here the text never
changes: rows travel as arrays (``unnest``), so psycopg prepares each statement once per
connection.  Each edge exists once per engine path; the tests check both give the same results.
Only our own enum values are formatted into SQL text; every datum is a bound parameter.

Functions never commit.  The modules, by topic (import the names from here):

- `_guards`: the guards built from the graph of `status.py`, shared by the others (the bottom);
- `new_sendings`: new sendings (no edge) and intake's statements, a correction's new document;
- `delivery`: the worker's path -- claims, take-overs, outcomes of an attempt, releases;
- `commands`: admins' and practices' commands -- requeue (resend, retry), cancel, discard;
- `verdict`: the recipient's verdict (the acceptance column, `status.ACCEPTANCE_TRANSITIONS`).
"""

from __future__ import annotations

from invoice_outbox.sendings.status import Acceptance, Status
from invoice_outbox.sendings.transitions._guards import Executor
from invoice_outbox.sendings.transitions.commands import (
    cancel_loaded,
    discard,
    discard_many,
    requeue,
)
from invoice_outbox.sendings.transitions.delivery import (
    CLAIM_COLUMNS,
    CLAIMED_CTE,
    MARK_SENT_SQL,
    SentBatch,
    abort,
    claim,
    mark_failed,
    mark_sent,
    release,
    release_lost,
    take_over,
)
from invoice_outbox.sendings.transitions.new_sendings import (
    INTAKE_RETURNING,
    REPLACEABLE,
    create_pending,
    demo_sending,
    insert_pending,
    intake_insert,
    pending_values,
    replace_document,
)
from invoice_outbox.sendings.transitions.verdict import (
    JudgedAttempt,
    acknowledge,
    mark_overdue,
    mark_sent_judged,
    reject_in_answer,
    release_followers,
    undecided,
)

S = Status
A = Acceptance

__all__ = [
    "CLAIMED_CTE",
    "CLAIM_COLUMNS",
    "INTAKE_RETURNING",
    "MARK_SENT_SQL",
    "REPLACEABLE",
    "A",
    "Executor",
    "JudgedAttempt",
    "S",
    "SentBatch",
    "abort",
    "acknowledge",
    "cancel_loaded",
    "claim",
    "create_pending",
    "demo_sending",
    "discard",
    "discard_many",
    "insert_pending",
    "intake_insert",
    "mark_failed",
    "mark_overdue",
    "mark_sent",
    "mark_sent_judged",
    "pending_values",
    "reject_in_answer",
    "release",
    "release_followers",
    "release_lost",
    "replace_document",
    "requeue",
    "take_over",
    "undecided",
]
