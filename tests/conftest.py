"""Shared fixtures: databases on both engines, an app bound to one, tokens for every role."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.app import create_app
from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.auth.tokens import issue_token
from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.keyring import (
    KEYS_SETTING,
    Keyring,
    keyring_from_entries,
    parse_entries,
)
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from tests.databases import (
    PostgresDatabases,
    SqliteDatabases,
    postgres_databases,
    require_postgres,
)
from tests.receivers import HttpReceiver

TEST_SECRET = "test-signing-key-" + "x" * 40
#: Fixed document keys for tests (kid:base64 of 32 bytes); the first encrypts.
TEST_DOCUMENT_KEYS = "t1:" + base64.b64encode(bytes(range(32))).decode()
NOW = datetime(2026, 2, 5, 16, 6, 25, 576601, tzinfo=UTC)
PRACTICE_A = uuid.UUID("1c2d9508-589f-4ac3-8898-16c402da5ea8")
PRACTICE_B = uuid.UUID("9b1f5c2e-3f43-4d0a-8f59-0c3e6d1b7a21")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked postgres_only are collected for PostgreSQL only (not skipped on SQLite)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(item, "callspec", None)
        on_sqlite = params is not None and params.params.get("engine_name") == "sqlite"
        (dropped if on_sqlite and item.get_closest_marker("postgres_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def _sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    return SqliteDatabases(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def _postgres_databases() -> Iterator[PostgresDatabases]:
    with postgres_databases() as databases:
        yield databases


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_name(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require_postgres()
    return str(request.param)


@pytest.fixture
def database_url(
    engine_name: str, request: pytest.FixtureRequest, _sqlite_databases: SqliteDatabases
) -> str:
    """A freshly migrated, empty database on the parametrised engine."""
    if engine_name == "postgres":
        databases: PostgresDatabases = request.getfixturevalue("_postgres_databases")
        return databases.fresh()
    return _sqlite_databases.fresh()


def fixed_keyring(entries: str = TEST_DOCUMENT_KEYS) -> Keyring:
    """A keyring of `entries` (the tests' fixed document keys by default)."""
    return keyring_from_entries(parse_entries(entries), source=KEYS_SETTING)


def build_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings: a fresh database, a throwaway var dir, fixed token and document keys,
    small stream batches, and loopback targets allowed (the tests' receivers listen on
    127.0.0.1)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "var_dir": tmp_path / "var",
        "jwt_secret": SecretStr(TEST_SECRET),
        "document_keys": SecretStr(TEST_DOCUMENT_KEYS),
        "stream_batch_rows": 50,
        "allow_private_targets": True,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return build_settings(database_url, tmp_path)


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    """A real HTTP receiver on loopback, for tests that deliver."""
    async with HttpReceiver() as running:
        yield running


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def state(app: FastAPI) -> AppState:
    runtime: AppState = app.state.runtime
    return runtime


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def session(state: AppState) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as db_session:
        yield db_session


def make_token(
    role: Role,
    *practices: uuid.UUID,
    lifetime: timedelta = timedelta(days=30),  # tests move the clock by hours and days
    now: datetime | None = None,
) -> str:
    principal = Principal(subject=f"test-{role.value}", role=role, practices=frozenset(practices))
    return issue_token(principal, key=TEST_SECRET.encode(), now=now or NOW, lifetime=lifetime)


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(Role.ADMIN)}"}


@pytest.fixture
def practice_headers() -> dict[str, str]:
    """A user of practice A."""
    return {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_A)}"}
