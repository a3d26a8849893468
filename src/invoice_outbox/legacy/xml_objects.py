"""DataContract-style XML for the service's own (non-legacy) shapes.

A mapping becomes an element whose members are child elements in alphabetical order (as
DataContractSerializer orders them); None is ``i:nil="true"``; a list repeats an element
named after the list's item name (``ITEM_NAMES``, else ``Item``); bools are ``true``/``false``;
datetimes are .NET's round-trip local form in the service's zone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from invoice_outbox.legacy._xml import EMPTY_END, XSI_NS, dotnet_local_time, xml_text

SERVICE_NS = "http://schemas.datacontract.org/2004/07/InvoiceOutbox.Api"

#: Element names of list items, by the name of the list.
ITEM_NAMES = {
    "Sendings": "Sending",
    "Attempts": "Attempt",
    "Practices": "guid",
    "Systems": "System",
    "Schedule": "string",
    "Items": "Item",
    "Groups": "CauseGroup",
    "Entries": "AuditEntry",
    "Data": "InvoiceSubmissionResult",  # a batch submission's results (the only list Data)
}


def _value(name: str, value: Any, zone: tzinfo) -> str:
    if value is None:
        return f'<{name} i:nil="true"{EMPTY_END}'
    if isinstance(value, Mapping):
        inner = "".join(_value(k, value[k], zone) for k in sorted(value))
        return f"<{name}>{inner}</{name}>" if inner else f"<{name}{EMPTY_END}"
    if isinstance(value, list | tuple):
        item = ITEM_NAMES.get(name, "Item")
        inner = "".join(_value(item, v, zone) for v in value)
        return f"<{name}>{inner}</{name}>" if inner else f"<{name}{EMPTY_END}"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = dotnet_local_time(value, zone)
    elif isinstance(value, uuid.UUID):
        text = str(value)
    else:
        text = xml_text(str(value))
    return f"<{name}>{text}</{name}>" if text else f"<{name}{EMPTY_END}"


def xml_object(root: str, value: Mapping[str, Any] | list[Any], zone: tzinfo) -> bytes:
    """`value` as the document element `root`, in the service's namespace."""
    body = _value(root, value, zone)
    head = f'<{root} xmlns:i="{XSI_NS}" xmlns="{SERVICE_NS}"'
    return (head + body[len(root) + 1 :]).encode()
