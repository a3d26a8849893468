"""The worker's two hottest statements on PostgreSQL, as fixed SQL text.

Each delivery costs one claim and one outcome write.  Built with SQLAlchemy's expression
language, each statement cost more Python to build (and, with IN lists of varying length,
for PostgreSQL to parse and plan) than the row work it did.  Here the text never changes: the
rows travel as arrays (``unnest``), so psycopg prepares each statement once per connection.
SQLite uses the portable statements in `claims` and `outcomes`; both give the same results,
which the tests check on both engines.

Only our own enum values are formatted into the text; every datum is a bound parameter.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import TextClause, text

from invoice_outbox.sendings.status import CLAIMABLE, Status

# Written as the due-queue index's predicate is (sendings/models.py), so the planner uses it.
_DUE_ORDER = (Status.PENDING, Status.FAILED)
assert frozenset(_DUE_ORDER) == CLAIMABLE
_CLAIMABLE_SQL = ", ".join(f"'{s.value}'" for s in _DUE_ORDER)

#: Claim up to :limit due sendings of systems that are not held (disabled or Down), earliest
#: due first, skipping rows another worker holds.  Same as `claims.claim_due`.
CLAIM_DUE: Final[TextClause] = text(f"""
    UPDATE sendings AS s
    SET status = '{Status.SENDING.value}', lease_owner = :worker, lease_expires_at = :expires,
        attempts = s.attempts + 1, round_attempts = s.round_attempts + 1,
        sending_time = :now, updated_at = :now
    WHERE s.id IN (
        SELECT d.id FROM sendings AS d
        WHERE d.status IN ({_CLAIMABLE_SQL}) AND d.next_attempt_at <= :now
          AND d.system NOT IN (SELECT name FROM systems WHERE NOT enabled OR circuit = 'Down')
        ORDER BY d.next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING s.id, s.system, s.practice_id, s.invoice_id, s.sending_type, s.idempotency_key,
        s.document_id, s.attempts, s.round_attempts
""")  # noqa: S608

#: Mark delivered sendings Sent, guarded per row as `outcomes.record` is (same worker, same
#: attempt, still Sending), and record a "Sent" attempt for exactly those: one round trip.
#: Returns the ids whose claim held.
MARK_SENT: Final[TextClause] = text(f"""
    WITH delivered AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS integer[]),
                             CAST(:started AS timestamptz[]), CAST(:durations AS integer[]),
                             CAST(:codes AS integer[]))
            AS d(id, attempt, started_at, duration_ms, code)
    ), sent AS (
        UPDATE sendings AS s
        SET status = '{Status.SENT.value}', sent_at = :now, reason = NULL,
            next_attempt_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
            updated_at = :now
        FROM delivered
        WHERE s.id = delivered.id AND s.attempts = delivered.attempt
          AND s.status = '{Status.SENDING.value}' AND s.lease_owner = :worker
        RETURNING s.id
    )
    INSERT INTO attempts (sending_id, number, started_at, duration_ms, outcome, code, reason,
                          worker)
    SELECT delivered.id, delivered.attempt, delivered.started_at, delivered.duration_ms,
           'Sent', delivered.code, NULL, :worker
    FROM delivered JOIN sent ON sent.id = delivered.id
    RETURNING sending_id
""")  # noqa: S608
