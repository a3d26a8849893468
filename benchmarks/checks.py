"""Correctness checks run once per phase, outside the timed requests.

A benchmark of a wrong answer is worthless, so before measuring, each phase fetches every
contender's answer once and checks: the row count is exact, every row is ``Aborted``, the
service's JSON equals the floor's JSON value for value and in order, the baseline's JSON and
XML carry the same data as the service's, and the XML holds the same rows in the same order
as the JSON.  Failed checks are reported (and saved); they do not stop the run.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from defusedxml import ElementTree

from benchmarks.loadgen import fetch
from benchmarks.measure import admin_request
from benchmarks.servers import HOST, Server

NS = (
    "{http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.ValueObjects}"
)


@dataclass(frozen=True, slots=True)
class Check:
    """One named check and what it found."""

    phase: str
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Answer:
    """A contender's answer, parsed once."""

    raw: bytes
    json_rows: list[dict[str, Any]] | None = None
    xml_rows: list[tuple[str | None, ...]] | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def parse_json(raw: bytes) -> Answer:
    rows = orjson.loads(raw)
    return Answer(raw=raw, json_rows=rows if isinstance(rows, list) else [])


def parse_xml(raw: bytes) -> Answer:
    root = ElementTree.fromstring(raw)
    rows = [
        tuple(child.text for child in item) for item in root.iter(f"{NS}InvoiceSendingStatusVo")
    ]
    return Answer(raw=raw, xml_rows=rows)


async def fetch_answer(server: Server, token: str, fmt: str) -> Answer:
    """`server`'s answer to the measured request (status must be 200)."""
    response = await fetch(HOST, server.port, admin_request(server.port, token, fmt))
    if response.status != 200 or response.body is None:
        raise RuntimeError(f"{server.name} answered HTTP {response.status} to the {fmt} list")
    return parse_json(response.body) if fmt == "json" else parse_xml(response.body)


class Checker:
    """Collects checks for one phase."""

    def __init__(self, phase: str, expected_rows: int) -> None:
        self.phase = phase
        self.expected = expected_rows
        self.results: list[Check] = []

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append(Check(self.phase, name, ok, detail))
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    def json_answer(self, who: str, answer: Answer) -> None:
        rows = answer.json_rows or []
        self.check(
            f"{who} JSON has {self.expected:,} rows",
            len(rows) == self.expected,
            f"got {len(rows):,}",
        )
        self.check(
            f"{who} JSON rows are all Aborted", all(row.get("Status") == "Aborted" for row in rows)
        )

    def xml_answer(self, who: str, xml: Answer, json: Answer) -> None:
        rows = xml.xml_rows or []
        self.check(
            f"{who} XML has {self.expected:,} rows",
            len(rows) == self.expected,
            f"got {len(rows):,}",
        )
        # XML elements are alphabetical: EncounterId, InvoiceId, ... ; JSON order is SPEC's.
        xml_ids = [row[1] for row in rows]
        json_ids = [row["InvoiceId"] for row in json.json_rows or []]
        self.check(f"{who} XML rows are the JSON rows, same order", xml_ids == json_ids)

    def same_json(self, who: str, answer: Answer, reference: Answer, ref_name: str) -> None:
        same = answer.json_rows == reference.json_rows
        detail = "byte-identical" if answer.raw == reference.raw else "same values"
        self.check(
            f"{who} JSON equals {ref_name} JSON",
            same,
            detail if same else _diff(answer.json_rows or [], reference.json_rows or []),
        )

    def same_xml(self, who: str, answer: Answer, reference: Answer, ref_name: str) -> None:
        same = answer.xml_rows == reference.xml_rows
        detail = "byte-identical" if answer.raw == reference.raw else "same element texts"
        first = next(
            (
                f"row {i}: {a} vs {b}"
                for i, (a, b) in enumerate(
                    zip(answer.xml_rows or [], reference.xml_rows or [], strict=False)
                )
                if a != b
            ),
            "lengths differ",
        )
        self.check(f"{who} XML equals {ref_name} XML", same, detail if same else first)


def _diff(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> str:
    if len(left) != len(right):
        return f"{len(left):,} vs {len(right):,} rows"
    for index, (a, b) in enumerate(zip(left, right, strict=True)):
        if a != b:
            return f"row {index}: {a} vs {b}"
    return "?"
