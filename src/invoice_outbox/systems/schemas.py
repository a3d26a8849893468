"""The external-systems API's shapes (PascalCase, as the rest of the API)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")]


class SystemIn(BaseModel):
    """``PUT api/v1/billing/systems/{name}``: the whole configuration of one system.

    ``MaxInFlight`` (default 8) and ``RatePerSecond`` (default none) are the system's lane:
    how many deliveries may wait on it at once and how many may start per second, over every
    worker; other systems' lanes are not affected by this one's.

    Secrets (``AuthValue``, ``Password``) are write-only: omit them to keep the stored value,
    send an empty string to clear it.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    Channel: Literal["Http", "Email"]
    Practices: list[uuid.UUID] = Field(default_factory=list, max_length=10_000)
    Enabled: bool = True
    TimeoutSeconds: float = Field(default=30.0, gt=0, le=300)
    RetryPolicy: dict[str, Any] | None = None
    #: The system's lane: deliveries in flight at once, over every worker.
    MaxInFlight: int = Field(default=8, ge=1, le=1000)
    #: The system's lane: deliveries started per second, over every worker (None: no limit).
    RatePerSecond: float | None = Field(default=None, gt=0, le=10_000)
    # Http
    Url: str | None = Field(default=None, max_length=2000)
    AuthHeader: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9-]+$")
    AuthValue: SecretStr | None = Field(default=None, max_length=4000)
    # Email
    Host: str | None = Field(default=None, max_length=255)
    Port: int | None = Field(default=None, ge=1, le=65535)
    Sender: str | None = Field(default=None, max_length=320)
    Recipient: str | None = Field(default=None, max_length=320)
    StartTls: bool = True
    UseTls: bool = False
    Username: str | None = Field(default=None, max_length=320)
    Password: SecretStr | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _channel_fields(self) -> SystemIn:
        if self.Channel == "Http":
            if not self.Url:
                raise ValueError("an Http system needs a Url")
            if self.Password is not None or self.Host is not None:
                raise ValueError("Host and Password belong to Email systems")
        else:
            missing = [n for n in ("Host", "Sender", "Recipient") if not getattr(self, n)]
            if missing:
                raise ValueError(f"an Email system needs {', '.join(missing)}")
            if self.Url is not None or self.AuthValue is not None:
                raise ValueError("Url and AuthValue belong to Http systems")
            if self.StartTls and self.UseTls:
                raise ValueError("choose StartTls or UseTls, not both")
        return self

    def channel_settings(self) -> dict[str, Any]:
        """The non-secret settings stored with the system."""
        if self.Channel == "Http":
            return {"Url": self.Url, "AuthHeader": self.AuthHeader}
        return {
            "Host": self.Host,
            "Port": self.Port or (465 if self.UseTls else 587),
            "Sender": self.Sender,
            "Recipient": self.Recipient,
            "StartTls": self.StartTls,
            "UseTls": self.UseTls,
            "Username": self.Username,
        }

    def secret(self) -> SecretStr | None:
        return self.AuthValue if self.Channel == "Http" else self.Password
