"""Documents are kept only while delivery may need them."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.retention import purge_documents
from invoice_outbox.sendings.sealing import new_document
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from tests.conftest import NOW, PRACTICE_A, fixed_keyring
from tests.factories import sending

KEEP = timedelta(days=30)


def _document(days_old: int) -> Document:
    return new_document(
        fixed_keyring(),
        practice_id=PRACTICE_A,
        invoice_id=uuid.uuid4(),
        content_type="application/json",
        body=b'{"Patient": "Jane Doe"}',
        now=NOW - timedelta(days=days_old),
    )


async def test_purges_only_what_no_delivery_needs(state: AppState, session: AsyncSession) -> None:
    old = NOW - timedelta(days=40)
    cases = {
        "sent long ago": (Status.SENT, old, 40),
        "cancelled long ago": (Status.CANCELLED, old, 40),
        "sent yesterday": (Status.SENT, NOW - timedelta(days=1), 40),
        "aborted long ago": (Status.ABORTED, old, 40),
        "failed long ago": (Status.FAILED, old, 40),
    }
    documents: dict[str, Document] = {}
    for name, (status, updated, age) in cases.items():
        documents[name] = _document(age)
        row = sending(
            status=status,
            when=old,
            practice_id=PRACTICE_A,
            overrides={"document_id": documents[name].id, "updated_at": updated},
        )
        session.add_all([documents[name], row])
    documents["replaced (orphan)"] = _document(40)
    documents["new orphan"] = _document(1)
    session.add_all([documents["replaced (orphan)"], documents["new orphan"]])
    await session.commit()

    async with state.engine.begin() as connection:
        purged = await purge_documents(connection, now=NOW, keep=KEEP)

    left = set((await session.scalars(select(Document.id))).all())
    gone = {name for name, document in documents.items() if document.id not in left}
    assert gone == {"sent long ago", "cancelled long ago", "replaced (orphan)"}
    assert purged == 3
    pointing = (await session.scalars(select(Sending.document_id))).all()
    assert sum(1 for p in pointing if p is None) == 2  # their sendings stay, without a document
