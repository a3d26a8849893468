"""``invoice-outbox import FILE`` as an operator runs it: a real process on a real database.

Both engines; the same rules as the API (a re-import creates nothing; refused lines go to the
rejected file with reasons, in file order, and can be fixed and imported again).
"""

from __future__ import annotations

import csv
import os
import pty
import select
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, func
from sqlalchemy import select as sql_select

from invoice_outbox.db.urls import normalise_database_url
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.models import Sending
from tests.conftest import PRACTICE_A, PRACTICE_B, TEST_DOCUMENT_KEYS, fixed_keyring
from tests.pipeline_helpers import opened

BIN = Path(sys.executable).parent / "invoice-outbox"


def _env(database_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_OUTBOX_")}
    return {
        **clean,
        "INVOICE_OUTBOX_DATABASE_URL": database_url,
        "INVOICE_OUTBOX_DOCUMENT_KEYS": TEST_DOCUMENT_KEYS,
        "INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS": "true",  # the system is on loopback, never called
    }


def _cli(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        env=_env(database_url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _invoice(practice: uuid.UUID, **fields: Any) -> dict[str, Any]:
    return {
        "PracticeId": str(practice),
        "InvoiceId": str(uuid.uuid4()),
        "EncounterId": str(uuid.uuid4()),
        "Document": {"Lines": [{"Code": "0190"}]},
        **fields,
    }


def _rows(database_url: str) -> tuple[int, int]:
    engine = create_engine(normalise_database_url(database_url).sync_url)
    try:
        with engine.connect() as connection:
            sendings = connection.scalar(sql_select(func.count()).select_from(Sending))
            documents = connection.scalar(sql_select(func.count()).select_from(Document))
            return int(sendings or 0), int(documents or 0)
    finally:
        engine.dispose()


@pytest.fixture
def configured(database_url: str, tmp_path: Path) -> str:
    spec = {
        "Channel": "Http",
        "Url": "http://127.0.0.1:9/in",
        "Practices": [str(PRACTICE_A), str(PRACTICE_B)],
    }
    put = _cli(
        database_url, tmp_path, "system", "put", "MediSwitch", "--json", orjson.dumps(spec).decode()
    )
    assert put.returncode == 0, put.stderr
    return database_url


def test_jsonl_import_takes_every_good_line_rejects_the_rest_and_resumes(
    configured: str, tmp_path: Path
) -> None:
    good = [_invoice(PRACTICE_A, Document={"n": n}) for n in range(5)]
    good += [_invoice(PRACTICE_B, Document={"n": n}) for n in range(3)]
    unknown = _invoice(PRACTICE_A, Systems=["Nope"])
    foreign = {**good[0], "PracticeId": str(PRACTICE_B), "Document": {"other": 1}}
    lines = [orjson.dumps(item).decode() for item in good[:4]]
    lines += ["{not json", orjson.dumps(unknown).decode(), "", orjson.dumps(foreign).decode()]
    lines += [orjson.dumps(item).decode() for item in good[4:]]
    path = tmp_path / "invoices.jsonl"
    path.write_text("\n".join(lines) + "\n")

    first = _cli(configured, tmp_path, "import", str(path))

    assert first.returncode == 1, first.stderr
    assert "Accepted 8, Duplicate 0, Corrected 0, Conflict 2, Invalid 1" in first.stdout
    rejected_path = tmp_path / "invoices.rejected.jsonl"
    assert str(rejected_path) in first.stdout
    rejected = [orjson.loads(line) for line in rejected_path.read_text().splitlines()]
    assert [(r["_Rejected"]["Line"], r["_Rejected"]["Outcome"]) for r in rejected] == [
        (5, "Invalid"),
        (6, "Conflict"),  # an unknown system: the configuration refuses it (the API's 409)
        (8, "Conflict"),
    ]
    assert rejected[0]["_Text"] == "{not json"
    assert "unknown system(s): Nope" in rejected[1]["_Rejected"]["Reason"]
    assert "another practice" in rejected[2]["_Rejected"]["Reason"]
    assert _rows(configured) == (8, 8)

    again = _cli(configured, tmp_path, "import", str(path))

    assert "Accepted 0, Duplicate 8, Corrected 0, Conflict 2, Invalid 1" in again.stdout
    assert _rows(configured) == (8, 8)  # resumable: a second run creates nothing

    # The rejected file, fixed where it can be, imports as it is (its _Rejected is ignored).
    fixed = [{**r, "Systems": ["MediSwitch"]} if "Systems" in r else r for r in rejected]
    rejected_path.write_text("\n".join(orjson.dumps(r).decode() for r in fixed) + "\n")
    retry = _cli(configured, tmp_path, "import", str(rejected_path))
    assert "Accepted 1, Duplicate 0, Corrected 0, Conflict 1, Invalid 1" in retry.stdout
    assert _rows(configured) == (9, 9)


def test_csv_import_reads_json_and_xml_documents(configured: str, tmp_path: Path) -> None:
    path = tmp_path / "invoices.csv"
    json_invoice, xml_invoice = uuid.uuid4(), uuid.uuid4()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["InvoiceId", "PracticeId", "EncounterId", "Systems", "Document"])
        writer.writerow(
            [json_invoice, PRACTICE_A, uuid.uuid4(), "MediSwitch", '{"Total": "1.00",\n"x": 1}']
        )
        writer.writerow([xml_invoice, PRACTICE_B, uuid.uuid4(), "", "<Claim><T>2</T></Claim>"])
        writer.writerow([uuid.uuid4(), PRACTICE_A, "not-a-guid", "", "{}"])

    first = _cli(configured, tmp_path, "import", str(path))

    assert "Accepted 2, Duplicate 0, Corrected 0, Conflict 0, Invalid 1" in first.stdout, first
    with (tmp_path / "invoices.rejected.csv").open(newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert (row["Line"], row["Outcome"]) == ("5", "Invalid")  # the JSON document spans 2 lines
    assert "EncounterId" in row["Reason"]
    engine = create_engine(normalise_database_url(configured).sync_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(
                sql_select(Document.__table__).join(Sending, Sending.document_id == Document.id)
            ).all()
    finally:
        engine.dispose()
    keyring = fixed_keyring()
    bodies = {row.invoice_id.hex: opened(keyring, row) for row in stored}
    assert bodies[json_invoice.hex] == b'{"Total":"1.00","x":1}'  # as the API stores JSON
    assert bodies[xml_invoice.hex] == b"<Claim><T>2</T></Claim>"
    again = _cli(configured, tmp_path, "import", str(path))
    assert "Accepted 0, Duplicate 2" in again.stdout


def test_a_csv_without_the_header_is_refused_in_one_line(configured: str, tmp_path: Path) -> None:
    path = tmp_path / "invoices.csv"
    path.write_text("InvoiceId,Document\n1,{}\n")
    result = _cli(configured, tmp_path, "import", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: the CSV header lacks PracticeId, EncounterId, Systems")


def test_the_progress_bar_shows_rate_and_time_left_on_a_terminal(
    configured: str, tmp_path: Path
) -> None:
    path = tmp_path / "invoices.jsonl"
    items = [_invoice(PRACTICE_A, Document={"n": n}) for n in range(300)]
    path.write_text("\n".join(orjson.dumps(i).decode() for i in items) + "\n")
    controller, terminal = pty.openpty()
    env = {**_env(configured), "COLUMNS": "160", "TERM": "xterm"}
    process = subprocess.Popen(
        [str(BIN), "import", str(path), "--batch-size", "50"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        cwd=tmp_path,
    )
    os.close(terminal)
    screen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    assert process.wait(timeout=60) == 0
    os.close(controller)
    shown = screen.decode(errors="replace")
    assert "300/300" in shown
    assert "lines/s" in shown
    assert "left" in shown
    assert "Accepted 300" in shown
