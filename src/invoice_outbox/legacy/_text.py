"""Text clean-up shared by the JSON and XML writers (private)."""

from __future__ import annotations

import re

__all__ = ["has_surrogates", "join_surrogates"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """True when `text` holds surrogate code points (they cannot be encoded as UTF-8)."""
    return _SURROGATE.search(text) is not None


def join_surrogates(text: str) -> str:
    """`text` as a .NET (UTF-16) string would be seen: pairs joined, lone halves → U+FFFD.

    Python strings can carry surrogates (from ``surrogateescape`` decoding or a JSON ``\\ud83d``
    escape); .NET strings are UTF-16, so a high+low pair there *is* the character, while a lone
    half is not text at all and can be neither encoded as UTF-8 nor carried by XML.
    """
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
