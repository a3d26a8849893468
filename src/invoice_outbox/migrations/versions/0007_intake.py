"""intake: delivered-document hash on attempts, a systems version for intake's cache

- ``attempts.document_digest``: the keyed digest (HMAC-SHA256 under the key that sealed the
  document, as ``documents.digest``) of the document bytes an attempt handed to the receiver,
  so a Sent sending can be checked against what was really delivered.
- ``systems_version``: one row whose ``version`` every change of the systems' names or of
  which practices they serve bumps (triggers on ``systems`` and ``system_practices``, so no
  writer can forget).  Intake caches the systems and checks this number, or, on PostgreSQL,
  listens on the ``invoice_outbox_systems`` channel that the same triggers notify.

Frozen history: this file must not import application code.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_TRIGGERS = """
CREATE FUNCTION systems_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE bumped bigint;
BEGIN
  UPDATE systems_version SET version = version + 1 WHERE id = 1 RETURNING version INTO bumped;
  PERFORM pg_notify('invoice_outbox_systems', bumped::text);
  RETURN NULL;
END $$;
CREATE TRIGGER systems_version_systems AFTER INSERT OR DELETE OR UPDATE OF name ON systems
FOR EACH STATEMENT EXECUTE FUNCTION systems_version_bump();
CREATE TRIGGER systems_version_practices AFTER INSERT OR DELETE OR UPDATE ON system_practices
FOR EACH STATEMENT EXECUTE FUNCTION systems_version_bump();
"""
_PG_DROP = """
DROP TRIGGER IF EXISTS systems_version_practices ON system_practices;
DROP TRIGGER IF EXISTS systems_version_systems ON systems;
DROP FUNCTION IF EXISTS systems_version_bump();
"""
_BUMP = "BEGIN UPDATE systems_version SET version = version + 1 WHERE id = 1; END"
_SQLITE_TRIGGERS = {
    "systems_version_systems_insert": f"AFTER INSERT ON systems {_BUMP}",
    "systems_version_systems_delete": f"AFTER DELETE ON systems {_BUMP}",
    "systems_version_systems_rename": f"AFTER UPDATE OF name ON systems {_BUMP}",
    "systems_version_practices_insert": f"AFTER INSERT ON system_practices {_BUMP}",
    "systems_version_practices_delete": f"AFTER DELETE ON system_practices {_BUMP}",
    "systems_version_practices_update": f"AFTER UPDATE ON system_practices {_BUMP}",
}


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document_digest", sa.String(length=64), nullable=True))
    op.create_table(
        "systems_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_systems_version_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_systems_version")),
    )
    op.execute("INSERT INTO systems_version (id, version) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_TRIGGERS)
    else:
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_DROP)
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("systems_version")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("document_digest")
