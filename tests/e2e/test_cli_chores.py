"""The command line's chores (issue 13): users, practices' names, finding and resending
sendings; one-line errors from another directory, and nothing created there."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli_errors import _cli, _one_line_error


def test_the_chores_work_and_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "service", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    assert _cli("migrate", cwd=home).returncode == 0
    demo = _cli("demo", "--sandbox-url", "http://127.0.0.1:9/sandbox", cwd=home)
    assert demo.returncode == 0, demo.stderr
    users = _cli("user", "list", cwd=home)
    assert users.returncode == 0
    admin = users.stdout.split("\t", 1)[0]
    practices = _cli("practice", "list", cwd=home).stdout.splitlines()
    assert any(line.endswith("\tRosebank Family Practice") for line in practices)
    practice = practices[-1].split("\t")[0]
    named = _cli("practice", "name", practice, "Harbour Clinic", cwd=home)
    assert named.returncode == 0, named.stderr
    listed = _cli("sendings", "list", "--status", "Aborted", "--limit", "500", cwd=home)
    assert listed.returncode == 0
    assert "Aborted" in listed.stdout
    assert listed.stderr.strip().endswith("shown")
    dry = _cli("sendings", "resend", "--reason", "check", "--dry-run", cwd=home)
    assert dry.stdout.startswith("dry run: ")
    changed = _cli("user", "password", admin, "--password-stdin", cwd=home, stdin="a new pw 123\n")
    assert changed.returncode == 0, changed.stderr
    assert _cli("user", "unlock", admin, cwd=home).returncode == 0
    _one_line_error(_cli("user", "unlock", "nobody", cwd=home), 1)
    _one_line_error(_cli("sendings", "list", "--status", "Bogus", cwd=home), 2)
    _one_line_error(_cli("practice", "name", practice, "Rosebank Family Practice", cwd=home), 1)
    for command in (("sendings", "list"), ("user", "list"), ("practice", "list")):
        line = _one_line_error(_cli(*command, cwd=elsewhere), 1)
        assert "no database at" in line
    assert list(elsewhere.iterdir()) == []
