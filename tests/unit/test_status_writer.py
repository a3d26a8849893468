"""One status writer: only the package `sendings/transitions/` writes the status of sendings.

Every module under src/ is parsed (AST) and searched for the ways a sending's status gets
written:

- an attribute assignment ``<row>.status = ...`` or ``setattr(<row>, "status", ...)`` (ORM);
  ``self.status`` is a class's own field and is not one;
- a new row with a status: ``Sending(..., status=...)``;
- a Core statement on sendings (``update(Sending)``, ``insert(Sending)``, the dialects'
  inserts, ``Sending.__table__``, ``table("sendings")``) given a status: ``status=`` anywhere
  in its chain, a ``"status"`` key in a dict or list of dicts it is given (also as the
  parameters of ``execute(statement, ...)``), or a dict it is given by name that gets a
  ``"status"`` key in the same function;
- a ``"status"`` key (``{"status": ...}``, ``dict(status=...)``, ``d.update(status=...)``,
  ``d["status"] = ...``) whose value names the sendings' `Status` enum: how updates are fed;
- SQL text: ``UPDATE sendings ... SET ... status =`` or ``INSERT INTO sendings (... status ...)``.

Resend jobs (``admin/models.ResendJob``) have a status column of their own: writes to them are
not writes of sendings (the snippets below prove both sides).  Migrations are frozen history,
written against the schema of their revision, and never import application code: they are
not scanned.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "invoice_outbox"
#: The writer: a package, every module of which may write (and nothing outside it).
WRITER = SRC / "sendings" / "transitions"
MIGRATIONS = SRC / "migrations" / "versions"

_STATEMENT_MAKERS = {"update", "insert", "postgresql_insert", "sqlite_insert"}
_STATUS_MEMBERS = {"PENDING", "SENDING", "SENT", "FAILED", "ABORTED", "CANCELLED", "DISCARDED"}
# The acceptance column (the recipient's verdict) has one writer too: the scan reads a module
# with `acceptance` spelt as `status` (and `Acceptance` as `Status`), so these members count.
_STATUS_MEMBERS |= {"AWAITING", "ACCEPTED", "REJECTED", "OVERDUE"}
_SQL_UPDATE = re.compile(
    r"\bUPDATE\s+sendings\b(?:\s+(?:AS\s+)?\w+)?\s+SET\b"
    r"(?P<set>.*?)(?=\bFROM\b|\bWHERE\b|\bRETURNING\b|;|$)",
    re.IGNORECASE | re.DOTALL,
)
_SQL_INSERT = re.compile(r"\bINSERT\s+INTO\s+sendings\s*\((?P<columns>[^)]*)\)", re.IGNORECASE)
_STATUS_SET = re.compile(r"(?:^|,)\s*(?:\w+\.)?status\s*=", re.IGNORECASE)


@dataclass
class _Names:
    """What the module calls the sendings model and the status enum."""

    sending: set[str] = field(default_factory=lambda: {"Sending"})
    status: set[str] = field(default_factory=lambda: {"Status"})


def _names(tree: ast.Module) -> _Names:
    names = _Names()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "Sending":
                    names.sending.add(alias.asname or alias.name)
                if alias.name == "Status":
                    names.status.add(alias.asname or alias.name)
    for node in tree.body:  # module-level aliases: S = Status
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Name):
            continue
        if node.value.id in names.status:
            names.status.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _is_sending(node: ast.expr, names: _Names) -> bool:
    """`Sending`, `models.Sending`, `Sending.__table__`, `table("sendings", ...)`."""
    if isinstance(node, ast.Name):
        return node.id in names.sending
    if isinstance(node, ast.Attribute):
        if node.attr == "__table__":
            return _is_sending(node.value, names)
        return node.attr == "Sending"
    if isinstance(node, ast.Call) and _callee(node) == "table" and node.args:
        first = node.args[0]
        return isinstance(first, ast.Constant) and first.value == "sendings"
    return False


def _callee(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _chain(call: ast.Call) -> list[ast.Call]:
    """A method chain's calls, outermost first: ``update(X).where(...).values(...)``."""
    calls = [call]
    node: ast.expr = call.func
    while isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call):
        calls.append(node.value)
        node = node.value.func
    return calls


def _on_sendings(call: ast.Call, names: _Names) -> bool:
    """The call chain is a statement on sendings (update / insert of it)."""
    root = _chain(call)[-1]
    if _callee(root) in _STATEMENT_MAKERS and root.args:
        return _is_sending(root.args[0], names)
    if isinstance(root.func, ast.Attribute) and root.func.attr in ("update", "insert"):
        return _is_sending(root.func.value, names)  # Sending.__table__.update()
    return False


def _names_status_enum(node: ast.expr, names: _Names) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
            member = inner.value.id in names.status and inner.attr in _STATUS_MEMBERS
        elif isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name):
            member = inner.func.id in names.status  # Status(...)
        else:
            member = False
        if member:
            return True
    return False


def _status_keys(node: ast.expr) -> Iterator[ast.expr]:
    """Values given a ``"status"`` key in dict literals / ``dict(status=...)`` within `node`."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Dict):
            for key, value in zip(inner.keys, inner.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "status":
                    yield value
        if isinstance(inner, ast.Call) and _callee(inner) == "dict":
            yield from (k.value for k in inner.keywords if k.arg == "status")


def _sql_writes(sql: str) -> bool:
    for found in _SQL_UPDATE.finditer(sql):
        if _STATUS_SET.search(found["set"]):
            return True
    return any(
        re.search(r"\bstatus\b", m["columns"], re.IGNORECASE) for m in _SQL_INSERT.finditer(sql)
    )


def _string(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # f-strings: the placeholders count as a value
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "'?'" for v in node.values)
    return None


class _Scan:
    """One module's status writes (see the module docstring for what counts as one)."""

    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.names = _names(self.tree)
        self.found: set[tuple[int, str]] = set()
        # An f-string is read whole (its placeholders as values), not part by part.
        self.parts = {
            id(v) for n in ast.walk(self.tree) if isinstance(n, ast.JoinedStr) for v in n.values
        }
        #: Names of dicts (or lists of them) given to a write of sendings, in this module.
        self.fed: set[str] = set()

    def note(self, node: ast.AST, what: str) -> None:
        self.found.add((getattr(node, "lineno", 0), what))

    def run(self) -> list[str]:
        calls = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]
        for call in calls:
            self._statement(call)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                self._assignment(node)
            elif isinstance(node, ast.Constant | ast.JoinedStr) and id(node) not in self.parts:
                text = _string(node)
                if text is not None and _sql_writes(text):
                    self.note(node, "SQL text writes sendings.status")
            elif isinstance(node, ast.Call):
                self._call(node)
            elif isinstance(node, ast.Dict):
                self._dict(node)
        return [f"{line}: {what}" for line, what in sorted(self.found)]

    def _statement(self, call: ast.Call) -> None:
        """Core writes of sendings, and the names of the dicts they are given."""
        if _on_sendings(call, self.names):
            for link in _chain(call):
                self.fed.update(a.id for a in link.args if isinstance(a, ast.Name))
                if any(k.arg == "status" for k in link.keywords):
                    self.note(link, "status= in a write of sendings")
                for arg in link.args:
                    if any(True for _ in _status_keys(arg)):
                        self.note(link, "a status key in a write of sendings")
        if _callee(call) == "execute" and len(call.args) > 1:
            statement, params = call.args[0], call.args[1]
            if isinstance(statement, ast.Call) and _on_sendings(statement, self.names):
                if isinstance(params, ast.Name):
                    self.fed.add(params.id)
                if any(True for _ in _status_keys(params)):
                    self.note(call, "a status in the parameters of a write of sendings")

    def _is_fed(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id in self.fed

    def _assignment(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        value = node.value
        has_status = value is not None and any(True for _ in _status_keys(value))
        enum = value is not None and _names_status_enum(value, self.names)
        for target in targets:
            if has_status and self._is_fed(target):
                self.note(node, "a dict with a status, given to a write of sendings")
            for inner in ast.walk(target):
                if not isinstance(getattr(inner, "ctx", None), ast.Store):
                    continue
                if isinstance(inner, ast.Attribute) and inner.attr == "status":
                    owner = inner.value
                    if not (isinstance(owner, ast.Name) and owner.id == "self"):
                        self.note(node, "assigns .status")
                if not isinstance(inner, ast.Subscript):
                    continue
                key = inner.slice
                status_key = isinstance(key, ast.Constant) and key.value == "status"
                if status_key and (enum or self._is_fed(inner.value)):
                    self.note(node, 'sets ["status"] of a dict fed to an update')

    def _call(self, call: ast.Call) -> None:
        callee = _callee(call)
        status = next((k.value for k in call.keywords if k.arg == "status"), None)
        if callee == "setattr" and len(call.args) >= 2:
            name = call.args[1]
            if isinstance(name, ast.Constant) and name.value == "status":
                self.note(call, 'setattr(..., "status", ...)')
        if status is None:
            return
        if callee in self.names.sending:
            self.note(call, "Sending(status=...)")
        enum = _names_status_enum(status, self.names)
        if callee == "dict" and enum:
            self.note(call, "dict(status=<a sendings status>)")
        holder = call.func.value if isinstance(call.func, ast.Attribute) else None
        if callee == "update" and holder is not None and (enum or self._is_fed(holder)):
            self.note(call, "d.update(status=...) of a dict fed to an update")

    def _dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            is_status = isinstance(key, ast.Constant) and key.value == "status"
            if is_status and _names_status_enum(value, self.names):
                self.note(node, '{"status": <a sendings status>}')


def status_writes(source: str) -> list[str]:
    """Where `source` writes a sending's status: ``line: what`` for each place found."""
    return _Scan(source).run()


def _writer_modules() -> list[Path]:
    return sorted(WRITER.rglob("*.py"))


def _modules() -> list[Path]:
    return sorted(
        path
        for path in SRC.rglob("*.py")
        if WRITER not in path.parents and MIGRATIONS not in path.parents
    )


def _writer_writes(scan: Callable[[str], list[str]]) -> list[str]:
    """`scan` of each module of the writer, as ``module:line: what``."""
    return [
        f"{path.relative_to(WRITER)}:{where}"
        for path in _writer_modules()
        for where in scan(path.read_text())
    ]


def test_the_writer_is_the_package() -> None:
    """The exemption is the package's directory, and the package is there with its modules
    (a path that named nothing would exempt nothing and scan nothing of the writer)."""
    assert (WRITER / "__init__.py").is_file()
    assert len(_writer_modules()) > 1


def test_no_module_but_transitions_writes_the_status_of_sendings() -> None:
    offenders = {
        str(path.relative_to(SRC)): writes
        for path in _modules()
        if (writes := status_writes(path.read_text()))
    }
    assert offenders == {}, "status writes outside sendings/transitions/: " + str(offenders)


def acceptance_writes(source: str) -> list[str]:
    """Where `source` writes a sending's acceptance (the same scan, the column renamed)."""
    swapped = re.sub(r"\bacceptance\b", "status", source)
    return status_writes(re.sub(r"\bAcceptance\b", "Status", swapped))


def test_no_module_but_transitions_writes_the_acceptance_of_sendings() -> None:
    offenders = {
        str(path.relative_to(SRC)): writes
        for path in _modules()
        if (writes := acceptance_writes(path.read_text()))
    }
    assert offenders == {}, "acceptance writes outside sendings/transitions/: " + str(offenders)


@pytest.mark.parametrize(
    "snippet",
    [
        "sending.acceptance = Acceptance.ACCEPTED.value",
        "update(Sending).values(acceptance='Overdue')",
        "SQL = text(\"UPDATE sendings SET acceptance = 'Rejected' WHERE id = :id\")",
    ],
)
def test_the_scan_catches_an_acceptance_write(snippet: str) -> None:
    assert acceptance_writes(snippet)


def test_transitions_writes_acceptance() -> None:
    assert _writer_writes(acceptance_writes)


def test_the_scan_sees_every_kind_of_write_transitions_makes() -> None:
    """The scan is not blind: in the writer itself it finds the ORM, Core and SQL writes."""
    found = "\n".join(_writer_writes(status_writes))
    for what in (
        "assigns .status",
        "Sending(status=...)",
        "status= in a write of sendings",
        "SQL text writes sendings.status",
    ):
        assert what in found, found
    # claim, mark sent, intake's new sendings (PostgreSQL)
    assert found.count("SQL text writes sendings.status") == 3


CAUGHT = {
    "orm assignment": """
        sending.status = Status.CANCELLED.value
    """,
    "orm assignment of a plain string": """
        row.status = "Cancelled"
    """,
    "tuple assignment": """
        sending.status, sending.reason = "Aborted", None
    """,
    "setattr": """
        setattr(sending, "status", "Sent")
    """,
    "new row": """
        session.add(Sending(id=uuid.uuid4(), status=Status.PENDING.value))
    """,
    "aliased model": """
        from invoice_outbox.sendings.models import Sending as Row
        Row(status="Pending")
    """,
    "core update keyword": """
        await session.execute(
            update(Sending).where(Sending.id == i).values(status=Status.SENT.value)
        )
    """,
    "core update of the table": """
        await connection.execute(Sending.__table__.update().values(status="Sent"))
    """,
    "core update with a dict": """
        update(Sending).values({"status": "Failed", "reason": why})
    """,
    "dict fed by name": """
        async def record(connection):
            values = {"lease_owner": None}
            values.update(status=outcome_status)
            await connection.execute(update(Sending).where(Sending.id == i).values(values))
    """,
    "dict subscript fed by name": """
        async def record(connection):
            values = {}
            values["status"] = computed
            await connection.execute(update(Sending).values(values))
    """,
    "helper returning a status dict": """
        def _failure() -> dict[str, object]:
            return {"status": Status.FAILED.value, "next_attempt_at": None}
    """,
    "status enum via alias": """
        S = Status
        values = dict(status=S.ABORTED.value)
    """,
    "executemany parameters": """
        await connection.execute(insert(Sending), [{"id": i, "status": "Pending"}])
    """,
    "dialect insert": """
        stmt = postgresql_insert(Sending).values(status="Pending").on_conflict_do_nothing()
    """,
    "lightweight table": """
        op.execute(sa.update(sa.table("sendings", sa.column("status"))).values(status="Sent"))
    """,
    "sql update": """
        SQL = text("UPDATE sendings SET status = 'Sent', sent_at = :now WHERE id = :id")
    """,
    "sql update with alias, f-string": """
        SQL = text(f'''
            UPDATE sendings AS s
            SET lease_owner = NULL, status = '{Status.SENT.value}'
            FROM delivered WHERE s.id = delivered.id
        ''')
    """,
    "sql insert": """
        conn.exec_driver_sql("INSERT INTO sendings (id, status, reason) VALUES (?, ?, ?)")
    """,
}

LEFT_ALONE = {
    "a class's own field": """
        class PageError(Exception):
            def __init__(self, status: int) -> None:
                self.status = status
    """,
    "reads": """
        select(Sending).where(Sending.status == Status.ABORTED.value, Sending.status.in_(x))
        status = Status(sending.status)
        view = {"Status": sending.status}
    """,
    "resend job rows": """
        session.add(ResendJob(id=i, status="Running"))
        await session.execute(update(ResendJob).values(status="Done"))
        await session.execute(update(ResendJob).values({"status": "Failed", "error": e}))
    """,
    "resend job progress by name": """
        async def finish(session, status):
            await _save_progress(session, job, owner, {"status": status, "skipped": 0})
    """,
    "log extras and other keywords": """
        log.info("recorded", extra={"action": "delivery", "status": recorded.status})
        practice_explanation(status=item["Status"], cause=None)
        SendingView(status=sending.status)
        _finish(session, job, status="Failed")
    """,
    "sql that only reads status or writes another table": """
        A = text("SELECT id FROM sendings WHERE status IN ('Pending', 'Failed')")
        B = text("UPDATE sendings SET lease_owner = NULL WHERE status = 'Sending'")
        C = text("UPDATE resend_jobs SET status = 'Done' WHERE id = :id")
        D = text("UPDATE sendings AS s SET updated_at = :now WHERE s.status = 'Sent'")
    """,
    "updates of sendings that leave status alone": """
        await connection.execute(
            update(Sending).where(Sending.id == i, Sending.status == "Sending")
            .values(lease_owner=None, lease_expires_at=None, updated_at=now)
        )
    """,
}


@pytest.mark.parametrize("snippet", CAUGHT.values(), ids=list(CAUGHT))
def test_the_scan_catches_a_write(snippet: str) -> None:
    assert status_writes(textwrap.dedent(snippet)), snippet


@pytest.mark.parametrize("snippet", LEFT_ALONE.values(), ids=list(LEFT_ALONE))
def test_the_scan_leaves_other_code_alone(snippet: str) -> None:
    assert status_writes(textwrap.dedent(snippet)) == []


def test_a_violation_in_a_real_module_is_reported_with_its_line() -> None:
    source = (SRC / "sendings" / "cancellation.py").read_text()
    assert status_writes(source) == []
    broken = source + "\n\ndef _sneak(sending: Sending) -> None:\n    sending.status = 'Sent'\n"
    [where] = status_writes(broken)
    assert where == f"{len(broken.splitlines())}: assigns .status"
