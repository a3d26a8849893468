"""The external-systems API's shapes (PascalCase, as the rest of the API)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from invoice_outbox.sendings.status import AcceptanceMode
from invoice_outbox.systems.acceptance import AcceptanceIn
from invoice_outbox.systems.signing import check_secret

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")]


class SystemIn(BaseModel):
    """``PUT api/v1/billing/systems/{name}``: the whole configuration of one system.

    Secrets (``AuthValue``, ``Password``, ``SigningSecret``, ``Acceptance.Secret``,
    ``ClientCertificate``/``ClientKey``) are write-only: omit them to keep the stored value,
    send an empty string to clear it.  A new ``SigningSecret`` (or ``Acceptance.Secret``)
    rotates: the previous one stays valid for ``SecretOverlapSeconds``.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    Channel: Literal["Http", "Email"]
    Practices: list[uuid.UUID] = Field(default_factory=list, max_length=10_000)
    Enabled: bool = True
    TimeoutSeconds: float = Field(default=30.0, gt=0, le=300)
    RetryPolicy: dict[str, Any] | None = None
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
    # Acceptance beyond transport, signatures, mTLS
    Acceptance: AcceptanceIn | None = None
    SigningSecret: SecretStr | None = Field(default=None, max_length=200)
    SecretOverlapSeconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    ClientCertificate: SecretStr | None = Field(default=None, max_length=64_000)
    ClientKey: SecretStr | None = Field(default=None, max_length=64_000)
    CaCertificate: str | None = Field(default=None, max_length=64_000)

    @model_validator(mode="after")
    def _acceptance_fields(self) -> SystemIn:
        signing = self.SigningSecret.get_secret_value() if self.SigningSecret else ""
        if signing:
            check_secret(signing, "SigningSecret")
        if self.Channel == "Email":
            if signing or self.ClientCertificate or self.ClientKey or self.CaCertificate:
                raise ValueError(
                    "SigningSecret, ClientCertificate, ClientKey and CaCertificate belong to "
                    "Http systems"
                )
            if self.Acceptance is not None and self.Acceptance.Mode is AcceptanceMode.RESPONSE:
                raise ValueError("Acceptance Mode Response needs an Http system")
        return self

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
            return {
                "Url": self.Url,
                "AuthHeader": self.AuthHeader,
                "CaCertificate": self.CaCertificate,
            }
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
