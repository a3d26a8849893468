"""per-system lanes: in-flight and rate limits, throttling, truthful holds

Systems gain their lane settings (``max_in_flight``, default 8; ``rate_per_second``, none),
the lane's shared pacing state (``next_slot_at``: the rate limit across every worker;
``paused_until``: a receiver's Retry-After), when they were switched off (``disabled_at``), the
times of their last success and failure, and the distinct sendings of the current failure run
(``failing_sendings``: a run of one sending's failures is that sending's problem, not the
system's).  Sendings in flight are indexed by system (each lane's in-flight count) instead of
by lease expiry alone.  On PostgreSQL a function counts a lane's in-flight sendings with a
fresh snapshot (see ``invoice_outbox.sendings.transitions.CLAIM_LANES_SQL``).

Frozen history: this file must not import application code.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_IN_FLIGHT = sa.text("status = 'Sending'")

# VOLATILE: each call takes a fresh snapshot, so a claim that waited for another worker's
# lock on the lane counts that worker's claims too (a STABLE function or a plain sub-select
# would see the snapshot taken when the statement started).
_PG_IN_FLIGHT = """
CREATE FUNCTION invoice_outbox_lane_in_flight(lane text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT count(*) FROM sendings WHERE system = lane AND status = 'Sending');
END $$
"""


def upgrade() -> None:
    with op.batch_alter_table("systems", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_in_flight", sa.Integer(), server_default="8", nullable=False)
        )
        batch_op.add_column(sa.Column("rate_per_second", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("failing_sendings", JSON_TYPE, server_default="[]", nullable=False)
        )
        batch_op.create_check_constraint(op.f("ck_systems_max_in_flight"), "max_in_flight > 0")
        batch_op.create_check_constraint(
            op.f("ck_systems_rate"), "rate_per_second IS NULL OR rate_per_second > 0"
        )
    op.execute("UPDATE systems SET disabled_at = updated_at WHERE NOT enabled")
    op.drop_index("ix_sendings_leases", table_name="sendings")
    op.create_index(
        "ix_sendings_in_flight",
        "sendings",
        ["system", "lease_expires_at"],
        unique=False,
        sqlite_where=_IN_FLIGHT,
        postgresql_where=_IN_FLIGHT,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_IN_FLIGHT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION invoice_outbox_lane_in_flight(text)")
    op.drop_index("ix_sendings_in_flight", table_name="sendings")
    op.create_index(
        "ix_sendings_leases",
        "sendings",
        ["lease_expires_at"],
        unique=False,
        sqlite_where=_IN_FLIGHT,
        postgresql_where=_IN_FLIGHT,
    )
    with op.batch_alter_table("systems", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_systems_rate"), type_="check")
        batch_op.drop_constraint(op.f("ck_systems_max_in_flight"), type_="check")
        batch_op.drop_column("failing_sendings")
        batch_op.drop_column("last_failure_at")
        batch_op.drop_column("last_success_at")
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("paused_until")
        batch_op.drop_column("next_slot_at")
        batch_op.drop_column("rate_per_second")
        batch_op.drop_column("max_in_flight")
