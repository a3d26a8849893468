"""The external-systems API's shapes (PascalCase, as the rest of the API)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from invoice_outbox.systems.acceptance import AcceptanceIn, AcceptanceMode
from invoice_outbox.systems.retry import MAX_DELAY
from invoice_outbox.systems.signing import SECRET_PATTERN, check_secret
from invoice_outbox.text_patterns import NOT_BLANK

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")]

#: An http(s) URL the service can take apart: host name or IPv4 address, optional port, no
#: credentials (they belong in AuthHeader/AuthValue).  Whether the host resolves, and to a
#: public address, is the world's state: a 409 when it does not.
URL_PATTERN = (
    r"^[ \t\r\n]*https?://[A-Za-z0-9.-]+(?::[0-9]{1,4})?(?:[/?#][^\s\u0000-\u001f]*)?[ \t\r\n]*$"
)
_DELAY_TEXT = r"^[0-9]{1,4}(?:ms|s|m|h)$"


#: Settings only an Http system has (an Email system must leave them out).
_HTTP_ONLY = ("SigningSecret", "ClientCertificate", "ClientKey", "CaCertificate")


def _system_rules(schema: dict[str, Any]) -> None:
    """The schema says what `_channel_fields` and the retry policy's reader check."""
    absent_or_null = {"type": "null"}
    schema["oneOf"] = [
        {
            "properties": {
                "Channel": {"const": "Http"},
                "Url": {"type": "string", "maxLength": 2000, "pattern": URL_PATTERN},
                "Host": absent_or_null,
                "Password": absent_or_null,
            },
            "required": ["Channel", "Url"],
        },
        {
            "properties": {
                "Channel": {"const": "Email"},
                "Host": {"type": "string", "maxLength": 255, "pattern": NOT_BLANK},
                "Sender": {"type": "string", "maxLength": 320, "pattern": NOT_BLANK},
                "Recipient": {"type": "string", "maxLength": 320, "pattern": NOT_BLANK},
                "Url": absent_or_null,
                "AuthValue": absent_or_null,
                **dict.fromkeys(_HTTP_ONLY, absent_or_null),
                "Acceptance": {  # an Email system's answer has no verdict to read
                    "anyOf": [
                        {"type": "null"},
                        {"properties": {"Mode": {"not": {"const": AcceptanceMode.RESPONSE.value}}}},
                    ]
                },
            },
            "required": ["Channel", "Host", "Sender", "Recipient"],
            "anyOf": [  # not StartTls (by default true) and UseTls both
                {"not": {"required": ["UseTls"]}},
                {"properties": {"UseTls": {"const": False}}},
                {"required": ["StartTls"], "properties": {"StartTls": {"const": False}}},
            ],
        },
    ]
    schema["properties"]["SigningSecret"] = {
        "anyOf": [{"type": "null"}, {"type": "string", "maxLength": 200, "pattern": SECRET_PATTERN}]
    }
    seconds = int(MAX_DELAY.total_seconds())
    schema["properties"]["RetryPolicy"] = {
        "description": 'e.g. {"Schedule": ["0s", "5s", "5m"], "MaxAttempts": 3, "Jitter": 0.1}; '
        "every key optional. Delays: seconds, or text such as 5s, 5m, 2h, 250ms (at most "
        f"{MAX_DELAY.days} days).",
        "anyOf": [
            {"type": "null"},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "Schedule": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "anyOf": [
                                {"type": "number", "minimum": 0, "maximum": seconds},
                                {"type": "string", "pattern": _DELAY_TEXT},
                            ]
                        },
                    },
                    "MaxAttempts": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
                    "Jitter": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                },
            },
        ],
    }


class SystemIn(BaseModel):
    """``PUT api/v1/billing/systems/{name}``: the whole configuration of one system.

    ``MaxInFlight`` (default 8) and ``RatePerSecond`` (default none) are the system's lane:
    how many deliveries may wait on it at once and how many may start per second, over every
    worker; other systems' lanes are not affected by this one's.

    Secrets (``AuthValue``, ``Password``, ``SigningSecret``, ``Acceptance.Secret``,
    ``ClientCertificate``/``ClientKey``) are write-only: omit them to keep the stored value,
    send an empty string to clear it.  A new ``SigningSecret`` (or ``Acceptance.Secret``)
    rotates: the previous one stays valid for ``SecretOverlapSeconds``.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        str_strip_whitespace=True,
        json_schema_extra=_system_rules,
    )

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
            if any(getattr(self, name) is not None for name in _HTTP_ONLY):
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
