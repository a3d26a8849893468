"""The command's errors, as a user meets them: one line on stderr, exit 1 or 2, no traceback,
and nothing created where the command was run (cli/common.py lists the exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.databases import POSTGRES_ADMIN_URL, require_postgres

BIN = Path(sys.executable).parent / "invoice-outbox"


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_OUTBOX_")}
    return subprocess.run(
        [str(BIN), *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert "Traceback" not in result.stderr
    assert result.returncode == code, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert result.stdout == ""
    return line


@pytest.mark.parametrize(
    "command", [("migrate",), ("system", "list"), ("token", "--role", "admin")]
)
def test_invalid_settings_are_named_in_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    env = {"INVOICE_OUTBOX_TIMEZONE": "Nowhere/Atlantis", "INVOICE_OUTBOX_WORKER_CONCURRENCY": "0"}
    line = _one_line_error(_cli(*command, cwd=tmp_path, env=env), 2)
    assert line.startswith("error: invalid configuration: INVOICE_OUTBOX_TIMEZONE: ")
    assert "; INVOICE_OUTBOX_WORKER_CONCURRENCY: " in line


@pytest.mark.parametrize(
    ("command", "stdin"),
    [
        (("system", "list"), ""),
        (("user", "add", "bob", "--role", "admin", "--password-stdin"), "long enough pw\n"),
        (("demo",), ""),
        (("worker",), ""),
        (("serve", "--port", "1"), ""),
        (("keys", "status"), ""),
        (("keys", "rotate"), ""),
    ],
)
def test_no_database_in_the_current_directory_is_said_and_none_is_made(
    tmp_path: Path, command: tuple[str, ...], stdin: str
) -> None:
    """Run from the wrong directory, the default ./var/invoice-outbox.db is not there."""
    line = _one_line_error(_cli(*command, cwd=tmp_path, stdin=stdin), 1)
    assert f"no database at {tmp_path}/var/invoice-outbox.db" in line
    assert "relative to the current directory" in line
    assert "invoice-outbox migrate" in line
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_file_in_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "outbox.db"
    env = {"INVOICE_OUTBOX_DATABASE_URL": f"sqlite:///{path}"}
    line = _one_line_error(_cli("system", "list", cwd=tmp_path, env=env), 1)
    assert f"no database at {path}:" in line
    assert not path.parent.exists()


def test_a_database_without_the_schema_asks_for_migrate(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    env = {"INVOICE_OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    line = _one_line_error(_cli("system", "list", cwd=tmp_path, env=env), 1)
    assert "has no schema yet: run `invoice-outbox migrate` first" in line


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("migrate",), ("system", "list"), ("worker",)])
def test_a_missing_postgres_database_is_named(tmp_path: Path, command: tuple[str, ...]) -> None:
    require_postgres()
    server = psycopg.conninfo.conninfo_to_dict(POSTGRES_ADMIN_URL)
    name = f"io_test_missing_{uuid.uuid4().hex[:10]}"
    url = (
        f"postgresql+psycopg://{server.get('user', 'postgres')}:not-shown@"
        f"{server.get('host', '127.0.0.1')}:{server.get('port', 5432)}/{name}"
    )
    line = _one_line_error(
        _cli(*command, cwd=tmp_path, env={"INVOICE_OUTBOX_DATABASE_URL": url}), 1
    )
    assert f'database "{name}" does not exist' in line
    assert "not-shown" not in line
    assert list(tmp_path.iterdir()) == []


def test_a_token_needs_the_services_state_directory(tmp_path: Path) -> None:
    """A signing key made up in a new ./var would sign tokens the service refuses."""
    line = _one_line_error(_cli("token", "--role", "admin", cwd=tmp_path), 1)
    assert f"no state directory at {tmp_path}/var" in line
    assert list(tmp_path.iterdir()) == []
    with_secret = _cli(
        "token", "--role", "admin", cwd=tmp_path, env={"INVOICE_OUTBOX_JWT_SECRET": "k" * 40}
    )
    assert with_secret.returncode == 0, with_secret.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("document", "problem"),
    [("{not json", "unexpected character"), ('{"Channel": "Fax"}', "Channel")],
)
def test_invalid_input_is_exit_2_in_one_line(tmp_path: Path, document: str, problem: str) -> None:
    line = _one_line_error(_cli("system", "put", "X", "--json", document, cwd=tmp_path), 2)
    assert line.startswith("error: system 'X' not saved: ")
    assert problem in line


@pytest.mark.parametrize("command", [("worker",), ("keys", "status"), ("keys", "new")])
def test_the_document_key_file_needs_the_services_state_directory(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A document key made up in a new ./var would seal what the service cannot read."""
    database = tmp_path / "outbox.db"
    env = {"INVOICE_OUTBOX_DATABASE_URL": f"sqlite:///{database}"}
    migrated = _cli("migrate", cwd=tmp_path, env=env)
    assert migrated.returncode == 0, migrated.stderr
    line = _one_line_error(_cli(*command, cwd=tmp_path, env=env), 1)
    assert f"no state directory at {tmp_path}/var" in line
    assert "document key file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox.db"]
