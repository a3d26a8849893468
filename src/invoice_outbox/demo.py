"""Demo data: practices, systems and sendings in every status with believable histories.

The reasons are the kind an administrator meets in real life (a switch answering 503, timeouts,
a rejected member number, a mailbox refusing a message) and carry no patient data.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.practices.service import set_name
from invoice_outbox.sendings.intake import Submission, submit_all
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.sealing import new_document
from invoice_outbox.sendings.status import SendingType, Status
from invoice_outbox.sendings.transitions import demo_sending
from invoice_outbox.systems.acceptance import AcceptanceIn, AcceptanceMode
from invoice_outbox.systems.directory import SystemsDirectory
from invoice_outbox.systems.schemas import SystemIn
from invoice_outbox.systems.service import put_system

SEED = 20260205
#: The demo practices' names (made up).
PRACTICE_NAMES = ("Rosebank Family Practice", "Sea Point Medical Centre", "Parkview Paediatrics")


def _secret() -> SecretStr:
    """A fresh Standard Webhooks secret (the demo's own; never printed)."""
    return SecretStr("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())


@dataclass(frozen=True, slots=True)
class Failure:
    outcome: str  # Retryable or Permanent
    code: int | None
    reason: str
    cause: str


FAILURES = {
    "MediSwitch": [
        Failure("Retryable", 503, "MediSwitch answered HTTP 503 Service Unavailable", "http-503"),
        Failure(
            "Permanent",
            422,
            "MediSwitch rejected the claim: invalid medical-aid member number",
            "rejected-member-number",
        ),
    ],
    "PracticeLedger": [
        Failure("Retryable", None, "Timed out after 30 s waiting for PracticeLedger", "timeout"),
        Failure(
            "Retryable",
            None,
            "PracticeLedger refused the connection (is it running?)",
            "connection-refused",
        ),
    ],
    "Accounts mailbox": [
        Failure(
            "Permanent",
            550,
            "The mailbox refused the message: SMTP 550 5.1.1 recipient address rejected",
            "smtp-550",
        ),
        Failure(
            "Retryable",
            451,
            "The mail server deferred the message: SMTP 451 try again later",
            "smtp-451",
        ),
    ],
}
SYSTEMS = tuple(FAILURES)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


async def has_sendings(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(Sending)))


def _history(
    rng: random.Random, status: Status, system: str, created: datetime
) -> tuple[list[tuple[Failure | None, int | None]], datetime]:
    """Outcomes of the attempts a sending in `status` would have had, and the last attempt time."""
    failures = FAILURES[system]
    retryable = [f for f in failures if f.outcome == "Retryable"]
    permanent = [f for f in failures if f.outcome == "Permanent"]
    if status is Status.PENDING:
        return [], created
    if status is Status.SENT:
        tries = [(rng.choice(retryable), None) for _ in range(rng.choice([0, 0, 0, 1, 2]))]
        return [*tries, (None, 200 if system != "Accounts mailbox" else 250)], created
    if status is Status.FAILED:
        return [(rng.choice(retryable), None) for _ in range(rng.randint(1, 4))], created
    if status is Status.ABORTED:
        if permanent and rng.random() < 0.5:
            return [(rng.choice(permanent), None)], created
        return [(rng.choice(retryable), None) for _ in range(8)], created
    # Cancelled and Sending: a first attempt failed, then the invoice was cancelled / is in flight.
    return [(rng.choice(retryable), None)], created


def _invoice_number(invoice_id: uuid.UUID) -> str:
    """A practice-style invoice number (the same one the demo document carries)."""
    return f"INV-{invoice_id.hex[:8].upper()}"


def demo_document(rng: random.Random, invoice_id: uuid.UUID) -> bytes:
    """A made-up invoice (no real person's data)."""
    lines = [
        {
            "Tariff": rng.choice(["0190", "0191", "0141", "3587"]),
            "Amount": f"{rng.randint(300, 2500)}.00",
        }
        for _ in range(rng.randint(1, 3))
    ]
    return orjson.dumps(
        {
            "InvoiceNumber": _invoice_number(invoice_id),
            "Patient": "Demo Patient",
            "MemberNumber": str(rng.randint(10**8, 10**9)),
            "Lines": lines,
        }
    )


async def configure_demo_systems(
    session: AsyncSession, practice_ids: list[uuid.UUID], sandbox_url: str, now: datetime
) -> None:
    """MediSwitch and PracticeLedger deliver to the sandbox; the mailbox is disabled (no SMTP)."""
    base = sandbox_url.rstrip("/")
    specs = {
        "MediSwitch": SystemIn(
            Channel="Http",
            Url=f"{base}/mediswitch",
            TimeoutSeconds=5,
            Practices=practice_ids,
            # Every delivery signed; the sandbox answers like a switch: a verdict in the body,
            # or "pending" and a signed acknowledgement later (or never: Overdue after 30 s).
            SigningSecret=_secret(),
            Acceptance=AcceptanceIn(
                Mode=AcceptanceMode.RESPONSE,
                Kind="switch",
                Secret=_secret(),
                Within=30,
                CodePointer="/result/code",
                MessagePointer="/result/message",
                ReferencePointer="/claimRef",
                Accepted=["00"],
                Pending=["P1"],
            ),
        ),
        "PracticeLedger": SystemIn(
            Channel="Http",
            Url=f"{base}/practiceledger",
            TimeoutSeconds=5,
            Practices=practice_ids[:2],
        ),
        "Accounts mailbox": SystemIn(
            Channel="Email",
            Host="127.0.0.1",
            Port=2525,
            Sender="billing@practice.example",
            Recipient="accounts@practice.example",
            StartTls=False,
            Enabled=False,
            Practices=[],
        ),
    }
    for name, spec in specs.items():
        await put_system(session, name, spec, now=now)


def behaviour(idempotency_key: str) -> str:
    """Which behaviour of the demo switch (`api.sandbox`) a sending meets: accept, blip, down,
    slow, reject, later (acknowledged later) or never (never acknowledged); stable across its
    attempts, since it is read from a hash of its idempotency key."""
    bucket = hashlib.sha256(idempotency_key.encode()).digest()[0] % 20
    for limit, kind in (
        (10, "accept"),
        (12, "blip"),
        (13, "down"),
        (14, "slow"),
        (16, "reject"),
        (19, "later"),
    ):
        if bucket < limit:
            return kind
    return "never"


#: What the demo's live invoices to MediSwitch meet, in turn: every verdict shows within a
#: minute of `make run`, whatever keys chance would have drawn.
SWITCH_PLAN = ("accept", "later", "reject", "accept", "never", "blip", "accept", "later", "reject")


def key_for(kind: str, rng: random.Random) -> str:
    """An idempotency key (32 hex digits, as intake makes them) that meets `kind`."""
    while True:
        key = f"{rng.getrandbits(128):032x}"
        if behaviour(key) == kind:
            return key


async def submit_live_invoices(
    session: AsyncSession,
    practice_ids: list[uuid.UUID],
    now: datetime,
    per_practice: int,
    keyring: Keyring,
) -> int:
    """Submit new invoices through intake, for the worker to deliver to the sandbox."""
    rng = random.Random(SEED + 1)  # noqa: S311 -- reproducible demo data, not secrets
    submissions = []
    for practice_id in practice_ids:
        for _ in range(per_practice):
            invoice_id = uuid.uuid4()
            submissions.append(
                Submission(
                    practice_id=practice_id,
                    invoice_id=invoice_id,
                    encounter_id=uuid.uuid4(),
                    document=demo_document(rng, invoice_id),
                    content_type="application/json",
                    invoice_number=_invoice_number(invoice_id),
                )
            )
    connection = await session.connection()
    results = await submit_all(
        connection, SystemsDirectory(), submissions, now=now, keyring=keyring
    )
    # The MediSwitch sandbox answers by the idempotency key: meet each switch behaviour in
    # turn (accepted, acknowledged later, rejected, never acknowledged, a blip).
    count = 0
    for result in results:
        for row in result.sendings:
            if row.system == "MediSwitch":
                plan = SWITCH_PLAN[count % len(SWITCH_PLAN)]
                await session.execute(
                    update(Sending)
                    .where(Sending.id == row.id)
                    .values(idempotency_key=key_for(plan, rng))
                )
        count += 1 if result.sendings else 0
    return count


async def load_demo(
    session: AsyncSession,
    *,
    now: datetime,
    sandbox_url: str,
    keyring: Keyring,
    practices: int = 3,
    invoices_per_practice: int = 14,
    live_per_practice: int = 8,
) -> list[uuid.UUID]:
    """Insert the demo set: systems, a delivery history, live invoices.  Returns practice ids."""
    rng = random.Random(SEED)  # noqa: S311 -- reproducible demo data, not secrets
    practice_ids = [_uuid(rng) for _ in range(practices)]
    for index, practice_id in enumerate(practice_ids):
        name = PRACTICE_NAMES[index % len(PRACTICE_NAMES)]
        await set_name(
            session, practice_id, f"{name} {index // 3 + 1}" if index >= 3 else name, now=now
        )
    await configure_demo_systems(session, practice_ids, sandbox_url, now)
    statuses = (
        [Status.SENT] * 5
        + [Status.FAILED] * 3
        + [Status.ABORTED] * 4
        + [Status.PENDING, Status.CANCELLED, Status.SENDING]
    )
    for practice_id in practice_ids:
        for _ in range(invoices_per_practice):
            invoice_id, encounter_id = _uuid(rng), _uuid(rng)
            created = now - timedelta(hours=rng.uniform(1, 96))
            for system in rng.sample(SYSTEMS, rng.randint(1, 2)):
                status = rng.choice(statuses)
                sending = demo_sending(
                    status,
                    id=_uuid(rng),
                    practice_id=practice_id,
                    encounter_id=encounter_id,
                    invoice_id=invoice_id,
                    system=system,
                    sending_type=SendingType.INVOICE.value,
                    invoice_number=_invoice_number(invoice_id),
                    attempts=0,
                    sending_time=created,
                    idempotency_key=_uuid(rng).hex,
                    created_at=created,
                    updated_at=created,
                )
                body = demo_document(rng, invoice_id)
                document = new_document(
                    keyring,
                    practice_id=practice_id,
                    invoice_id=invoice_id,
                    content_type="application/json",
                    body=body,
                    now=created,
                    document_id=_uuid(rng),
                )
                sending.document_id = document.id
                session.add_all([document, sending])
                _add_attempts(rng, sending, _history(rng, status, system, created)[0], now)
    await session.flush()
    await submit_live_invoices(session, practice_ids, now, live_per_practice, keyring)
    return practice_ids


def _add_attempts(
    rng: random.Random,
    sending: Sending,
    history: list[tuple[Failure | None, int | None]],
    now: datetime,
) -> None:
    when = sending.created_at
    last: Failure | None = None
    for number, (failure, ok_code) in enumerate(history, start=1):
        when = min(when + timedelta(minutes=rng.choice([0, 1, 5, 30, 120])), now)
        duration = 30_000 if failure and failure.cause == "timeout" else rng.randint(40, 900)
        sending.attempt_history.append(
            Attempt(
                number=number,
                started_at=when,
                duration_ms=duration,
                outcome="Sent" if failure is None else failure.outcome,
                code=ok_code if failure is None else failure.code,
                reason=None if failure is None else failure.reason,
                worker="demo",
            )
        )
        last = failure
    sending.attempts = len(history)
    sending.round_attempts = len(history)
    sending.sending_time = when
    status = Status(sending.status)
    if status is Status.SENT:
        sending.sent_at = when
    elif last is not None:
        sending.reason, sending.cause = last.reason, last.cause
    if status is Status.FAILED:
        sending.next_attempt_at = now + timedelta(minutes=rng.choice([5, 30, 120]))
    elif status is Status.PENDING:
        sending.next_attempt_at = now
        sending.round_attempts = sending.attempts
    elif status is Status.SENDING:
        # The attempt in flight has no record yet: its worker "died" (the lease has expired).
        sending.attempts += 1
        sending.round_attempts += 1
        sending.lease_owner, sending.lease_expires_at = "demo", now - timedelta(minutes=1)
    sending.updated_at = when
