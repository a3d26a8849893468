"""Bearer tokens: round trip, and every kind of bad token refused."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.auth.tokens import InvalidToken, VerifiedTokens, issue_token, verify_token

KEY = b"k" * 48
NOW = datetime.now(UTC)
PRACTICE = uuid.UUID("1c2d9508-589f-4ac3-8898-16c402da5ea8")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_round_trip_keeps_role_and_practices() -> None:
    principal = Principal("dr-smith", Role.PRACTICE, frozenset({PRACTICE}))
    token = issue_token(principal, key=KEY, now=NOW, lifetime=timedelta(hours=1))
    assert verify_token(token, key=KEY, now=NOW) == principal


def test_expired_token_refused() -> None:
    token = issue_token(
        Principal("a", Role.ADMIN),
        key=KEY,
        now=NOW - timedelta(hours=2),
        lifetime=timedelta(hours=1),
    )
    with pytest.raises(InvalidToken):
        verify_token(token, key=KEY, now=NOW)


def test_other_key_refused() -> None:
    token = issue_token(
        Principal("a", Role.ADMIN), key=b"o" * 48, now=NOW, lifetime=timedelta(hours=1)
    )
    with pytest.raises(InvalidToken):
        verify_token(token, key=KEY, now=NOW)


def test_tampered_payload_refused() -> None:
    token = issue_token(
        Principal("a", Role.PRACTICE, frozenset({PRACTICE})),
        key=KEY,
        now=NOW,
        lifetime=timedelta(hours=1),
    )
    header, _payload, signature = token.split(".")
    forged = _b64(
        {
            "iss": "invoice-outbox",
            "sub": "a",
            "role": "admin",
            "practices": [],
            "iat": int(NOW.timestamp()),
            "exp": int(NOW.timestamp()) + 3600,
        }
    )
    with pytest.raises(InvalidToken):
        verify_token(f"{header}.{forged}.{signature}", key=KEY, now=NOW)


def test_alg_none_refused() -> None:
    claims = {
        "iss": "invoice-outbox",
        "sub": "a",
        "role": "admin",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 3600,
    }
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    with pytest.raises(InvalidToken):
        verify_token(token, key=KEY, now=NOW)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "a", "role": "root"},  # unknown role
        {"sub": "a", "role": "admin", "practices": ["not-a-guid"]},
        {"role": "admin"},  # no subject
        {"sub": "a", "role": "admin", "iss": "someone-else"},
    ],
)
def test_bad_claims_refused(claims: dict[str, object]) -> None:
    full: dict[str, object] = {
        "iss": "invoice-outbox",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 3600,
        **claims,
    }
    with pytest.raises(InvalidToken):
        verify_token(jwt.encode(full, KEY, algorithm="HS256"), key=KEY, now=NOW)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x", "é.é.é"])
def test_garbage_refused(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        verify_token(garbage, key=KEY, now=NOW)


def test_a_remembered_token_is_still_refused_once_expired_or_under_another_key() -> None:
    remembered = VerifiedTokens()
    principal = Principal("dr-smith", Role.PRACTICE, frozenset({PRACTICE}))
    token = issue_token(principal, key=KEY, now=NOW, lifetime=timedelta(hours=1))
    assert remembered.verify(token, key=KEY, now=NOW) == principal
    assert remembered.verify(token, key=KEY, now=NOW + timedelta(minutes=59)) == principal
    with pytest.raises(InvalidToken):
        remembered.verify(token, key=KEY, now=NOW + timedelta(hours=2))
    with pytest.raises(InvalidToken):
        remembered.verify(token, key=b"another-key-" + b"y" * 40, now=NOW)
