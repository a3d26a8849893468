"""Reading list query parameters as ASP.NET binds them: case-insensitive, lenient, strict values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from starlette.requests import Request

from invoice_outbox.auth.principal import AccessDenied, Principal, Role
from invoice_outbox.errors import InvalidParameter
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.list_query import (
    LEGACY_PARAMS,
    LIST_PARAMS,
    SENT_PARAMS,
    ListParams,
    parse_moment,
    read_params,
    scoped,
)
from invoice_outbox.sendings.status import SendingType, Status

ZONE = ZoneInfo("Africa/Johannesburg")
A = uuid.UUID("1c2d9508-589f-4ac3-8898-16c402da5ea8")
B = uuid.UUID("9b1f5c2e-3f43-4d0a-8f59-0c3e6d1b7a21")


def _request(query: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [],
            "query_string": query.encode(),
        }
    )


def _read(query: str, names: tuple[str, ...] = LIST_PARAMS) -> ListParams:
    return read_params(_request(query).query_params.multi_items(), names, ZONE)


def test_nothing_given() -> None:
    params = _read("")
    assert not params.given
    assert not params.paged
    assert params.selection == SendingFilter()


def test_unknown_and_empty_parameters_count_as_not_given() -> None:
    params = _read("foo=1&practiceId=&system=&limit=&cursor=&$format=json")
    assert not params.given
    assert params.selection == SendingFilter()


def test_names_are_case_insensitive_and_values_repeat_or_comma_separate() -> None:
    params = _read(
        f"PRACTICEID={A}&practiceid={B}&System=MediSwitch,PracticeLedger&SENDINGTYPE=invoice"
        "&status=failed&Status=ABORTED,Failed&CAUSE=HTTP-503,timeout&Q=%20busy%20&LIMIT=25"
    )
    selection = params.selection
    assert selection.practices == frozenset({A, B})
    assert selection.systems == {"MediSwitch", "PracticeLedger"}
    assert selection.sending_types == {SendingType.INVOICE}
    assert selection.statuses == {Status.FAILED, Status.ABORTED}
    assert selection.causes == {"http-503", "timeout"}
    assert selection.text == "busy"
    assert params.limit == 25
    assert params.paged


def test_guids_in_every_form_dotnet_accepts() -> None:
    forms = [str(A), str(A).upper(), A.hex, "{" + str(A) + "}"]
    assert _read("&".join(f"practiceId={f}" for f in forms)).selection.practices == frozenset({A})


def test_parameters_a_route_does_not_take_are_ignored() -> None:
    params = _read("status=Sent&cause=timeout&from=2026-01-01", SENT_PARAMS)
    assert not params.given
    assert _read("status=Nonsense", LEGACY_PARAMS).given is False


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("practiceId=nope", "practiceId"),
        ("practiceId=" + "1" * 33, "practiceId"),
        ("system=<script>", "system"),
        ("system=" + "x" * 101, "system"),
        ("sendingType=Letter", "sendingType"),
        ("status=Lost", "status"),
        ("cause=http 503", "cause"),
        ("cause=--", "cause"),
        ("cause=" + "a" * 65, "cause"),
        ("from=yesterday", "from"),
        ("from=2026-02-30", "from"),
        ("to=2026-13-01", "to"),
        ("to=9999-12-31", "to"),
        ("from=0001-01-01T00:00:00%2B14:00", "from"),
        ("from=2026-02-06&to=2026-02-05", "from"),
        ("q=" + "x" * 201, "q"),
        ("q=a%00b", "q"),
        ("system=Medi%00Switch", "system"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=ten", "limit"),
        ("limit=%D9%A3", "limit"),  # an Arabic-Indic digit: int() would take it
        ("limit=99999999999999999999", "limit"),
        ("practiceId=" + ",".join(str(uuid.uuid4()) for _ in range(101)), "practiceId"),
    ],
)
def test_invalid_values_are_a_400_naming_the_parameter(query: str, name: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        _read(query)
    assert raised.value.parameter == name
    assert raised.value.message.startswith(f"{name} ")


def test_dates_are_calendar_days_in_the_service_zone() -> None:
    start = parse_moment("from", "2026-02-05", ZONE, end=False)
    end = parse_moment("to", "2026-02-05", ZONE, end=True)
    assert start == datetime(2026, 2, 4, 22, tzinfo=UTC)
    assert end == datetime(2026, 2, 5, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-02-05T10:00:00+02:00",
        "2026-02-05T10:00:00 02:00",  # "+" sent unencoded arrives as a space
        "2026-02-05T08:00:00Z",
        "2026-02-05T10:00:00",  # no offset: the service's zone
        "2026-02-05T10:00",
        "2026-02-05T08:00:00.000000+00:00",
    ],
)
def test_date_times(raw: str) -> None:
    assert parse_moment("from", raw, ZONE, end=False) == datetime(2026, 2, 5, 8, tzinfo=UTC)


def test_a_date_time_to_is_exclusive_at_that_instant() -> None:
    params = _read("from=2026-02-05T10:00:00&to=2026-02-05T11:00:00")
    assert params.selection.since == datetime(2026, 2, 5, 8, tzinfo=UTC)
    assert params.selection.until == datetime(2026, 2, 5, 9, tzinfo=UTC)


def test_scoping_keeps_admins_unrestricted_and_confines_practice_users() -> None:
    admin = Principal("a", Role.ADMIN)
    user_a = Principal("u", Role.PRACTICE, frozenset({A}))
    assert scoped(SendingFilter(), admin).practices is None
    assert scoped(SendingFilter(), user_a).practices == frozenset({A})
    assert scoped(SendingFilter(practices=frozenset({A})), user_a).practices == frozenset({A})
    for other in ({B}, {A, B}):
        with pytest.raises(AccessDenied):
            scoped(SendingFilter(practices=frozenset(other)), user_a)
    nobody = Principal("n", Role.PRACTICE, frozenset())
    assert scoped(SendingFilter(), nobody).practices == frozenset()
