"""Pure helpers of the dashboard: dates in a zone, navigation, safe redirects, lock lengths,
cookie signing, and the serve banner."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from invoice_outbox.auth.lockout import MEMORY, lock_length
from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.cli.demo_cmd import DEMO_CREDENTIALS_FILE
from invoice_outbox.cli.serve import print_banner
from invoice_outbox.settings import Settings
from invoice_outbox.web.csrf import tokens_match
from invoice_outbox.web.login import safe_next
from invoice_outbox.web.overview_data import day_bounds
from invoice_outbox.web.sessions import cookie_key, sign, unsign
from invoice_outbox.web.templating import (
    ADMIN_NAV,
    PRACTICE_NAV,
    current_nav,
    day_label,
    local_date,
    local_time,
    nav_items,
    thousands,
)

JOBURG = ZoneInfo("Africa/Johannesburg")
MOMENT = datetime(2026, 2, 5, 22, 30, tzinfo=UTC)


def test_dates_are_shown_in_the_given_zone() -> None:
    assert local_time(MOMENT, JOBURG) == "6 Feb 2026, 00:30 SAST"
    assert local_time(MOMENT, "Europe/London") == "5 Feb 2026, 22:30 GMT"
    assert local_date(MOMENT, JOBURG) == "6 Feb 2026"
    assert local_time(None, JOBURG) == local_date(None) == ""
    assert day_label(date(2026, 12, 1)) == "1 Dec"
    assert thousands(1234567) == "1\u202f234\u202f567"


def test_day_bounds_follow_the_zones_calendar_and_daylight_saving() -> None:
    bounds = day_bounds(date(2026, 3, 30), ZoneInfo("Europe/Berlin"), days=3)
    assert bounds[0] == datetime(2026, 3, 27, 23, tzinfo=UTC)
    # 29 March 2026 is 23 hours long in Berlin.
    assert [b - a for a, b in itertools.pairwise(bounds)] == [
        timedelta(hours=24),
        timedelta(hours=23),
        timedelta(hours=24),
    ]


def test_navigation_by_role_and_path() -> None:
    admin = Principal("a", Role.ADMIN)
    practice = Principal("p", Role.PRACTICE)
    assert nav_items(None) == ()
    assert nav_items(admin) == ADMIN_NAV
    assert nav_items(practice) == PRACTICE_NAV
    assert current_nav("/admin/", ADMIN_NAV) == "overview"
    assert current_nav("/admin/causes/http-503", ADMIN_NAV) == "causes"
    assert current_nav("/admin/login", ADMIN_NAV) is None
    assert current_nav("/admin/invoices/x", PRACTICE_NAV) == "invoices"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/admin/causes/http-503?x=1", "/admin/causes/http-503?x=1"),
        ("/admin", "/admin"),
        ("/admin/", "/admin/"),
        ("//evil.example/admin/", "/admin/"),
        ("https://evil.example/admin/", "/admin/"),
        ("/\\evil.example", "/admin/"),
        ("/admin/\r\nSet-Cookie: x=y", "/admin/"),
        ("/administrator", "/admin/"),
        ("/admin/login?next=//evil", "/admin/"),
        ("admin/", "/admin/"),
        ("", "/admin/"),
        (None, "/admin/"),
    ],
)
def test_safe_next(target: object, expected: str) -> None:
    assert safe_next(target) == expected


@pytest.mark.parametrize(
    ("failures", "length"),
    [
        (0, None),
        (4, None),
        (5, timedelta(minutes=15)),
        (9, timedelta(minutes=15)),
        (10, timedelta(minutes=30)),
        (15, timedelta(hours=1)),
        (10_000, MEMORY),
    ],
)
def test_lock_length_doubles_per_run_of_failures(failures: int, length: timedelta | None) -> None:
    assert lock_length(failures, 5, timedelta(minutes=15)) == length


def test_cookie_signatures() -> None:
    key = cookie_key(b"k" * 40)
    assert key != cookie_key(b"j" * 40)
    assert key != b"k" * 40
    signed = sign("token", key)
    assert unsign(signed, key) == "token"
    assert unsign(signed, cookie_key(b"j" * 40)) is None
    assert unsign(signed + "x", key) is None
    assert unsign("token", key) is None
    assert unsign(".abc", key) is None


def test_tokens_match_only_equal_non_empty_text() -> None:
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match("", "")
    assert not tokens_match("abc", None)
    assert not tokens_match("abc", ["abc"])


def test_the_serve_banner_names_the_dashboard_and_the_demo_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(var_dir=tmp_path)
    (tmp_path / DEMO_CREDENTIALS_FILE).write_text("admin / pw (admin)\n")
    print_banner(settings, "127.0.0.1", 8123)
    printed = capsys.readouterr().err
    assert "Dashboard:       http://127.0.0.1:8123/admin/" in printed
    assert "Demo users:      admin / pw (admin)" in printed
