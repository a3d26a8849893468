"""Reading import files (JSON lines, CSV) into submissions, and writing the rejected lines.

The formats are described in `import_cmd`.  A line that cannot be read becomes a `Line` with
a `problem` and no submission: it is rejected as Invalid without stopping the import.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import orjson
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from invoice_outbox.errors import Invalid
from invoice_outbox.sendings.intake import IntakeError, Submission
from invoice_outbox.sendings.submissions import read_submission

#: The format of a file by its extension.
FORMATS: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
#: The CSV columns an import reads.
CSV_COLUMNS: Final = ("PracticeId", "InvoiceId", "EncounterId", "Systems", "Document")
#: Columns (CSV) and the member (JSON lines) a rejected-lines file adds; ignored on import.
REJECTED_COLUMNS: Final = ("Line", "Outcome", "Reason")
REJECTED_MEMBER: Final = "_Rejected"


@dataclass(slots=True)
class Line:
    """One invoice of the file: where it is, what it said, and what it became."""

    number: int
    physical_lines: int
    record: dict[str, Any] | None
    text: str
    submission: Submission | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    line: Line
    outcome: str
    reason: str


def _practice(values: dict[str, Any]) -> uuid.UUID:
    given = values.pop("PracticeId", None)
    if given in (None, ""):
        raise IntakeError("PracticeId: Field required")
    try:
        return uuid.UUID(str(given))
    except ValueError:
        raise IntakeError("PracticeId: is not a GUID") from None


def _submission(line: Line, values: dict[str, Any]) -> Line:
    try:
        line.submission = read_submission(_practice(values), values)
    except IntakeError as exc:
        line.problem = exc.message
    return line


def _json_line(number: int, text: str) -> Line:
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Line(number, 1, None, text, problem="the line is not valid JSON")
    if not isinstance(parsed, dict):
        return Line(number, 1, None, text, problem="the line is not a JSON object")
    parsed.pop(REJECTED_MEMBER, None)
    return _submission(Line(number, 1, parsed, text), dict(parsed))


def _csv_document(text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.startswith("<"):
        try:
            return ElementTree.fromstring(stripped, forbid_dtd=True)
        except (ElementTree.ParseError, DefusedXmlException, ValueError):
            raise IntakeError("Document: not well-formed XML (DTDs are not accepted)") from None
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        raise IntakeError("Document: neither JSON nor XML") from None


def _csv_record(number: int, physical: int, row: dict[str, Any]) -> Line:
    record = {k: v for k, v in row.items() if k is not None and k not in REJECTED_COLUMNS}
    line = Line(number, physical, record, "")
    values: dict[str, Any] = {k: record.get(k) for k in CSV_COLUMNS}
    systems = (values.pop("Systems") or "").strip()
    if systems:
        values["Systems"] = [name.strip() for name in systems.split(";") if name.strip()]
    try:
        values["Document"] = _csv_document(values.get("Document") or "")
    except IntakeError as exc:
        line.problem = exc.message
        return line
    return _submission(line, values)


def _jsonl(handle: IO[str]) -> Iterator[Line]:
    for number, text in enumerate(handle, start=1):
        text = text.rstrip("\r\n")
        if text.strip():
            yield _json_line(number, text)


def _csv(handle: IO[str]) -> Iterator[Line]:
    reader = csv.DictReader(handle)
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise Invalid(
            f"the CSV header lacks {', '.join(missing)}; it must name {','.join(CSV_COLUMNS)}"
        )
    read = 1
    for row in reader:
        first, read = read + 1, reader.line_num
        yield _csv_record(first, read - first + 1, row)


def read_lines(path: Path, kind: str, batch_size: int) -> Iterator[list[Line]]:
    """The file's invoices, `batch_size` at a time, in file order."""
    with path.open(encoding="utf-8-sig", newline="" if kind == "csv" else None) as handle:
        batch: list[Line] = []
        for line in _csv(handle) if kind == "csv" else _jsonl(handle):
            batch.append(line)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


class RejectedWriter:
    """Writes refused lines as given, with why, in the file's format (created on first use)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self._handle: IO[str] | None = None
        self._csv: csv.DictWriter[str] | None = None
        self.count = 0

    def __enter__(self) -> RejectedWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.close()

    def _open(self) -> IO[str]:
        if self._handle is None:
            self._handle = self.path.open("w", encoding="utf-8", newline="")
        return self._handle

    def write(self, rejected: Rejected) -> None:
        line, handle = rejected.line, self._open()
        self.count += 1
        why = {"Line": line.number, "Outcome": rejected.outcome, "Reason": rejected.reason}
        if self.kind == "csv":
            if self._csv is None:
                columns = [*CSV_COLUMNS, *REJECTED_COLUMNS]
                self._csv = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
                self._csv.writeheader()
            self._csv.writerow({**(line.record or {}), **why})
            return
        if line.record is not None:
            value: dict[str, Any] = {**line.record, REJECTED_MEMBER: why}
        else:
            value = {REJECTED_MEMBER: why, "_Text": line.text}
        handle.write(orjson.dumps(value).decode() + "\n")
