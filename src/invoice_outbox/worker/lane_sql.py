"""The lane claim on PostgreSQL: one fixed statement, prepared once per connection.

It does what `invoice_outbox.worker.claims.claim_lanes` does on SQLite, in one round trip:

1. ``lanes``: the systems with due work that are not held (disabled or Down) or paused
   (``paused_until``), locked ``FOR UPDATE`` in name order.  Claims of one lane are thereby
   serialised across workers, which is what makes its limits hold across workers;
2. ``room``: each lane's free slots: its ``max_in_flight`` less its sendings in flight, counted
   by ``invoice_outbox_lane_in_flight`` (VOLATILE, so with a snapshot taken after the lock:
   another worker's claim that just committed is counted), and at most its rate limit's
   tokens (`lanes.tokens`);
3. ``picked``: per lane (LATERAL), its oldest due sendings up to its free slots, locked
   ``SKIP LOCKED``, each ranked within its lane;
4. ``chosen``: round-robin over the lanes (rank, then due time) up to the worker's free slots
   (`lanes.fair_pick`);
5. ``paced``: rate-limited lanes' ``next_slot_at`` moves on by what they started
   (`lanes.next_slot`);
6. ``claimed``: the status write (`invoice_outbox.sendings.transitions.CLAIMED_CTE`), with each
   claimed sending's sealed document joined in, so no second statement loads them.

Rows come back in two kinds: ``kind = 1`` a claimed sending, ``kind = 2`` one row per lane
(its free slots, the sendings picked and, for a rate-limited lane, when its next delivery
may start: `lanes.reopens_at`).
Only our own enum values are formatted into the text; every datum is a bound parameter.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import TextClause, text

from invoice_outbox.sendings.status import CLAIMABLE, in_order
from invoice_outbox.sendings.transitions import CLAIMED_CTE

_DUE: Final = "status IN (" + ", ".join(f"'{v}'" for v in in_order(CLAIMABLE)) + ")"


def _burst(rate: str) -> str:
    """`lanes.burst` in SQL."""
    return f"greatest(1, floor({rate} / 10))"


_TOKENS_BURST: Final = _burst("l.rate_per_second")

CLAIM_LANES_SQL: Final[TextClause] = text(f"""
WITH lanes AS MATERIALIZED (
    SELECT y.name, y.max_in_flight, y.rate_per_second, y.next_slot_at, y.updated_at
    FROM systems AS y
    WHERE y.enabled AND y.circuit <> 'Down'
      AND (y.paused_until IS NULL OR y.paused_until <= :now)
      AND EXISTS (SELECT FROM sendings AS e
                  WHERE e.system = y.name AND e.{_DUE} AND e.next_attempt_at <= :now)
    ORDER BY y.name
    FOR UPDATE OF y
), room AS MATERIALIZED (
    SELECT l.name, l.rate_per_second AS rate, l.updated_at,
           greatest(coalesce(l.next_slot_at, :now), :now) AS base,
           least(l.max_in_flight - invoice_outbox_lane_in_flight(l.name),
                 CASE WHEN l.rate_per_second IS NULL THEN l.max_in_flight
                      ELSE floor(extract(epoch FROM :now - greatest(coalesce(l.next_slot_at,
                                 :now), :now)) * l.rate_per_second
                                 + {_TOKENS_BURST} + 1e-9)::integer
                 END) AS free
    FROM lanes AS l
), picked AS (
    SELECT p.id, p.system, p.next_attempt_at, p.document_id, room.updated_at AS system_version,
           row_number() OVER (PARTITION BY p.system ORDER BY p.next_attempt_at) AS rank
    FROM room CROSS JOIN LATERAL (
        SELECT d.id, d.system, d.next_attempt_at, d.document_id
        FROM sendings AS d
        WHERE d.system = room.name AND d.{_DUE} AND d.next_attempt_at <= :now
        ORDER BY d.next_attempt_at
        LIMIT room.free
        FOR UPDATE SKIP LOCKED) AS p
    WHERE room.free > 0
), chosen AS MATERIALIZED (
    SELECT id, document_id, system, system_version
    FROM picked
    ORDER BY rank, next_attempt_at
    LIMIT :limit
), paced AS (
    UPDATE systems AS y
    SET next_slot_at = room.base + make_interval(secs => started.n / room.rate)
    FROM room
    JOIN (SELECT system, count(*) AS n FROM chosen GROUP BY system) AS started
      ON started.system = room.name
    WHERE y.name = room.name AND room.rate IS NOT NULL
    RETURNING y.name, y.next_slot_at
), {CLAIMED_CTE}
SELECT 1 AS kind, id, system, practice_id, invoice_id, sending_type, idempotency_key,
       document_id, attempts, round_attempts, key_id, nonce, body, content_type,
       system_version,
       NULL::integer AS free, NULL::integer AS picked, NULL::timestamptz AS reopens_at
FROM claimed
UNION ALL
SELECT 2, NULL, room.name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, room.free,
       (SELECT count(*) FROM picked WHERE picked.system = room.name)::integer,
       CASE WHEN room.rate IS NOT NULL
            THEN coalesce(paced.next_slot_at, room.base)
                 - make_interval(secs => ({_burst("room.rate")} - 1) / room.rate) END
FROM room LEFT JOIN paced ON paced.name = room.name
""")  # noqa: S608
