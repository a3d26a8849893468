"""Document keys and sealing: the key format, the key file, AES-GCM binding, keyed digests."""

from __future__ import annotations

import base64
import hashlib
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from invoice_outbox.sendings.keyring import (
    KEYS_SETTING,
    DocumentKeyMissing,
    keyring_from_entries,
    load_keyring,
    new_entry,
    parse_entries,
    prepend_to_key_file,
    remove_from_key_file,
)
from invoice_outbox.sendings.sealing import DocumentUnreadable, digest, seal, unseal
from invoice_outbox.settings import Settings, SettingsError, load_settings

KEY = base64.b64encode(b"\x01" * 32).decode()
OTHER = base64.b64encode(b"\x02" * 32).decode()
IDS: dict[str, Any] = {
    "document_id": uuid.uuid4(),
    "practice_id": uuid.uuid4(),
    "invoice_id": uuid.uuid4(),
    "content_type": "application/json",
}


def test_entries_parse_in_order_and_any_base64_alphabet() -> None:
    url_safe = base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("=")
    entries = parse_entries(f" a:{KEY} , b_2:{url_safe}")
    assert entries == [("a", b"\x01" * 32), ("b_2", b"\xfb" * 32)]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "no key given"),
        (KEY, "entry 1 is not kid:base64key"),
        (f"a b:{KEY}", "entry 1: the key id"),
        ("a:" + base64.b64encode(b"short").decode(), "is 5 bytes"),
        ("a:not base64!!", "is not base64"),
        (f"a:{KEY},a:{OTHER}", "appears twice"),
    ],
)
def test_bad_keys_stop_start_up_naming_the_setting_never_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv(KEYS_SETTING, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert KEYS_SETTING in message
    assert problem in message
    assert KEY not in message
    assert OTHER not in message


def test_settings_never_show_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_SETTING, f"a:{KEY}")
    settings = load_settings()
    keyring = load_keyring(settings)
    assert KEY not in repr(settings)
    assert KEY not in repr(keyring)
    assert keyring.current.kid == "a"
    assert keyring.source == KEYS_SETTING


def test_the_key_file_is_made_once_for_its_owner_only(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", database_url="sqlite:///x.db")
    first = load_keyring(settings)
    path = tmp_path / "var" / "document-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KEYS_SETTING in first.source
    assert str(path) in first.source
    assert load_keyring(settings).current.check == first.current.check

    entry = new_entry("k2")
    prepend_to_key_file(path, entry)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    both = load_keyring(settings)
    assert [k.kid for k in both.keys] == ["k2", first.current.kid]
    # A running process finds a key added to the file when it meets a document sealed with it.
    assert first.get("k2") is not None
    assert first.current.kid == "k2"
    remove_from_key_file(path, first.keys[1].kid)
    assert [k.kid for k in load_keyring(settings).keys] == ["k2"]


def test_sealing_binds_the_row_and_refuses_any_change() -> None:
    keyring = keyring_from_entries(parse_entries(f"a:{KEY},b:{OTHER}"), source=KEYS_SETTING)
    plain = b'{"Patient": "Jane"}'
    sealed = seal(keyring.current, plain=plain, **IDS)
    fields: dict[str, Any] = {
        "key_id": sealed.key_id,
        "nonce": sealed.nonce,
        "body": sealed.body,
        **IDS,
    }
    assert plain not in sealed.body
    assert len(sealed.nonce) == 12
    assert unseal(keyring, **fields) == plain
    again = seal(keyring.current, plain=plain, **IDS)
    assert again.nonce != sealed.nonce
    assert again.body != sealed.body

    flipped = bytes([sealed.body[-1] ^ 0x80])
    changes: list[dict[str, Any]] = [
        {"body": sealed.body[:-1] + flipped},
        {"nonce": bytes(12)},
        {"document_id": uuid.uuid4()},
        {"invoice_id": uuid.uuid4()},
        {"practice_id": uuid.uuid4()},
        {"content_type": "application/xml"},
        {"key_id": "b"},
    ]
    for change in changes:
        with pytest.raises(DocumentUnreadable) as raised:
            unseal(keyring, **{**fields, **change})
        assert "could not be decrypted" in raised.value.message
    with pytest.raises(DocumentKeyMissing) as missing:
        unseal(keyring, **{**fields, "key_id": "gone"})
    assert KEYS_SETTING in missing.value.message


def test_digests_are_keyed() -> None:
    a, b = keyring_from_entries(parse_entries(f"a:{KEY},b:{OTHER}"), source=KEYS_SETTING).keys
    body = b'{"Patient": "Jane"}'
    practice, invoice = IDS["practice_id"], IDS["invoice_id"]
    mine = digest(a, practice, invoice, body)
    assert mine == digest(a, practice, invoice, body)
    assert mine != hashlib.sha256(body).hexdigest()
    assert mine != digest(b, practice, invoice, body)
    assert mine != digest(a, practice, uuid.uuid4(), body)
