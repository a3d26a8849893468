"""Structured logs: one JSON object per line with ``action`` and ids, never patient data.

Every record is rendered with its ``extra=`` fields as top-level keys, plus ``request_id``
while a request is being answered (`request_id` holds it; the access-log middleware sets it),
so an operator can follow one request through the logs.  Messages never carry terminal
colours: they are plain text inside JSON.  ``INVOICE_OUTBOX_LOG_FORMAT=text`` prints the same
records as short lines for a person at a console (``make run``).
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Final

import orjson

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
#: ANSI escape sequences (colours), which never belong in a log line.
_ANSI: Final = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: The id of the request being answered (set by `invoice_outbox.api.access_log`), or None.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    current = request_id.get()
    if current is not None and "request_id" not in fields:
        fields["request_id"] = current
    return fields


def _message(record: logging.LogRecord) -> str:
    return _ANSI.sub("", record.getMessage())


class JsonFormatter(logging.Formatter):
    """Render a record and its ``extra=`` fields as a JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``12:04:05 WARNING delivery aborted  action=delivery.recorded system=MediSwitch``."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        line = f"{moment} {record.levelname:<7} {_message(record)}"
        if fields:
            line += f"  {fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send log lines (`fmt`: ``json`` or ``text``) to stderr for the service's own loggers
    and uvicorn's (whose access log is off: `invoice_outbox.api.access_log` writes it)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosqlite logs every statement with its parameters at DEBUG: never, whatever the level.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
