"""Routing as ASP.NET does it: paths match case-insensitively and tolerate a trailing slash."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute


class AspNetRoute(APIRoute):
    """An APIRoute whose literal segments match in any case, with or without a trailing slash.

    Path parameters are captured exactly as sent; only the matching is relaxed.
    """

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        pattern = self.path_regex.pattern
        if pattern.endswith("$") and not pattern.endswith("/?$"):
            pattern = pattern[:-1].rstrip("/") + "/?$"
        self.path_regex = re.compile(pattern, re.IGNORECASE)
