"""The libpq parameters that make both ends of a PostgreSQL connection give up a vanished peer."""

from __future__ import annotations

from invoice_outbox.db.liveness import peer_timeout_args


def test_zero_turns_it_off() -> None:
    assert peer_timeout_args(0, "postgresql+psycopg://u@h/db") == {}


def test_server_and_client_give_up_after_the_timeout() -> None:
    args = peer_timeout_args(60, "postgresql+psycopg://u@h/db")
    assert args["options"].split(" -c ") == [
        "-c idle_in_transaction_session_timeout=60000",
        "tcp_user_timeout=60000",
        "tcp_keepalives_idle=20",
        "tcp_keepalives_interval=10",
        "tcp_keepalives_count=3",
    ]
    assert (args["keepalives"], args["tcp_user_timeout"]) == (1, 60000)
    # A silent peer is given up within the timeout: probing starts, then three probes fail.
    assert args["keepalives_idle"] + 3 * args["keepalives_interval"] <= 60


def test_options_in_the_url_are_kept() -> None:
    args = peer_timeout_args(5, "postgresql+psycopg://u@h/db?options=-csearch_path%3Dbilling")
    assert args["options"].startswith(
        "-csearch_path=billing -c idle_in_transaction_session_timeout=5000"
    )
