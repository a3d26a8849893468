"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    op.create_table(
        "systems",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("settings", JSON_TYPE, nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("retry_policy", JSON_TYPE, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("circuit", sa.String(length=16), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("down_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('Http', 'Email')", name=op.f("ck_systems_channel")),
        sa.CheckConstraint(
            "circuit IN ('Healthy', 'Degraded', 'Down')", name=op.f("ck_systems_circuit")
        ),
        sa.CheckConstraint("timeout_seconds > 0", name=op.f("ck_systems_timeout")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_systems")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'practice')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "sendings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("practice_id", sa.Uuid(), nullable=False),
        sa.Column("encounter_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("system", sa.String(length=100), nullable=False),
        sa.Column("sending_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("cause", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("round_attempts", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=True),
        sa.Column("sending_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "sending_type IN ('Invoice', 'Cancellation')", name=op.f("ck_sendings_sending_type")
        ),
        sa.CheckConstraint(
            "status IN ('Pending', 'Sending', 'Sent', 'Failed', 'Aborted', 'Cancelled')",
            name=op.f("ck_sendings_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_sendings_attempts")),
        sa.CheckConstraint(
            "round_attempts >= 0 AND round_attempts <= attempts",
            name=op.f("ck_sendings_round_attempts"),
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_sendings_document_id_documents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sendings")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_sendings_idempotency_key")),
        sa.UniqueConstraint(
            "invoice_id",
            "system",
            "sending_type",
            name=op.f("uq_sendings_invoice_id_system_sending_type"),
        ),
    )
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sendings_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("status IN ('Pending', 'Failed')"),
            postgresql_where=sa.text("status IN ('Pending', 'Failed')"),
        )
        batch_op.create_index(
            "ix_sendings_due_by_system",
            ["system", "next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("status IN ('Pending', 'Failed')"),
            postgresql_where=sa.text("status IN ('Pending', 'Failed')"),
        )
        batch_op.create_index(
            "ix_sendings_leases",
            ["lease_expires_at"],
            unique=False,
            sqlite_where=sa.text("status = 'Sending'"),
            postgresql_where=sa.text("status = 'Sending'"),
        )
        batch_op.create_index("ix_sendings_practice", ["practice_id", "invoice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sendings_document_id"), ["document_id"], unique=False)
        batch_op.create_index(
            "ix_sendings_sent_at",
            ["sent_at", "id"],
            unique=False,
            sqlite_where=sa.text("sent_at IS NOT NULL"),
            postgresql_where=sa.text("sent_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_sendings_status_time", ["status", "sending_time", "id"], unique=False
        )

    op.create_table(
        "system_practices",
        sa.Column("system", sa.String(length=100), nullable=False),
        sa.Column("practice_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["system"],
            ["systems.name"],
            name=op.f("fk_system_practices_system_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("system", "practice_id", name=op.f("pk_system_practices")),
    )
    with op.batch_alter_table("system_practices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_system_practices_practice_id"), ["practice_id"], unique=False
        )

    op.create_table(
        "user_practices",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("practice_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_practices_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "practice_id", name=op.f("pk_user_practices")),
    )
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sending_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('Sent', 'Retryable', 'Permanent')", name=op.f("ck_attempts_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["sending_id"],
            ["sendings.id"],
            name=op.f("fk_attempts_sending_id_sendings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.UniqueConstraint("sending_id", "number", name=op.f("uq_attempts_sending_id_number")),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attempts_sending_id"), ["sending_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempts_sending_id"))

    op.drop_table("attempts")
    op.drop_table("user_practices")
    with op.batch_alter_table("system_practices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_system_practices_practice_id"))

    op.drop_table("system_practices")
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.drop_index("ix_sendings_status_time")
        batch_op.drop_index(
            "ix_sendings_sent_at",
            sqlite_where=sa.text("sent_at IS NOT NULL"),
            postgresql_where=sa.text("sent_at IS NOT NULL"),
        )
        batch_op.drop_index("ix_sendings_practice")
        batch_op.drop_index(batch_op.f("ix_sendings_document_id"))
        batch_op.drop_index(
            "ix_sendings_leases",
            sqlite_where=sa.text("status = 'Sending'"),
            postgresql_where=sa.text("status = 'Sending'"),
        )
        batch_op.drop_index(
            "ix_sendings_due_by_system",
            sqlite_where=sa.text("status IN ('Pending', 'Failed')"),
            postgresql_where=sa.text("status IN ('Pending', 'Failed')"),
        )
        batch_op.drop_index(
            "ix_sendings_due",
            sqlite_where=sa.text("status IN ('Pending', 'Failed')"),
            postgresql_where=sa.text("status IN ('Pending', 'Failed')"),
        )

    op.drop_table("sendings")
    op.drop_table("users")
    op.drop_table("systems")
    op.drop_table("documents")
