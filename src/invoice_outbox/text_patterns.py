"""Patterns for the text the service accepts, as JSON Schema (ECMA-262) and Python `re` read them.

One copy for the domain's request schemas (`systems/schemas.py`, `admin/schemas.py`) and the
API's OpenAPI document (`api/openapi.py`, `api/list_params.py`), so what the document says a
string may hold is what the boundary checks (`api/boundary.py` refuses C0 control characters
other than tab, LF and CR in every path, query, form and body).
"""

from __future__ import annotations

from typing import Final

#: A string without C0 control characters other than tab, LF and CR.
NO_CONTROLS: Final = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f]*$"
#: Such a string with at least one character that is not white space (what a required reason
#: must be: the service strips white space before checking that one was given).
NOT_BLANK: Final = (
    r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f]*[^\s\u0000-\u001f]"
    r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f]*$"
)
