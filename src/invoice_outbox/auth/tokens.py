"""Signed bearer tokens (JWT, HS256).

Only HS256 is accepted when verifying, so ``alg: none`` and algorithm-confusion tokens fail;
``exp``, ``iat``, ``sub`` and the issuer are required.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt

from invoice_outbox.auth.principal import Principal, Role

ALGORITHM = "HS256"
ISSUER = "invoice-outbox"
LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    """The token is missing, malformed, tampered with, expired, or carries bad claims.

    Deliberately outside the domain's error tree (`invoice_outbox.errors`): it says nothing
    the caller can act on but "authenticate again", and its answer is the front end's own (the
    API's 401 with ``WWW-Authenticate``, `api.security`; the dashboard uses sessions instead).
    """


def issue_token(principal: Principal, *, key: bytes, now: datetime, lifetime: timedelta) -> str:
    """A token for `principal`, valid from `now` for `lifetime`."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": principal.subject,
        "role": principal.role.value,
        "practices": sorted(str(p) for p in principal.practices),
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_token(token: str, *, key: bytes, now: datetime) -> Principal:
    """The principal a valid token names at time `now`; raise `InvalidToken` for anything else.

    Expiry is checked against the injected clock (not the library's own reading of the time),
    so the whole service agrees on what "now" is.
    """
    return _verify(token, key=key, now=now)[0]


class VerifiedTokens:
    """`verify_token` remembering what it verified: practice software sends the same token
    with every request, and checking it again (an HMAC, a JSON parse, claims) was a tenth of
    a submission's CPU.  A remembered token is still refused once expired (by `now`); at most
    `size` are kept (all forgotten when full).  Keyed by signing key and token."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._known: dict[tuple[bytes, str], tuple[Principal, int]] = {}

    def verify(self, token: str, *, key: bytes, now: datetime) -> Principal:
        known = self._known.get((key, token))
        if known is not None and known[1] + LEEWAY_SECONDS >= now.timestamp():
            return known[0]
        principal, expires = _verify(token, key=key, now=now)
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[(key, token)] = (principal, expires)
        return principal


def _verify(token: str, *, key: bytes, now: datetime) -> tuple[Principal, int]:
    """`verify_token`, and the token's expiry (seconds since the epoch)."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={
                "require": ["exp", "iat", "sub", "iss"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
        if not isinstance(claims["exp"], int) or claims["exp"] + LEEWAY_SECONDS < now.timestamp():
            raise InvalidToken("expired")
        role = Role(str(claims.get("role")))
        practices = frozenset(uuid.UUID(str(p)) for p in claims.get("practices") or [])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from None
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise InvalidToken("empty subject")
    return Principal(subject=claims["sub"], role=role, practices=practices), claims["exp"]
