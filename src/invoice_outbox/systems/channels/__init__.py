"""Delivery channels: how a document reaches an external system (HTTP API, SMTP mailbox).

Import the protocol and errors from here; the concrete channels live in their own modules
so that importing the errors does not import aiohttp or aiosmtplib.
"""

from invoice_outbox.systems.channels.base import (
    Delivered,
    Delivery,
    DeliveryChannel,
    DeliveryError,
    ErrorKind,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

__all__ = [
    "Delivered",
    "Delivery",
    "DeliveryChannel",
    "DeliveryError",
    "ErrorKind",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
]
