"""practices by name, invoice numbers, audit links per sending, discard jobs

- ``practices`` (id, name, updated_at): practices named by an admin.
- ``sendings.invoice_number``: the practice's own reference (optional), indexed where set.
- ``audit_links`` (entry_id, sending_id): which sendings each audit entry affected, so an
  invoice's timeline reads its admin actions by sending.  Filled from the entries' stored
  ``affected`` ids.
- ``resend_jobs.action``: ``resend`` (every job so far) or ``discard``.

Frozen history: this file must not import application code.

Revision ID: 0009
Revises: 0008
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 500

_audit = sa.table(
    "audit_entries",
    sa.column("id", sa.Integer()),
    sa.column("affected", sa.JSON()),
)
_links = sa.table(
    "audit_links",
    sa.column("entry_id", sa.Integer()),
    sa.column("sending_id", sa.Uuid()),
)


def _ids(values: object) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    for value in values if isinstance(values, list) else []:
        try:
            found.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return list(dict.fromkeys(found))


def _fill_links() -> None:
    bind = op.get_bind()
    after = 0
    while True:
        entries = bind.execute(
            sa.select(_audit.c.id, _audit.c.affected)
            .where(_audit.c.id > after)
            .order_by(_audit.c.id)
            .limit(_CHUNK)
        ).all()
        if not entries:
            return
        rows = [
            {"entry_id": entry.id, "sending_id": sending_id}
            for entry in entries
            for sending_id in _ids(entry.affected)
        ]
        if rows:
            bind.execute(sa.insert(_links), rows)
        after = entries[-1].id


def upgrade() -> None:
    op.create_table(
        "practices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practices")),
    )
    op.create_table(
        "audit_links",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("sending_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["audit_entries.id"],
            name=op.f("fk_audit_links_entry_id_audit_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", "sending_id", name=op.f("pk_audit_links")),
    )
    with op.batch_alter_table("audit_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_links_sending_id"), ["sending_id"], unique=False)
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invoice_number", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_sendings_invoice_number",
            ["invoice_number"],
            unique=False,
            sqlite_where=sa.text("invoice_number IS NOT NULL"),
            postgresql_where=sa.text("invoice_number IS NOT NULL"),
        )
    with op.batch_alter_table("resend_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("action", sa.String(length=16), server_default="resend", nullable=False)
        )
        batch_op.create_check_constraint(
            op.f("ck_resend_jobs_action"), "action IN ('resend', 'discard')"
        )
    _fill_links()


def downgrade() -> None:
    # Discard jobs cannot be told from resend jobs without the column: forget them.
    op.execute("DELETE FROM resend_jobs WHERE action = 'discard'")
    with op.batch_alter_table("resend_jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_resend_jobs_action"), type_="check")
        batch_op.drop_column("action")
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.drop_index("ix_sendings_invoice_number")
        batch_op.drop_column("invoice_number")
    with op.batch_alter_table("audit_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_links_sending_id"))
    op.drop_table("audit_links")
    op.drop_table("practices")
