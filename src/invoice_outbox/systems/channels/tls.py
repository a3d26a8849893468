"""TLS contexts for deliveries: a private CA to trust, and a client certificate (mTLS).

`ssl` loads certificates and keys from files only, so the PEM text (kept in the systems
row, write-only) is written to a private temporary directory for the moment of loading and
removed at once.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

__all__ = ["TlsConfigError", "client_tls_context"]


class TlsConfigError(ValueError):
    """The certificate, key or CA cannot be used; the message says which (never the PEM)."""


def client_tls_context(
    certificate: str | None = None, key: str | None = None, *, ca_certificate: str | None = None
) -> ssl.SSLContext:
    """A client context verifying servers as usual (plus `ca_certificate`, PEM, when given),
    presenting `certificate` (PEM, with its chain) and `key` (PEM, unencrypted) when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_certificate:
        try:
            context.load_verify_locations(cadata=ca_certificate)
        except (ssl.SSLError, ValueError):
            raise TlsConfigError("CaCertificate is not a PEM certificate") from None
    if bool(certificate) != bool(key):
        raise TlsConfigError("ClientCertificate and ClientKey go together: set both or neither")
    if certificate and key:
        with tempfile.TemporaryDirectory(prefix="invoice-outbox-tls-") as directory:
            cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
            for path, text in ((cert_path, certificate), (key_path, key)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w", encoding="ascii", errors="replace") as handle:
                    handle.write(text)
            try:
                context.load_cert_chain(cert_path, key_path)
            except (ssl.SSLError, ValueError, OSError):
                raise TlsConfigError(
                    "ClientCertificate and ClientKey are not a PEM certificate and its "
                    "unencrypted private key"
                ) from None
    return context
