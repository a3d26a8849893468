"""The whole schema: importing this module registers every domain's tables.

Imported by the migrations and by `state.py`, so that foreign keys between domains resolve;
no domain module needs it.
"""

from __future__ import annotations

from invoice_outbox.admin import models as _admin_models  # noqa: F401
from invoice_outbox.auth import models as _auth_models  # noqa: F401
from invoice_outbox.db.base import Base
from invoice_outbox.practices import models as _practice_models  # noqa: F401
from invoice_outbox.sendings import documents as _documents  # noqa: F401
from invoice_outbox.sendings import models as _sending_models  # noqa: F401
from invoice_outbox.systems import models as _system_models  # noqa: F401

target_metadata = Base.metadata
