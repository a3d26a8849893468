"""Settings fail fast, naming the variable, and database URLs are normalised."""

from __future__ import annotations

import pytest

from invoice_outbox.db.urls import normalise_database_url
from invoice_outbox.settings import SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOICE_OUTBOX_DATABASE_URL", raising=False)
    monkeypatch.delenv("INVOICE_OUTBOX_TIMEZONE", raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///./var/invoice-outbox.db"
    assert settings.timezone == "Africa/Johannesburg"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("INVOICE_OUTBOX_TIMEZONE", "Mars/Olympus", "INVOICE_OUTBOX_TIMEZONE"),
        ("INVOICE_OUTBOX_DATABASE_URL", "mysql://x/y", "unsupported database driver"),
        ("INVOICE_OUTBOX_DATABASE_URL", "not a url", "INVOICE_OUTBOX_DATABASE_URL"),
        ("INVOICE_OUTBOX_MAX_BODY_BYTES", "-1", "INVOICE_OUTBOX_MAX_BODY_BYTES"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("raw", "sync", "async_"),
    [
        ("sqlite:///var/x.db", "sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        (
            "postgresql://u@h:5432/d",
            "postgresql+psycopg://u@h:5432/d",
            "postgresql+psycopg://u@h:5432/d",
        ),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_urls(raw: str, sync: str, async_: str) -> None:
    urls = normalise_database_url(raw)
    assert (urls.sync_url, urls.async_url) == (sync, async_)


@pytest.mark.parametrize("raw", ["sqlite://", "sqlite:///:memory:", "postgresql://u@h/"])
def test_unusable_urls(raw: str) -> None:
    with pytest.raises(ValueError, match="needs"):
        normalise_database_url(raw)


@pytest.mark.parametrize(
    ("environment", "cap"),
    [
        ({}, 256),
        ({"INVOICE_OUTBOX_WORKER_CONCURRENCY": "16"}, 16),  # the older name still works
        ({"INVOICE_OUTBOX_WORKER_MAX_IN_FLIGHT": "64"}, 64),
        (
            {
                "INVOICE_OUTBOX_WORKER_CONCURRENCY": "16",
                "INVOICE_OUTBOX_WORKER_MAX_IN_FLIGHT": "64",
            },
            64,
        ),
    ],
)
def test_the_workers_cap_on_deliveries_in_flight(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], cap: int
) -> None:
    for name in ("INVOICE_OUTBOX_WORKER_CONCURRENCY", "INVOICE_OUTBOX_WORKER_MAX_IN_FLIGHT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert load_settings().worker_cap == cap
