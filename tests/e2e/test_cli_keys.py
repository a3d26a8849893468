"""``invoice-outbox keys`` as an operator runs it, with the generated key file (both engines):
status, new, rotate (progress, resumable), drop; and start-up refused without the right key."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest

from tests.e2e.test_cli_and_server import _cli

SETTING = "INVOICE_OUTBOX_DOCUMENT_KEYS"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_OUTBOX_")}
    values.update(
        {
            "INVOICE_OUTBOX_DATABASE_URL": database_url,
            "INVOICE_OUTBOX_VAR_DIR": str(tmp_path / "var"),
        }
    )
    return values


def _status(env: dict[str, str]) -> dict[str, tuple[int, str]]:
    result = _cli(env, "keys", "status")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^(\S+)\s+([\d,]+)  (.+)$", result.stdout, flags=re.MULTILINE)
    return {kid: (int(n.replace(",", "")), state) for kid, n, state in rows}


def test_new_key_rotate_and_drop_with_the_key_file(env: dict[str, str], tmp_path: Path) -> None:
    assert _cli(env, "migrate").returncode == 0
    demo = _cli(env, "demo", "--sandbox-url", "http://127.0.0.1:9/sandbox")
    assert demo.returncode == 0, demo.stderr
    key_file = tmp_path / "var" / "document-keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [(first, (documents, state))] = _status(env).items()
    assert documents > 20
    assert state == "encrypts new documents"

    added = _cli(env, "keys", "new", "--kid", "k2")
    assert added.returncode == 0, added.stderr
    assert _status(env) == {
        "k2": (0, "encrypts new documents"),
        first: (documents, "decrypts only"),
    }

    rotated = _cli(env, "keys", "rotate", "--batch-size", "7")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypting under 'k2'" in rotated.stdout
    assert f"{documents} documents re-encrypted under 'k2'" in rotated.stdout
    assert _status(env) == {
        "k2": (documents, "encrypts new documents"),
        first: (0, "decrypts only; unused, can be dropped"),
    }
    again = _cli(env, "keys", "rotate")
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "every document is sealed under 'k2'; nothing to do",
    )
    refused = _cli(env, "keys", "drop", "k2")
    assert refused.returncode == 1
    assert "still sealed under 'k2'" in refused.stderr
    assert _cli(env, "keys", "drop", first).returncode == 0
    assert list(_status(env)) == ["k2"]
    assert first not in key_file.read_text()


def test_start_up_without_the_right_key_is_refused_naming_the_setting(
    env: dict[str, str],
) -> None:
    assert _cli(env, "migrate").returncode == 0
    assert _cli(env, "demo", "--sandbox-url", "http://127.0.0.1:9/sandbox").returncode == 0
    [kid] = _status(env)
    wrong = {**env, SETTING: f"{kid}:" + base64.b64encode(b"\x05" * 32).decode()}
    missing = {**env, SETTING: "other:" + base64.b64encode(b"\x05" * 32).decode()}
    cases = [
        (wrong, "check values differ", ("worker",)),
        (missing, f"'{kid}'", ("serve", "--port", "1")),
    ]
    for variant, words, command in cases:
        result = _cli(variant, *command)
        assert result.returncode == 2, (command, result.stderr)
        assert SETTING in result.stderr
        assert words in result.stderr
        assert base64.b64encode(b"\x05" * 32).decode() not in result.stderr
    status = _cli(missing, "keys", "status")
    assert f"MISSING from {SETTING}" in status.stdout
    bad = _cli({**env, SETTING: "x:short"}, "worker")
    assert bad.returncode == 2
    assert SETTING in bad.stderr
