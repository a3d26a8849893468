"""Who is calling: a role and, for practice users, the practices they belong to."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Final

from invoice_outbox.errors import Forbidden

#: What a caller is told when a role or practice check refuses them (ASP.NET's words, which
#: reveal nothing about what exists).
DENIED: Final = "Authorization has been denied for this request."


class AccessDenied(Forbidden):
    """The caller's role or practices do not cover what they asked for (an admins-only action,
    another practice's data).  The message is `DENIED` unless a more specific one helps."""

    def __init__(self, message: str = DENIED) -> None:
        super().__init__(message)


class Role(enum.StrEnum):
    """Admins see and act on every practice; practice users only on their own practices."""

    ADMIN = "admin"
    PRACTICE = "practice"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    subject: str
    role: Role
    practices: frozenset[uuid.UUID] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_access(self, practice_id: uuid.UUID) -> bool:
        """True for admins, and for users of that practice."""
        return self.is_admin or practice_id in self.practices

    def ensure_access(self, practice_id: uuid.UUID) -> None:
        """`AccessDenied` unless the caller is an admin or belongs to `practice_id`."""
        if not self.may_access(practice_id):
            raise AccessDenied()

    def ensure_admin(self) -> None:
        """`AccessDenied` unless the caller is an admin."""
        if not self.is_admin:
            raise AccessDenied()
