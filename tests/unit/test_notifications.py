"""Notification settings, periods and message text: pure parts, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from invoice_outbox.admin.notifications import closed_period_end, next_due
from invoice_outbox.admin.notify_message import (
    MAX_LINES,
    Group,
    Summary,
    render_document,
    render_text,
)
from invoice_outbox.sendings.causes import describe
from invoice_outbox.settings import Settings, SettingsError, load_settings

START = datetime(2026, 2, 5, 15, 45, tzinfo=UTC)
END = datetime(2026, 2, 5, 16, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


# ------------------------------------------------------------------------------- settings
def test_notification_settings_default_to_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEBHOOK_URL", "EMAIL_TO", "INTERVAL_SECONDS", "SMTP_STARTTLS"):
        monkeypatch.delenv(f"INVOICE_OUTBOX_NOTIFY_{name}", raising=False)
    settings = load_settings()
    assert not settings.notifications_enabled
    assert settings.notify_interval_seconds == 900
    assert settings.notify_smtp_starttls is True
    assert settings.notify_email_to == ()


def test_notification_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "WEBHOOK_URL": "https://hooks.example.org/services/T1",
        "WEBHOOK_AUTH_HEADER": "Authorization",
        "WEBHOOK_AUTH_VALUE": "Bearer s3cret",
        "EMAIL_TO": " ops@example.org , lead@example.org,",
        "EMAIL_FROM": "Invoice Outbox <outbox@example.org>",
        "SMTP_HOST": "smtp.example.org",
        "SMTP_PORT": "2525",
        "SMTP_STARTTLS": "false",
        "SMTP_USERNAME": "outbox",
        "SMTP_PASSWORD": "pw",
        "INTERVAL_SECONDS": "300",
    }
    for name, value in env.items():
        monkeypatch.setenv(f"INVOICE_OUTBOX_NOTIFY_{name}", value)
    settings = load_settings()
    assert settings.notifications_enabled
    assert settings.notify_email_to == ("ops@example.org", "lead@example.org")
    assert settings.notify_smtp_port == 2525
    assert settings.notify_smtp_starttls is False
    assert settings.notify_interval_seconds == 300
    assert isinstance(settings.notify_webhook_auth_value, SecretStr)
    assert "s3cret" not in repr(settings)
    assert "pw" not in str(settings.notify_smtp_password)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"INTERVAL_SECONDS": "0"}, "INVOICE_OUTBOX_NOTIFY_INTERVAL_SECONDS"),
        ({"INTERVAL_SECONDS": "soon"}, "INVOICE_OUTBOX_NOTIFY_INTERVAL_SECONDS"),
        ({"WEBHOOK_URL": "ftp://example.org/x"}, "INVOICE_OUTBOX_NOTIFY_WEBHOOK_URL"),
        (
            {"WEBHOOK_URL": "https://user:pw@example.org/x"},
            "INVOICE_OUTBOX_NOTIFY_WEBHOOK_URL",
        ),
        ({"WEBHOOK_AUTH_HEADER": "Authorization"}, "INVOICE_OUTBOX_NOTIFY_WEBHOOK_AUTH_VALUE"),
        ({"WEBHOOK_AUTH_VALUE": "Bearer x"}, "set both"),
        (
            {"WEBHOOK_AUTH_HEADER": "Bad Header", "WEBHOOK_AUTH_VALUE": "x"},
            "INVOICE_OUTBOX_NOTIFY_WEBHOOK_AUTH_HEADER",
        ),
        ({"EMAIL_TO": "ops@example.org"}, "needs INVOICE_OUTBOX_NOTIFY_EMAIL_FROM"),
        (
            {"EMAIL_TO": "not-an-address", "EMAIL_FROM": "o@example.org", "SMTP_HOST": "h"},
            "INVOICE_OUTBOX_NOTIFY_EMAIL_TO",
        ),
        ({"SMTP_PORT": "70000"}, "INVOICE_OUTBOX_NOTIFY_SMTP_PORT"),
        ({"SMTP_PASSWORD": "pw"}, "INVOICE_OUTBOX_NOTIFY_SMTP_PASSWORD"),
    ],
)
def test_bad_notification_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], fragment: str
) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"INVOICE_OUTBOX_NOTIFY_{name}", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert fragment in str(raised.value)


def test_settings_in_code_take_a_list_of_addresses() -> None:
    settings = Settings(
        notify_email_to=["a@example.org"],
        notify_email_from="o@example.org",
        notify_smtp_host="smtp.example.org",
    )
    assert settings.notify_email_to == ("a@example.org",)


# -------------------------------------------------------------------------------- periods
@pytest.mark.parametrize(
    ("now", "closed"),
    [
        (datetime(2026, 2, 5, 16, 0, 29, tzinfo=UTC), datetime(2026, 2, 5, 15, 45, tzinfo=UTC)),
        (datetime(2026, 2, 5, 16, 0, 30, tzinfo=UTC), datetime(2026, 2, 5, 16, 0, tzinfo=UTC)),
        (datetime(2026, 2, 5, 16, 14, 59, tzinfo=UTC), datetime(2026, 2, 5, 16, 0, tzinfo=UTC)),
    ],
)
def test_periods_close_on_the_grid_after_settling(now: datetime, closed: datetime) -> None:
    assert closed_period_end(now, QUARTER) == closed


def test_next_due_is_the_next_grid_point_plus_settling() -> None:
    now = datetime(2026, 2, 5, 16, 6, 25, tzinfo=UTC)
    assert next_due(now, QUARTER) == datetime(2026, 2, 5, 16, 15, 30, tzinfo=UTC)


def test_processes_agree_on_period_ends_whatever_their_own_time() -> None:
    moments = [END + timedelta(seconds=s) for s in (30, 31.5, 300, 899)]
    assert {closed_period_end(m, QUARTER) for m in moments} == {END}


# -------------------------------------------------------------------------------- message
@pytest.mark.parametrize(
    ("cause", "label"),
    [
        ("http-503", "HTTP 503 Service Unavailable"),
        ("http-599", "HTTP 599"),
        ("smtp-451", "Mail server deferred the message (SMTP 451)"),
        ("timeout", "Timed out"),
        ("connection-refused", "Connection refused"),
        ("something-new", "Other (something-new)"),
        (None, "Unknown cause"),
    ],
)
def test_causes_read_as_the_causes_module_labels_them(cause: str | None, label: str) -> None:
    summary = Summary(since=START, until=END, groups=(Group(cause, "MediSwitch", 2, 0),))
    [group] = render_document(summary, Settings())["Groups"]
    assert group["Cause"] == cause
    assert group["Label"] == label == describe(cause).label
    text = render_text(summary, Settings())
    assert f"  {label} at MediSwitch: 2\n" in text or cause is None


def test_text_counts_per_cause_and_system() -> None:
    summary = Summary(
        since=START,
        until=END,
        groups=(
            Group("http-503", "MediSwitch", 9, 0),
            Group("timeout", "PracticeLedger", 3, 0),
            Group(None, "MediSwitch", 0, 3),
        ),
    )
    text = render_text(summary, Settings())
    assert text.splitlines()[:2] == [
        "invoice-outbox: 12 invoices could not be sent, 3 got through after failing, "
        "in the last 15 minutes",
        "Period: 2026-02-05 17:45 to 2026-02-05 18:00 (Africa/Johannesburg)",
    ]
    assert (
        "Could not be sent (no more automatic attempts):\n"
        "  HTTP 503 Service Unavailable at MediSwitch: 9\n"
        "  Timed out at PracticeLedger: 3\n"
        "\n"
        "Got through after failing:\n"
        "  MediSwitch: 3\n"
    ) in text
    assert "GET /api/v1/billing/invoices/aborted" in text


def test_long_lists_are_cut_and_summed_up() -> None:
    groups = tuple(Group("http-503", f"System{n:03}", 1, 0) for n in range(MAX_LINES + 5))
    summary = Summary(since=START, until=END, groups=groups)
    text = render_text(summary, Settings())
    assert text.count(" at System") == MAX_LINES
    assert "  and 5 more groups: 5\n" in text
    assert len(render_document(summary, Settings())["Groups"]) == MAX_LINES + 5


@pytest.mark.parametrize(
    ("length", "words"),
    [
        (timedelta(minutes=15), "15 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=2, minutes=30), "2 hours 30 minutes"),
        (timedelta(days=3, hours=1, minutes=5), "3 days 1 hour"),
        (timedelta(seconds=90), "1 minute 30 seconds"),
    ],
)
def test_period_lengths_in_words(length: timedelta, words: str) -> None:
    summary = Summary(since=END - length, until=END, groups=(Group("dns", "X", 1, 0),))
    first = render_text(summary, Settings()).splitlines()[0]
    assert first == (
        f"invoice-outbox: 1 invoice could not be sent, 0 got through after failing, "
        f"in the last {words}"
    )
