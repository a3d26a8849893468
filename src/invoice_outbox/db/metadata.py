"""The complete metadata: importing this module registers every domain's models."""

from __future__ import annotations

from invoice_outbox.admin import models as _admin_models  # noqa: F401
from invoice_outbox.auth import models as _auth_models  # noqa: F401
from invoice_outbox.db.base import Base
from invoice_outbox.sendings import documents as _documents  # noqa: F401
from invoice_outbox.sendings import models as _sending_models  # noqa: F401
from invoice_outbox.systems import models as _system_models  # noqa: F401
from invoice_outbox.web import models as _web_models  # noqa: F401

target_metadata = Base.metadata
