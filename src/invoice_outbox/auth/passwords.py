"""Password hashing (argon2id) with a constant-time path for unknown users."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted; safe to store)."""
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("invoice-outbox: no such user")


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches `stored_hash`.

    With no stored hash (unknown user) a dummy hash is verified instead, so the answer takes as
    long as for a known user and timing does not reveal which names exist.
    """
    try:
        _hasher.verify(stored_hash or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored_hash is not None
