"""Operators' side (issue 13): structured access lines with a request id, quiet probes, the
practices API, invoice numbers on intake."""

from __future__ import annotations

import logging
import uuid

import httpx
import orjson
import pytest

from invoice_outbox.logs import JsonFormatter
from tests.conftest import PRACTICE_A


async def test_access_lines_are_structured_and_carry_the_request_id(
    client: httpx.AsyncClient, admin_headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="invoice_outbox.access")
    invoice = uuid.uuid4()
    answer = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{invoice}",
        headers={**admin_headers, "X-Request-ID": "req-42"},
    )
    assert answer.status_code == 404
    assert answer.headers["x-request-id"] == "req-42"
    await client.get("/health/ready")
    minted = await client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert minted.headers["x-request-id"] != "bad id with spaces"
    lines = [r for r in caplog.records if getattr(r, "action", None) == "http.request"]
    detail = next(r for r in lines if r.__dict__["request_id"] == "req-42")
    assert detail.__dict__["path"] == "/api/v1/{practiceId}/billing/invoices/{invoiceId}"
    assert str(invoice) not in detail.getMessage()
    assert detail.__dict__["status"] == 404
    assert detail.__dict__["method"] == "GET"
    assert isinstance(detail.__dict__["duration_ms"], float)
    assert detail.levelno == logging.INFO
    probe = next(r for r in lines if r.__dict__["path"] == "/health/ready")
    assert probe.levelno == logging.DEBUG  # quiet at the default INFO level
    entry = orjson.loads(JsonFormatter().format(detail))
    assert entry["request_id"] == "req-42"
    assert "\x1b[" not in JsonFormatter().format(
        logging.makeLogRecord({"msg": "\x1b[32mok\x1b[0m"})
    )


async def test_practices_are_named_through_the_api(
    client: httpx.AsyncClient, admin_headers: dict[str, str], practice_headers: dict[str, str]
) -> None:
    path = f"/api/v1/billing/practices/{PRACTICE_A}"
    assert (await client.put(path, json={"Name": "X"}, headers=practice_headers)).status_code == 403
    created = await client.put(path, json={"Name": "  Rosebank   Clinic "}, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json() == {"PracticeId": str(PRACTICE_A), "Name": "Rosebank Clinic"}
    renamed = await client.put(path, json={"Name": "Rosebank Family"}, headers=admin_headers)
    assert renamed.status_code == 200
    other = f"/api/v1/billing/practices/{uuid.uuid4()}"
    taken = await client.put(other, json={"Name": "ROSEBANK family"}, headers=admin_headers)
    assert taken.status_code == 409
    assert "Message" in taken.json()
    empty = await client.put(other, json={"Name": ""}, headers=admin_headers)
    assert empty.status_code == 400
    listed = await client.get("/api/v1/billing/practices", headers=admin_headers)
    assert {"PracticeId": str(PRACTICE_A), "Name": "Rosebank Family"} in listed.json()["Practices"]
    audit = await client.get("/api/v1/billing/audit?action=practice.name", headers=admin_headers)
    assert len(audit.json()["Items"]) == 2
