"""Noticing a vanished peer on a PostgreSQL connection: a host cut off or crashed says no goodbye.

TCP alone keeps a silent connection for hours.  Meanwhile PostgreSQL keeps the vanished
client's session, and with it every row lock its open transaction took: a worker host cut off
while recording outcomes or claiming holds those sendings hostage, and no other worker can take
them over however long ago the leases expired (the several-hosts fault run, tests/faults, saw
exactly this).  The service, on its side, would wait as long on a vanished database.

So every connection the service opens asks, with ``seconds`` from
``INVOICE_OUTBOX_DATABASE_PEER_TIMEOUT_SECONDS``:

- the server to end the session once it sits idle inside a transaction that long
  (``idle_in_transaction_session_timeout``: the transaction is rolled back, its locks freed), and
  to give the connection up when what it sends stays unacknowledged that long, probing idle
  connections meanwhile (``tcp_user_timeout``, ``tcp_keepalives_*``);
- libpq to do the same for the service's end (``keepalives*``, ``tcp_user_timeout``).

The service's transactions wait on nothing but the database, except a streamed list, which
waits for its HTTP client between batches: a client that reads nothing for that long loses the
stream.  0 turns all of this off (a connection pooler that refuses startup options, for
example; then set the server's own ``idle_in_transaction_session_timeout``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

#: Keep-alive probes sent before a silent peer is given up.
KEEPALIVE_PROBES = 3


def peer_timeout_args(seconds: float, database_url: str | None = None) -> dict[str, Any]:
    """libpq connection parameters for `seconds` (see the module docstring); none for 0.

    ``options`` already in `database_url` are kept, ours appended.
    """
    if seconds <= 0:
        return {}
    milliseconds = max(1000, int(seconds * 1000))
    # Probing starts after a third of the time, then a probe every sixth: a silent peer is
    # given up within about `seconds`.
    idle, interval = max(1, int(seconds / 3)), max(1, int(seconds / 6))
    server = {
        "idle_in_transaction_session_timeout": milliseconds,
        "tcp_user_timeout": milliseconds,
        "tcp_keepalives_idle": idle,
        "tcp_keepalives_interval": interval,
        "tcp_keepalives_count": KEEPALIVE_PROBES,
    }
    options = " ".join(f"-c {name}={value}" for name, value in server.items())
    given = make_url(database_url).query.get("options") if database_url else None
    if isinstance(given, str) and given:
        options = f"{given} {options}"
    return {
        "options": options,
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": KEEPALIVE_PROBES,
        "tcp_user_timeout": milliseconds,
    }
