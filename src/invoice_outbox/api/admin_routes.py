"""Admin actions: resend (one, a selection, a filter or cause group), discard, the audit log."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["fixing failures"])
