"""What an admin sends to resend or discard sendings: the request bodies, validated by pydantic.

The API reads them from JSON or XML (``POST …/sendings/{id}/resend``, ``…/discard``,
``api/v1/billing/resends``); the dashboard builds a `BulkResendIn` from its "Resend all"
form, so a bulk resend means the same whichever front end starts it.  Field names are the
wire's (PascalCase).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from invoice_outbox.admin.resends import MAX_SENDING_IDS, Selection
from invoice_outbox.sendings.list_query import MAX_YEAR, MIN_YEAR, YEARS_PATTERN
from invoice_outbox.sendings.status import SendingType, Status
from invoice_outbox.systems.schemas import Name
from invoice_outbox.text_patterns import NOT_BLANK

Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=NOT_BLANK)]
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


_YEARS: dict[str, Any] = {"pattern": YEARS_PATTERN}


def _resendable_statuses(schema: dict[str, Any]) -> None:
    """Only the statuses a resend can take (others are refused with 400, naming them)."""
    schema["properties"]["Status"]["anyOf"][0]["items"] = {"enum": ["Failed", "Aborted", "Sent"]}


class FilterIn(BaseModel):
    """Which sendings, as the lists filter them.  Times need an offset (``Z`` for UTC) and a
    year from `MIN_YEAR` to `MAX_YEAR`, as the lists' ``from`` and ``to``."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_resendable_statuses
    )

    PracticeId: uuid.UUID | None = None
    System: Name | None = None
    SendingType: Literal["Invoice", "Cancellation"] | None = None
    Status: list[StatusName] | None = Field(default=None, max_length=6)
    From: AwareDatetime | None = Field(
        default=None, description="SendingTime from (inclusive).", json_schema_extra=_YEARS
    )
    To: AwareDatetime | None = Field(
        default=None, description="SendingTime before (exclusive).", json_schema_extra=_YEARS
    )
    Q: str | None = Field(default=None, max_length=200, description="Text in the Reason.")

    @field_validator("From", "To")
    @classmethod
    def _in_years(cls, value: datetime | None) -> datetime | None:
        if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"must be in the years {MIN_YEAR} to {MAX_YEAR}")
        return value

    @field_validator("Status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value] if value else []
        return value


def _bulk_rules(schema: dict[str, Any]) -> None:
    """What the schema says beyond the fields: a selection is given (Cause, non-empty
    SendingIds, Filter, or PreviewJobId), and PreviewJobId only with a real run."""
    schema["allOf"] = [
        {
            "anyOf": [
                {"required": ["Cause"], "properties": {"Cause": {"type": "string"}}},
                {"required": ["SendingIds"], "properties": {"SendingIds": {"minItems": 1}}},
                {"required": ["Filter"], "properties": {"Filter": {"type": "object"}}},
                {"required": ["PreviewJobId"], "properties": {"PreviewJobId": {"type": "string"}}},
            ]
        },
        {
            "anyOf": [
                {"not": {"required": ["PreviewJobId"]}},
                {"properties": {"PreviewJobId": {"type": "null"}}},
                {"not": {"required": ["DryRun"]}},
                {"properties": {"DryRun": {"const": False}}},
            ]
        },
    ]


class BulkResendIn(BaseModel):
    """``POST api/v1/billing/resends``: give at least one of Cause, SendingIds, Filter (they
    are combined with AND), or PreviewJobId alone to run what a dry run showed."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_bulk_rules
    )

    Cause: str | None = Field(default=None, min_length=1, max_length=64, pattern=NOT_BLANK)
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
