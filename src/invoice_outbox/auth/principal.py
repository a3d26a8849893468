"""Who is calling: a role and, for practice users, the practices they belong to."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass


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
