"""Filtered, paginated lists of sendings, cause groups, and the practice view."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["finding failures"])
