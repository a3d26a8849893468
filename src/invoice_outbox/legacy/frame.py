"""The framing of a list body that is written in batches (streamed straight from a cursor)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Frame"]


@dataclass(frozen=True, slots=True)
class Frame:
    """What surrounds a list's items.

    Contract for a streamed body: write nothing until the first non-empty batch, then `open`
    followed by that batch (for JSON: ``json_rows(batch, first=True)``), then every later
    batch, then `close`.  If no batch had a row, write `empty` and nothing else: .NET writes
    an empty collection as a self-closed XML element, which ``open + close`` would not give.
    """

    open: bytes
    close: bytes
    empty: bytes
