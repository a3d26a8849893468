"""acceptance beyond transport: verdicts, acknowledgements, rejection catalogue, signing, mTLS

Sendings get the recipient's verdict beside the transport status (acceptance, its code,
reference, time and deadline), a revision (a correction after acceptance is a Cancellation
then a new Invoice at the same system) and the sending a waiting one follows.  Attempts keep
the verdict code and the recipient's own words.  Systems get their acceptance mode, signing
and acknowledgement secrets (with a previous one for rotation) and a client certificate.
New tables: acknowledgements, webhook_receipts (replay protection), rejection_overrides.

Frozen history: this file must not import application code.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACCEPTANCE = "acceptance IS NULL OR acceptance IN ('Awaiting', 'Accepted', 'Rejected', 'Overdue')"
_OUTCOMES = "outcome IN ('Sent', 'Retryable', 'Permanent')"
_WITH_REJECTED = "outcome IN ('Sent', 'Retryable', 'Permanent', 'Rejected')"
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _partial(where: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}


def upgrade() -> None:
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acceptance", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("acceptance_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("acceptance_reference", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("acceptance_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("acceptance_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("follows_id", sa.Uuid(), nullable=True))
        batch_op.create_check_constraint(op.f("ck_sendings_acceptance"), _ACCEPTANCE)
        batch_op.drop_constraint(op.f("uq_sendings_invoice_id_system_sending_type"), type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_sendings_invoice_id_system_sending_type_revision"),
            ["invoice_id", "system", "sending_type", "revision"],
        )
        batch_op.create_index(
            "ix_sendings_acceptance", ["acceptance"], **_partial("acceptance IS NOT NULL")
        )
        batch_op.create_index(
            "ix_sendings_awaiting", ["acceptance_due_at"], **_partial("acceptance = 'Awaiting'")
        )
        batch_op.create_index(
            "ix_sendings_reference",
            ["system", "acceptance_reference"],
            **_partial("acceptance_reference IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_sendings_follows", ["follows_id"], **_partial("follows_id IS NOT NULL")
        )

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("recipient_message", sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f("ck_attempts_outcome"), type_="check")
        batch_op.create_check_constraint(op.f("ck_attempts_outcome"), _WITH_REJECTED)

    with op.batch_alter_table("systems", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("acceptance_settings", _JSON, nullable=False, server_default=sa.text("'{}'"))
        )
        for name in (
            "signing_secret",
            "signing_secret_previous",
            "acceptance_secret",
            "acceptance_secret_previous",
            "client_certificate",
            "client_key",
        ):
            batch_op.add_column(sa.Column(name, sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("signing_secret_previous_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("acceptance_secret_previous_until", sa.DateTime(timezone=True), nullable=True)
        )

    op.create_table(
        "acknowledgements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sending_id", sa.Uuid(), nullable=False),
        sa.Column("system", sa.String(length=100), nullable=False),
        sa.Column("webhook_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["sending_id"],
            ["sendings.id"],
            name=op.f("fk_acknowledgements_sending_id_sendings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acknowledgements")),
    )
    with op.batch_alter_table("acknowledgements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_acknowledgements_sending_id"), ["sending_id"], unique=False
        )

    op.create_table(
        "webhook_receipts",
        sa.Column("system", sa.String(length=100), nullable=False),
        sa.Column("webhook_id", sa.String(length=200), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system", "webhook_id", name=op.f("pk_webhook_receipts")),
    )
    with op.batch_alter_table("webhook_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_receipts_seen_at"), ["seen_at"], unique=False)

    op.create_table(
        "rejection_overrides",
        sa.Column("system", sa.String(length=100), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("meaning", sa.Text(), nullable=False),
        sa.Column("fix", sa.Text(), nullable=False),
        sa.Column("who", sa.String(length=32), nullable=False),
        sa.Column("resend_helps", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["system"],
            ["systems.name"],
            name=op.f("fk_rejection_overrides_system_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("system", "code", name=op.f("pk_rejection_overrides")),
    )


def downgrade() -> None:
    op.drop_table("rejection_overrides")
    with op.batch_alter_table("webhook_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_receipts_seen_at"))
    op.drop_table("webhook_receipts")
    with op.batch_alter_table("acknowledgements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_acknowledgements_sending_id"))
    op.drop_table("acknowledgements")

    with op.batch_alter_table("systems", schema=None) as batch_op:
        for name in (
            "acceptance_secret_previous_until",
            "signing_secret_previous_until",
            "client_key",
            "client_certificate",
            "acceptance_secret_previous",
            "acceptance_secret",
            "signing_secret_previous",
            "signing_secret",
            "acceptance_settings",
        ):
            batch_op.drop_column(name)

    op.execute("DELETE FROM attempts WHERE outcome = 'Rejected'")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_attempts_outcome"), type_="check")
        batch_op.create_check_constraint(op.f("ck_attempts_outcome"), _OUTCOMES)
        batch_op.drop_column("recipient_message")
        batch_op.drop_column("recipient_code")

    # Later revisions of a claim cannot live under the old one-per-type key.
    op.execute("DELETE FROM sendings WHERE revision > 0")
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.drop_index("ix_sendings_follows")
        batch_op.drop_index("ix_sendings_reference")
        batch_op.drop_index("ix_sendings_awaiting")
        batch_op.drop_index("ix_sendings_acceptance")
        batch_op.drop_constraint(
            op.f("uq_sendings_invoice_id_system_sending_type_revision"), type_="unique"
        )
        batch_op.create_unique_constraint(
            op.f("uq_sendings_invoice_id_system_sending_type"),
            ["invoice_id", "system", "sending_type"],
        )
        batch_op.drop_constraint(op.f("ck_sendings_acceptance"), type_="check")
        for name in (
            "follows_id",
            "revision",
            "acceptance_due_at",
            "acceptance_at",
            "acceptance_reference",
            "acceptance_code",
            "acceptance",
        ):
            batch_op.drop_column(name)
