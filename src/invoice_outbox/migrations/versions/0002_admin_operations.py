"""admin operations

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_PG_APPEND_ONLY = """
CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit entries are append-only'; END $$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();
"""
_SQLITE_APPEND_ONLY = (
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
)


def _make_audit_append_only() -> None:
    """The audit log is append-only in the database itself, not only by convention."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
    else:
        for statement in _SQLITE_APPEND_ONLY:
            op.execute(statement)


def upgrade() -> None:

    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("practice_id", sa.Uuid(), nullable=True),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("affected", JSON_TYPE, nullable=False),
        sa.Column("affected_count", sa.Integer(), nullable=False),
        sa.Column("details", JSON_TYPE, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    _make_audit_append_only()
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_action", ["action", "time"], unique=False)
        batch_op.create_index("ix_audit_entries_actor", ["actor", "time"], unique=False)
        batch_op.create_index("ix_audit_entries_practice", ["practice_id", "time"], unique=False)
        batch_op.create_index("ix_audit_entries_time", ["time", "id"], unique=False)

    op.create_table(
        "notification_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("aborted_count", sa.Integer(), nullable=False),
        sa.Column("recovered_count", sa.Integer(), nullable=False),
        sa.Column("summary", JSON_TYPE, nullable=False),
        sa.Column("deliveries", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_runs")),
        sa.UniqueConstraint("period_end", name=op.f("uq_notification_runs_period_end")),
    )
    op.create_table(
        "resend_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("selection", JSON_TYPE, nullable=False),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("rate_per_second", sa.Integer(), nullable=False),
        sa.Column("cursor", JSON_TYPE, nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('Running', 'Done', 'Failed')", name=op.f("ck_resend_jobs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resend_jobs")),
    )
    with op.batch_alter_table("resend_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_resend_jobs_status", ["status", "created_at"], unique=False)

    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("aborted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_sendings_aborted_at",
            ["aborted_at"],
            unique=False,
            sqlite_where=sa.text("aborted_at IS NOT NULL"),
            postgresql_where=sa.text("aborted_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_sendings_status_cause", ["status", "cause", "sending_time"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.drop_index("ix_sendings_status_cause")
        batch_op.drop_index("ix_sendings_aborted_at")
        batch_op.drop_column("aborted_at")

    with op.batch_alter_table("resend_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_resend_jobs_status")

    op.drop_table("resend_jobs")
    op.drop_table("notification_runs")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_time")
        batch_op.drop_index("ix_audit_entries_practice")
        batch_op.drop_index("ix_audit_entries_actor")
        batch_op.drop_index("ix_audit_entries_action")

    op.drop_table("audit_entries")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_entries_append_only()")
