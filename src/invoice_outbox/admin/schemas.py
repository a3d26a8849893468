"""What an admin sends to resend or discard sendings: the request bodies, validated by pydantic.

The API reads them from JSON or XML (``POST …/sendings/{id}/resend``, ``…/discard``,
``api/v1/billing/resends``); the dashboard builds a `BulkResendIn` from its "Resend all"
form, so a bulk resend means the same whichever front end starts it.  Field names are the
wire's (PascalCase).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from invoice_outbox.admin.resends import MAX_SENDING_IDS, Selection
from invoice_outbox.sendings.status import SendingType, Status
from invoice_outbox.systems.schemas import Name

Reason = Annotated[str, Field(min_length=1, max_length=1000)]
StatusName = Literal["Pending", "Sending", "Sent", "Failed", "Aborted", "Cancelled"]


class ResendIn(BaseModel):
    """``POST …/sendings/{sendingId}/resend``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    Reason: Reason
    Force: bool = False


class DiscardIn(BaseModel):
    """``POST …/sendings/{sendingId}/discard``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    Reason: Reason


class FilterIn(BaseModel):
    """Which sendings, as the lists filter them.  Times need an offset (``Z`` for UTC)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    PracticeId: uuid.UUID | None = None
    System: Name | None = None
    SendingType: Literal["Invoice", "Cancellation"] | None = None
    Status: list[StatusName] | None = Field(default=None, max_length=6)
    From: AwareDatetime | None = Field(default=None, description="SendingTime from (inclusive).")
    To: AwareDatetime | None = Field(default=None, description="SendingTime before (exclusive).")
    Q: str | None = Field(default=None, max_length=200, description="Text in the Reason.")

    @field_validator("Status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value] if value else []
        return value


class BulkResendIn(BaseModel):
    """``POST api/v1/billing/resends``: give at least one of Cause, SendingIds, Filter (they
    are combined with AND), or PreviewJobId alone to run what a dry run showed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    Cause: str | None = Field(default=None, min_length=1, max_length=64)
    SendingIds: list[uuid.UUID] | None = Field(default=None, max_length=MAX_SENDING_IDS)
    Filter: FilterIn | None = None
    DryRun: bool = False
    Force: bool = False
    Reason: Reason
    PreviewJobId: uuid.UUID | None = None
    RatePerSecond: int = Field(default=500, ge=1, le=10_000)

    def selection(self) -> Selection | None:
        """The body's selection for `create_job` (None when it gives none: PreviewJobId's)."""
        given = self.Cause is not None or bool(self.SendingIds) or self.Filter is not None
        if not given:
            return None
        f = self.Filter or FilterIn()
        return Selection(
            cause=self.Cause,
            sending_ids=tuple(sorted(set(self.SendingIds or ()))),
            has_filter=self.Filter is not None,
            practice_id=f.PracticeId,
            system=f.System,
            sending_type=None if f.SendingType is None else SendingType(f.SendingType),
            statuses=tuple(sorted({Status(s) for s in f.Status or ()})),
            since=f.From,
            until=f.To,
            text=f.Q or None,
        )
