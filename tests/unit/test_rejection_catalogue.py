"""The rejection catalogue file and its lookups (pure: no database)."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from invoice_outbox.sendings.causes import describe
from invoice_outbox.systems.rejections import (
    WHO,
    Entry,
    _parse,
    file_catalogue,
    rejection_reason,
    rejection_slug,
)


def test_the_shipped_file_is_versioned_and_every_entry_is_complete() -> None:
    text = resources.files("invoice_outbox.systems").joinpath("rejections.toml").read_text()
    raw = tomllib.loads(text)
    catalogue = file_catalogue()
    assert catalogue.version == raw["version"] >= 1
    assert len(catalogue.entries) == len(raw["entries"]) >= 5
    for entry in catalogue.entries:
        assert entry.who in WHO
        assert entry.label
        assert entry.meaning
        assert entry.fix
    keys = [(e.kind, e.system, e.code) for e in catalogue.entries]
    assert len(keys) == len(set(keys)), "an entry is listed twice"


def test_a_broken_file_is_refused_with_the_entry_named() -> None:
    with pytest.raises(ValueError, match="entry 1"):
        _parse('version = 1\n[[entries]]\nkind = "x"\ncode = "1"\nlabel = "l"\n')
    with pytest.raises(ValueError, match="who must be"):
        _parse(
            'version = 1\n[[entries]]\nkind = "x"\ncode = "1"\nlabel = "l"\nmeaning = "m"\n'
            'fix = "f"\nwho = "the patient"\nresend_helps = false\n'
        )
    with pytest.raises(ValueError, match="version"):
        _parse("entries = []\n")


def test_lookup_prefers_overrides_then_the_system_then_its_kind() -> None:
    override = Entry("04", "Ours", "m", "f", "administrator", True, "override", system="Med")
    catalogue = file_catalogue().with_overrides([override])
    assert catalogue.lookup("Other", "switch", "04") == (
        "code-k-switch-04",
        catalogue.by_slug("code-k-switch-04"),
    )
    slug, entry = catalogue.lookup("Med", "switch", "04")
    assert (slug, entry) == ("code-s-med-04", override)
    assert catalogue.lookup("Other", None, "04") == ("code-s-other-04", None)
    assert catalogue.lookup("Other", "switch", "ZZ") == ("code-s-other-zz", None)


def test_cause_words_come_from_the_catalogue_and_unknown_codes_say_so() -> None:
    known = describe("code-k-switch-04")
    assert (known.label, known.who, known.resend_helps, known.needs_correction) == (
        "Invalid member number",
        "practice",
        False,
        True,
    )
    assert known.explanation == "The medical aid does not know the patient's membership number."
    unknown = describe("code-s-mediswitch-x9")
    assert (unknown.known, unknown.label) == (False, "Unknown rejection code (mediswitch-x9)")
    assert not unknown.needs_correction  # nobody knows yet: no reason to forbid a resend
    helps = describe("code-k-switch-91")
    assert (helps.resend_helps, helps.needs_correction) == (True, False)


def test_slugs_fit_the_cause_column_and_reasons_name_the_code() -> None:
    slug = rejection_slug("s", "A very long system name " * 5, "code/with spaces " * 5)
    assert len(slug) <= 64
    assert slug == slug.lower()
    entry = file_catalogue().by_slug("code-k-switch-04")
    assert rejection_reason("MediSwitch", "invoice", "04", entry) == (
        "MediSwitch rejected the invoice: code 04, Invalid member number"
    )
    assert "does not explain" in rejection_reason("MediSwitch", "invoice", "77", None)
