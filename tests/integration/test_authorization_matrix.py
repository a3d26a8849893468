"""Authorization matrix: every route x {admin, user of practice A, user of practice B, no token}.

`MATRIX` lists every (method, path template) the app serves with the exact status each caller
gets when acting on practice A's data.  `test_matrix_lists_every_route` fails when the app
gains a route the matrix does not list (add it here) or loses one the matrix lists.

Each case seeds its own fresh database (a system serving practice A, an invoice of A
submitted through the API, Failed / Aborted / Sent sendings of A, and an admin's dry-run
resend job), fills the path parameters with those real ids and sends a minimal valid request.
A refused call (401/403/404) must change nothing, and whatever practice B or an anonymous
caller gets back must contain none of practice A's ids or reasons.  `test_id_guessing_*`
then tries practice A's ids from practice B on every route with an id in its path.
Both engines.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from starlette.routing import Route

from invoice_outbox.admin.models import AuditEntry, ResendJob
from invoice_outbox.api.errors import DENIED
from invoice_outbox.app import create_app
from invoice_outbox.auth.principal import Role
from invoice_outbox.auth.users import add_user
from invoice_outbox.demo import behaviour
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.systems.models import System
from tests import factories
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B, build_settings, make_token
from tests.pipeline_helpers import configure_system, invoice_body, submit

SYSTEM = "MediSwitch"
TARGET = "http://127.0.0.1:9/receive"
SENT_DATE = "2026-02-05"  # NOW (16:06 UTC) in the service's zone, Africa/Johannesburg
TOKEN_USER, TOKEN_PASSWORD = "matrix-admin", "correct horse battery"
FAILED_REASON = "MediSwitch answered HTTP 503 Service Unavailable (matrix failed)"
ABORTED_REASON = "MediSwitch answered HTTP 422 invalid member number (matrix aborted)"

CALLERS = ("admin", "practice_a", "practice_b", "no_token")
HEADERS: dict[str, dict[str, str]] = {
    "admin": {"Authorization": f"Bearer {make_token(Role.ADMIN)}"},
    "practice_a": {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_A)}"},
    "practice_b": {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B)}"},
    "no_token": {},
}
# An Idempotency-Key the sandbox always accepts at once (no 503, no 8 s hang).
SANDBOX_KEY = next(k for k in (f"matrix-{i}" for i in range(100)) if behaviour(k) == "accept")


@dataclasses.dataclass(frozen=True)
class Expect:
    admin: int
    practice_a: int
    practice_b: int
    no_token: int

    def of(self, caller: str) -> int:
        code: int = getattr(self, caller)
        return code


def public(code: int = 200) -> Expect:
    return Expect(code, code, code, code)


ADMIN_ONLY = Expect(200, 403, 403, 401)
OWN_PRACTICE = Expect(200, 200, 403, 401)

# (method, path template) -> status per caller, every caller acting on practice A's data.
MATRIX: dict[tuple[str, str], Expect] = {
    ("GET", "/health"): public(),
    ("GET", "/health/ready"): public(),
    ("GET", "/metrics"): public(),
    ("POST", "/token"): public(),
    ("POST", "/sandbox/{name}"): public(),
    ("GET", "/api/v1/billing/invoices/aborted"): ADMIN_ONLY,
    ("GET", "/api/v1/billing/invoices/failed"): ADMIN_ONLY,
    # Every caller is scoped to its own practices: B gets 200 with none of A's rows.
    ("GET", "/api/v1/billing/invoices/sent/sentDate/{sentDate}"): Expect(200, 200, 200, 401),
    ("POST", "/api/v1/billing/invoices/retryallfailed"): ADMIN_ONLY,
    ("POST", "/api/v1/{practiceid}/billing/invoices/{invoiceId}/cancel"): OWN_PRACTICE,
    ("GET", "/api/v1/billing/sendings"): Expect(200, 200, 200, 401),
    ("GET", "/api/v1/{practiceId}/billing/invoices"): OWN_PRACTICE,
    ("POST", "/api/v1/{practiceId}/billing/invoices"): Expect(202, 202, 403, 401),
    ("POST", "/api/v1/{practiceId}/billing/invoices/batch"): OWN_PRACTICE,
    ("GET", "/api/v1/billing/causes"): ADMIN_ONLY,
    # Another practice's sending answers 404, exactly as a missing one.
    ("POST", "/api/v1/billing/sendings/{sendingId}/resend"): Expect(200, 200, 404, 401),
    ("POST", "/api/v1/billing/sendings/{sendingId}/discard"): Expect(200, 200, 404, 401),
    ("GET", "/api/v1/billing/resends"): ADMIN_ONLY,
    ("POST", "/api/v1/billing/resends"): Expect(202, 403, 403, 401),
    ("GET", "/api/v1/billing/resends/{jobId}"): ADMIN_ONLY,
    ("GET", "/api/v1/billing/audit"): ADMIN_ONLY,
    ("GET", "/api/v1/{practiceId}/billing/invoices/{invoiceId}"): OWN_PRACTICE,
    ("GET", "/api/v1/billing/systems/{name}"): ADMIN_ONLY,
    ("PUT", "/api/v1/billing/systems/{name}"): ADMIN_ONLY,
    ("GET", "/api/v1/billing/systems"): ADMIN_ONLY,
    # Naming a practice: the first name creates it (201).
    ("PUT", "/api/v1/billing/practices/{practiceId}"): Expect(201, 403, 403, 401),
    ("GET", "/api/v1/billing/practices"): ADMIN_ONLY,
    ("GET", "/api/v1/billing/rejections"): ADMIN_ONLY,
    ("GET", "/api/v1/billing/systems/{name}/rejections"): ADMIN_ONLY,
    ("PUT", "/api/v1/billing/systems/{name}/rejections/{code}"): Expect(201, 403, 403, 401),
    # No override exists in the seed: the admin learns that (404), others nothing.
    ("DELETE", "/api/v1/billing/systems/{name}/rejections/{code}"): Expect(404, 403, 403, 401),
    # The recipient system itself, by signature: no caller here signs, so all get 401.
    ("POST", "/api/v1/billing/acknowledgements/{system}"): public(401),
}
#: Routes whose callers authenticate by a Standard Webhooks signature, not a bearer token.
SIGNED_ROUTES = {("POST", "/api/v1/billing/acknowledgements/{system}")}
SANDBOX_ONLY = {("POST", "/sandbox/{name}")}
# Served outside the OpenAPI schema; anyone may read them.
DOCS_ROUTES = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """conftest's settings with the demo sandbox on, so its route is in the matrix too."""
    return build_settings(database_url, tmp_path, sandbox=True)


# Seed ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seed:
    invoice_id: uuid.UUID
    encounter_id: uuid.UUID
    pending_id: uuid.UUID  # the submitted invoice's sending
    failed_id: uuid.UUID
    aborted_id: uuid.UUID
    sent_id: uuid.UUID
    job_id: uuid.UUID
    other_invoice_ids: tuple[uuid.UUID, ...]
    other_encounter_ids: tuple[uuid.UUID, ...]

    def secrets(self) -> list[str]:
        """What nobody outside practice A (and the admins) may learn."""
        ids = [
            PRACTICE_A,
            self.invoice_id,
            self.encounter_id,
            self.pending_id,
            self.failed_id,
            self.aborted_id,
            self.sent_id,
            *self.other_invoice_ids,
            *self.other_encounter_ids,
        ]
        return [str(i) for i in ids] + [FAILED_REASON, ABORTED_REASON]


async def seed(client: httpx.AsyncClient, state: AppState, *, with_user: bool = False) -> Seed:
    admin = HEADERS["admin"]
    await configure_system(client, admin, SYSTEM, TARGET)
    body = invoice_body()
    submitted = await submit(client, admin, body)
    assert submitted.status_code == 202
    earlier = NOW - timedelta(hours=1)
    failed = factories.sending(
        status=Status.FAILED,
        when=earlier,
        practice_id=PRACTICE_A,
        reason=FAILED_REASON,
        attempts=3,
        overrides={"cause": "http-503", "next_attempt_at": NOW + timedelta(hours=2)},
    )
    aborted = factories.sending(
        status=Status.ABORTED,
        when=earlier,
        practice_id=PRACTICE_A,
        reason=ABORTED_REASON,
        attempts=1,
        overrides={"cause": "http-422"},
    )
    sent = factories.sending(
        status=Status.SENT,
        when=earlier,
        practice_id=PRACTICE_A,
        attempts=1,
        overrides={"sent_at": NOW - timedelta(minutes=5)},
    )
    async with state.sessions() as session:
        session.add_all([failed, aborted, sent])
        if with_user:
            await add_user(
                session, name=TOKEN_USER, password=TOKEN_PASSWORD, role=Role.ADMIN, now=NOW
            )
        await session.commit()
        pending_id = await session.scalar(
            select(Sending.id).where(Sending.invoice_id == uuid.UUID(body["InvoiceId"]))
        )
    assert pending_id is not None
    dry_run = await client.post(
        "/api/v1/billing/resends",
        json={"Cause": "http-503", "DryRun": True, "Reason": "matrix seed"},
        headers=admin,
    )
    assert dry_run.status_code == 202, dry_run.text
    return Seed(
        invoice_id=uuid.UUID(body["InvoiceId"]),
        encounter_id=uuid.UUID(body["EncounterId"]),
        pending_id=pending_id,
        failed_id=failed.id,
        aborted_id=aborted.id,
        sent_id=sent.id,
        job_id=uuid.UUID(dry_run.json()["Data"]["JobId"]),
        other_invoice_ids=(failed.invoice_id, aborted.invoice_id, sent.invoice_id),
        other_encounter_ids=(failed.encounter_id, aborted.encounter_id, sent.encounter_id),
    )


async def snapshot(state: AppState) -> dict[str, Any]:
    """Everything a refused call must leave as it was."""
    async with state.sessions() as session:
        sendings = (
            await session.execute(
                select(
                    Sending.id,
                    Sending.status,
                    Sending.reason,
                    Sending.attempts,
                    Sending.next_attempt_at,
                    Sending.updated_at,
                ).order_by(Sending.id)
            )
        ).all()
        systems = (
            await session.execute(
                select(System.name, System.settings, System.timeout_seconds, System.enabled)
            )
        ).all()
        audit = await session.scalar(select(func.count()).select_from(AuditEntry))
        jobs = await session.scalar(select(func.count()).select_from(ResendJob))
    return {
        "sendings": [tuple(r) for r in sendings],
        "systems": [tuple(r) for r in systems],
        "audit": audit,
        "jobs": jobs,
    }


# Requests --------------------------------------------------------------------------------


def request_for(method: str, template: str, seed_: Seed) -> tuple[str, dict[str, Any]]:
    """The URL (path parameters filled with practice A's real ids) and a minimal valid body."""
    url = _fill(template, seed_)
    kwargs: dict[str, Any] = {}
    if (method, template) == ("POST", "/token"):
        kwargs["data"] = {
            "grant_type": "password",
            "username": TOKEN_USER,
            "password": TOKEN_PASSWORD,
        }
    elif (method, template) == ("POST", "/sandbox/{name}"):
        kwargs["json"] = {"Invoice": "matrix"}
        kwargs["headers"] = {"Idempotency-Key": SANDBOX_KEY, "X-Attempt": "1"}
    elif template.endswith(("/resend", "/discard")):
        kwargs["json"] = {"Reason": "x"}
    elif (method, template) == ("POST", "/api/v1/billing/resends"):
        kwargs["json"] = {"Cause": "http-503", "DryRun": True, "Reason": "x"}
    elif (method, template) == ("POST", "/api/v1/{practiceId}/billing/invoices"):
        kwargs["content"] = orjson.dumps(invoice_body())
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif (method, template) == ("PUT", "/api/v1/billing/practices/{practiceId}"):
        kwargs["json"] = {"Name": "Matrix Family Practice"}
    elif (method, template) == ("POST", "/api/v1/{practiceId}/billing/invoices/batch"):
        kwargs["content"] = orjson.dumps([invoice_body()])
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif template.endswith("/rejections/{code}") and method == "PUT":
        kwargs["json"] = {
            "Label": "Matrix label",
            "Meaning": "m",
            "Fix": "f",
            "WhoMustAct": "practice",
            "ResendHelps": False,
        }
    elif template.startswith("/api/v1/billing/acknowledgements/"):
        kwargs["json"] = {"IdempotencyKey": "x", "Accepted": True}
    elif method == "PUT":
        kwargs["json"] = {
            "Channel": "Http",
            "Url": TARGET,
            "Practices": [str(PRACTICE_A)],
            "TimeoutSeconds": 7.0,
        }
    return url, kwargs


def _fill(template: str, seed_: Seed) -> str:
    sending_id = seed_.aborted_id if template.endswith("/discard") else seed_.failed_id
    return (
        template.replace("{practiceId}", str(PRACTICE_A))
        .replace("{practiceid}", str(PRACTICE_A))
        .replace("{invoiceId}", str(seed_.invoice_id))
        .replace("{sendingId}", str(sending_id))
        .replace("{jobId}", str(seed_.job_id))
        .replace("{name}", SYSTEM)
        .replace("{system}", SYSTEM)
        .replace("{code}", "04")
        .replace("{sentDate}", SENT_DATE)
    )


async def call(
    client: httpx.AsyncClient, method: str, url: str, caller: str, kwargs: Mapping[str, Any]
) -> httpx.Response:
    extra = dict(kwargs)
    headers = {**extra.pop("headers", {}), **HEADERS[caller]}
    return await client.request(method, url, headers=headers, **extra)


def assert_no_leak(response: httpx.Response, secrets: list[str], sent_url: str) -> None:
    """None of practice A's ids or reasons in the body, except ids the caller itself sent."""
    text = response.text
    leaked = [s for s in secrets if s in text and s not in sent_url]
    assert not leaked, f"{response.status_code} {text[:500]}"


def assert_denied(response: httpx.Response, expected: int) -> None:
    if expected in (401, 403):
        assert response.json() == {"Message": DENIED}, response.text
    if expected == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers


# The matrix ------------------------------------------------------------------------------


def test_matrix_lists_every_route(tmp_path: Path) -> None:
    """The app's routes (with and without the sandbox) are exactly the matrix's."""

    def operations(app: FastAPI) -> set[tuple[str, str]]:
        paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
        return {(method.upper(), path) for path, ops in paths.items() for method in ops}

    url = f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"
    with_sandbox = create_app(build_settings(url, tmp_path, sandbox=True))
    without = create_app(build_settings(url, tmp_path, sandbox=False))
    listed = set(MATRIX)
    served = operations(with_sandbox)
    assert served - listed == set(), "routes missing from MATRIX: add them with expected codes"
    assert listed - served == set(), "MATRIX lists routes the app does not serve"
    assert operations(without) == listed - SANDBOX_ONLY
    hidden = {
        r.path
        for r in with_sandbox.router.routes
        if isinstance(r, Route) and not r.include_in_schema
    }
    assert hidden == set(DOCS_ROUTES)


CASES = [
    pytest.param(method, template, caller, id=f"{method} {template}-{caller}")
    for (method, template) in MATRIX
    for caller in CALLERS
]


@pytest.mark.parametrize(("method", "template", "caller"), CASES)
async def test_route_caller(
    client: httpx.AsyncClient, state: AppState, method: str, template: str, caller: str
) -> None:
    seeded = await seed(client, state, with_user=template == "/token")
    expected = MATRIX[(method, template)].of(caller)
    url, kwargs = request_for(method, template, seeded)
    before = await snapshot(state)

    response = await call(client, method, url, caller, kwargs)

    assert response.status_code == expected, response.text
    if expected in (401, 403, 404):
        if (method, template) in SIGNED_ROUTES:
            assert "not signed" in response.json()["Message"], response.text
            assert response.headers["WWW-Authenticate"].startswith("Signature")
        else:
            assert_denied(response, expected)
        assert await snapshot(state) == before, "a refused call changed something"
    if caller in ("practice_b", "no_token"):
        assert_no_leak(response, seeded.secrets(), url)


@pytest.mark.parametrize("path", DOCS_ROUTES)
async def test_docs_are_public(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text


# Id guessing -----------------------------------------------------------------------------


async def test_id_guessing_from_another_practice_reveals_and_changes_nothing(
    client: httpx.AsyncClient, state: AppState
) -> None:
    """Practice B tries practice A's ids on every route with an id in its path: each answer
    is 403, or a 404 identical to the one for an id that exists nowhere."""
    seeded = await seed(client, state)
    before = await snapshot(state)
    secrets = seeded.secrets()
    random_id = uuid.uuid4()
    sendings = (seeded.pending_id, seeded.failed_id, seeded.aborted_id, seeded.sent_id)
    invoices = (seeded.invoice_id, *seeded.other_invoice_ids)

    async def b(method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await call(client, method, url, "practice_b", kwargs)
        assert_no_leak(response, secrets, url)
        return response

    async def like_missing(
        method: str, template: str, guessed: uuid.UUID, code: int = 404, **kw: Any
    ) -> None:
        """`code`, with the very body a never-issued id gets (the id itself aside)."""
        guess = await b(method, template.format(guessed), **kw)
        missing = await b(method, template.format(random_id), **kw)
        assert guess.status_code == missing.status_code == code, (guess.text, missing.text)
        assert guess.text.replace(str(guessed), "<id>") == missing.text.replace(
            str(random_id), "<id>"
        )

    for sending_id in sendings:
        resend = "/api/v1/billing/sendings/{}/resend"
        await like_missing("POST", resend, sending_id, json={"Reason": "x"})
        # Forcing is for admins: refused before the id is even looked up.
        await like_missing("POST", resend, sending_id, 403, json={"Reason": "x", "Force": True})
        await like_missing(
            "POST", "/api/v1/billing/sendings/{}/discard", sending_id, json={"Reason": "x"}
        )
    for invoice_id in invoices:
        # Under its own practice id: as if the invoice did not exist.
        await like_missing("GET", f"/api/v1/{PRACTICE_B}/billing/invoices/{{}}", invoice_id)
        await like_missing("POST", f"/api/v1/{PRACTICE_B}/billing/invoices/{{}}/cancel", invoice_id)
        # Under practice A's id: refused outright.
        for method, url in (
            ("GET", f"/api/v1/{PRACTICE_A}/billing/invoices/{invoice_id}"),
            ("POST", f"/api/v1/{PRACTICE_A}/billing/invoices/{invoice_id}/cancel"),
        ):
            response = await b(method, url)
            assert response.status_code == 403, response.text
            assert_denied(response, 403)
    forbidden: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/v1/billing/resends/{seeded.job_id}", {}),
        ("GET", f"/api/v1/billing/systems/{SYSTEM}", {}),
        (
            "PUT",
            f"/api/v1/billing/systems/{SYSTEM}",
            {"json": {"Channel": "Http", "Url": TARGET, "Practices": [str(PRACTICE_B)]}},
        ),
        ("GET", f"/api/v1/{PRACTICE_A}/billing/invoices", {}),
        (
            "POST",
            f"/api/v1/{PRACTICE_A}/billing/invoices",
            {"json": invoice_body(seeded.invoice_id, seeded.encounter_id)},
        ),
        ("GET", f"/api/v1/billing/sendings?practiceId={PRACTICE_A}", {}),
        ("GET", f"/api/v1/billing/invoices/sent/sentDate/{SENT_DATE}?practiceId={PRACTICE_A}", {}),
        ("GET", f"/api/v1/billing/audit?practiceId={PRACTICE_A}", {}),
        ("GET", f"/api/v1/billing/causes?practiceId={PRACTICE_A}", {}),
        ("GET", f"/api/v1/billing/invoices/aborted?practiceId={PRACTICE_A}", {}),
        ("PUT", f"/api/v1/billing/practices/{PRACTICE_A}", {"json": {"Name": "Taken over"}}),
        ("GET", "/api/v1/billing/practices", {}),
    ]
    for method, url, kwargs in forbidden:
        response = await b(method, url, **kwargs)
        assert response.status_code == 403, (method, url, response.text)
        assert_denied(response, 403)
    # Lists scoped to practice B: 200, and none of A's rows (assert_no_leak in `b`).
    for url in (
        "/api/v1/billing/sendings",
        f"/api/v1/billing/invoices/sent/sentDate/{SENT_DATE}",
        f"/api/v1/{PRACTICE_B}/billing/invoices",
    ):
        assert (await b("GET", url)).status_code == 200
    assert await snapshot(state) == before, "practice B changed practice A's data"
    # The admin does see A's rows on the same lists, so the leak check above can fail.
    admin_view = await call(client, "GET", "/api/v1/billing/sendings", "admin", {})
    assert str(seeded.failed_id) in admin_view.text
    admin_sent = await call(
        client, "GET", f"/api/v1/billing/invoices/sent/sentDate/{SENT_DATE}", "admin", {}
    )
    assert str(seeded.other_invoice_ids[2]) in admin_sent.text


async def test_submitting_another_practices_invoice_id_is_refused_without_its_data(
    client: httpx.AsyncClient, state: AppState
) -> None:
    """Invoice ids are global: practice B (served by the same system) reusing A's invoice id
    gets 409 naming only the id it sent, and A's invoice is untouched."""
    seeded = await seed(client, state)
    await configure_system(
        client, HEADERS["admin"], SYSTEM, TARGET, practices=(PRACTICE_A, PRACTICE_B)
    )
    before = await snapshot(state)
    url = f"/api/v1/{PRACTICE_B}/billing/invoices"
    response = await submit(
        client,
        HEADERS["practice_b"],
        invoice_body(seeded.invoice_id),
        practice=PRACTICE_B,
        expect=None,
    )
    assert response.status_code == 409, response.text
    assert_no_leak(response, seeded.secrets(), url + str(seeded.invoice_id))
    assert await snapshot(state) == before
    fresh = await submit(client, HEADERS["practice_b"], invoice_body(), practice=PRACTICE_B)
    assert str(PRACTICE_A) not in fresh.text
