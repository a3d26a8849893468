"""discarded is a status of its own

Until now a discarded sending stayed ``Aborted`` and its reason was rewritten to
``Discarded by <who>: <why>``.  Now ``Discarded`` is a status, and who, when and why are
columns.  Existing discarded rows move: who and why from their audit entry
(``sendings.discard``) where there is one, else from the reason; when from the audit entry,
else the row's last change; the failure reason the discard replaced comes back from the audit
entry's ``PreviousReason``.  Downgrade writes the old reason form back.

Frozen history: this file must not import application code (it runs against the schema as it
was at this revision).

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("Pending", "Sending", "Sent", "Failed", "Aborted", "Cancelled")
_WITH_DISCARDED = (*_STATUSES, "Discarded")
_PREFIX = "Discarded by "
_CHUNK = 500

_sendings = sa.table(
    "sendings",
    sa.column("id", sa.Uuid()),
    sa.column("status", sa.String(16)),
    sa.column("reason", sa.Text()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("discarded_at", sa.DateTime(timezone=True)),
    sa.column("discarded_by", sa.String(200)),
    sa.column("discard_reason", sa.Text()),
)
_audit = sa.table(
    "audit_entries",
    sa.column("id", sa.Integer()),
    sa.column("time", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String(200)),
    sa.column("action", sa.String(64)),
    sa.column("reason", sa.Text()),
    sa.column("target", sa.String(200)),
    sa.column("details", sa.JSON()),
)


def _check(statuses: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def _set_statuses(statuses: Sequence[str]) -> None:
    # SQLite: batch mode copies the table with the new constraint (see _foreign_keys_off).
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_sendings_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_sendings_status"), _check(statuses))


def _discard_entries(ids: list[Any]) -> dict[str, Any]:
    """The latest ``sendings.discard`` audit entry of each of the sendings `ids`, by target."""
    latest: dict[str, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        targets = [str(i) for i in ids[start : start + _CHUNK]]
        entries = op.get_bind().execute(
            sa.select(
                _audit.c.time, _audit.c.actor, _audit.c.reason, _audit.c.target, _audit.c.details
            )
            .where(_audit.c.action == "sendings.discard", _audit.c.target.in_(targets))
            .order_by(_audit.c.time, _audit.c.id)
        )
        for entry in entries:
            latest[entry.target] = entry
    return latest


def _upgrade_rows() -> None:
    bind = op.get_bind()
    rows = [
        row
        for row in bind.execute(
            sa.select(_sendings.c.id, _sendings.c.reason, _sendings.c.updated_at).where(
                _sendings.c.status == "Aborted", _sendings.c.reason.like(f"{_PREFIX}%")
            )
        )
        if row.reason.startswith(_PREFIX)
    ]
    entries = _discard_entries([row.id for row in rows])
    for row in rows:
        entry = entries.get(str(row.id))
        by, _, why = row.reason[len(_PREFIX) :].partition(": ")
        values: dict[str, Any] = {
            "status": "Discarded",
            "discarded_by": by[:200],
            "discard_reason": why,
            "discarded_at": row.updated_at,
        }
        if entry is not None:
            values.update(
                discarded_by=entry.actor, discard_reason=entry.reason, discarded_at=entry.time
            )
            details = entry.details if isinstance(entry.details, dict) else {}
            if "PreviousReason" in details:
                values["reason"] = details["PreviousReason"]
        bind.execute(
            sa.update(_sendings)
            .where(_sendings.c.id == row.id, _sendings.c.status == "Aborted")
            .values(**values)
        )


def _downgrade_rows() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_sendings.c.id, _sendings.c.discarded_by, _sendings.c.discard_reason).where(
            _sendings.c.status == "Discarded"
        )
    ).all()
    for row in rows:
        bind.execute(
            sa.update(_sendings)
            .where(_sendings.c.id == row.id)
            .values(
                status="Aborted",
                reason=f"{_PREFIX}{row.discarded_by or 'unknown'}: {row.discard_reason or ''}",
            )
        )


def upgrade() -> None:
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("discarded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("discarded_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("discard_reason", sa.Text(), nullable=True))
    _set_statuses(_WITH_DISCARDED)
    _upgrade_rows()


def downgrade() -> None:
    _downgrade_rows()
    _set_statuses(_STATUSES)
    with op.batch_alter_table("sendings", schema=None) as batch_op:
        batch_op.drop_column("discard_reason")
        batch_op.drop_column("discarded_by")
        batch_op.drop_column("discarded_at")
