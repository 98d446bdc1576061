"""Shared fixtures: the broker and database the integration tests run against, and the unit tests' stores.

In CI (`.ci/run`) RHIZOME_TEST_MQTT_URL and RHIZOME_TEST_POSTGRES_URL point at the machine's real Mosquitto
and PostgreSQL, and RHIZOME_TEST_REQUIRE_SERVICES=1 turns a missing service into a failure. Without them the
same tests run against the embedded broker and SQLite, so `make test` passes on a bare machine.
The markers and the guard of the unit lane (`make check`) are in tests/lanes.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from dashboard.web.accounts import use_password_method
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker, find_mosquitto
from gateway.contract.target import MqttTarget
from gateway.ingest.messages import Ingestor
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Base
from gateway.store.region import load_region
from tests.lanes import (  # noqa: F401  (hooks: pytest finds them here)
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_runtest_setup,
    unit_lane_guard,
)

# Logins in tests use scrypt at N=2**10 (1 ms, not 100 ms): some hundred tests sign in. Passwords hashed by
# the processes tests start (the CLI, the demo) keep the real cost, and a test checks it.
use_password_method("scrypt:1024:8:1")

pytest_plugins = ["pytester"]  # tests/test_lanes.py runs pytest on files of its own

MQTT_ENV = "RHIZOME_TEST_MQTT_URL"
POSTGRES_ENV = "RHIZOME_TEST_POSTGRES_URL"
REQUIRE_ENV = "RHIZOME_TEST_REQUIRE_SERVICES"


def services_required() -> bool:
    """True in CI: every integration test must run against the real services."""
    return os.environ.get(REQUIRE_ENV) == "1"


@dataclass(frozen=True)
class Broker:
    """A broker the tests may use: URL (with credentials), protocol, and what runs it."""

    url: str
    protocol: str
    kind: str

    @property
    def target(self) -> MqttTarget:
        return MqttTarget.from_url(self.url, self.protocol)


def _reachable(url: str) -> bool:
    target = MqttTarget.from_url(url)
    try:
        with socket.create_connection((target.host, target.port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The real Mosquitto when RHIZOME_TEST_MQTT_URL is set, else an embedded broker for this session."""
    url = os.environ.get(MQTT_ENV)
    if url:
        if not _reachable(url):
            pytest.fail(f"{MQTT_ENV}={url} is set but the broker is not reachable")
        yield Broker(url, os.environ.get("RHIZOME_TEST_MQTT_PROTOCOL", "5"), "external")
        return
    if services_required():
        pytest.fail(f"{REQUIRE_ENV}=1 but {MQTT_ENV} is not set")
    account = BrokerAccount("rhizome-test", secrets.token_urlsafe(12))
    with EmbeddedBroker(tmp_path_factory.mktemp("broker"), [account]) as embedded:
        yield Broker(embedded.url(account), embedded.protocol, embedded.kind)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str | None:
    """Admin URL of the real PostgreSQL, or None outside CI when it is not configured."""
    url = os.environ.get(POSTGRES_ENV)
    if url is None and services_required():
        pytest.fail(f"{REQUIRE_ENV}=1 but {POSTGRES_ENV} is not set")
    return url


def _create_database(admin_url: str, template: str | None = None) -> str:
    name = f"rhizome_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        copy = f' TEMPLATE "{template}"' if template else ""
        connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        # A test's database need not survive a crash: commits do not wait for the disk (the lanes' many
        # small transactions otherwise queue on one WAL flush each).
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_admin_url: str | None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (skipped only outside CI when unconfigured)."""
    if postgres_admin_url is None:
        pytest.skip(f"PostgreSQL not configured ({POSTGRES_ENV} unset, not in CI)")
    url = _create_database(postgres_admin_url)
    yield url
    _drop_database(postgres_admin_url, url)


@pytest.fixture
def database_url(
    postgres_admin_url: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The store for integration tests: a fresh PostgreSQL database in CI, else a SQLite file. A test that
    also asks for `engine` (a migrated store) gets one of the lane's migrated databases, emptied since its
    last test (`MigratedPool`); any other gets a new, empty one."""
    if postgres_admin_url is None:
        yield f"sqlite:///{tmp_path / 'rhizome.db'}"
        return
    if "engine" in request.fixturenames:
        pool: MigratedPool = request.getfixturevalue("migrated_pool")
        url = pool.take()
        yield url
        pool.give_back(url)
        return
    url = _create_database(postgres_admin_url)
    yield url
    _drop_database(postgres_admin_url, url)


class MigratedPool:
    """Migrated PostgreSQL databases of one lane, reused. After a test its database is emptied (every row
    deleted, sequences restarted: ~20 ms) rather than dropped and a new one copied from the template: each
    copy writes the template's ~8 MB to the WAL, and with a few lanes doing it the copies took 0.3-0.5 s each
    (a checkpoint every ~100 of them). A database whose schema a test changed is dropped, not reused."""

    def __init__(self, admin_url: str, template: str) -> None:
        self.admin_url, self.template = admin_url, template
        self._admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._free: list[str] = []
        self._all: list[str] = []
        template_url = make_url(admin_url).set(database=template).render_as_string(hide_password=False)
        engine = make_engine(template_url)
        with engine.connect() as connection:
            self._schema = self._describe(connection)
            tables, sequences = self._schema[1], self._schema[2]
        engine.dispose()
        # Triggers off for the reset (the ledger's append-only guard, foreign key checks): every row goes.
        self._reset_sql = (
            "SET LOCAL session_replication_role = replica;\n"
            + "".join(f'DELETE FROM "{table}";\n' for table in tables if table != "alembic_version")
            + "".join(f"SELECT setval('\"{seq}\"', 1, false);\n" for seq in sequences)
        )

    @staticmethod
    def _describe(connection: Any) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(alembic revisions, tables, sequences) of the public schema."""
        revisions = tuple(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
        tables = tuple(
            connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
            ).scalars()
        )
        sequences = tuple(
            connection.execute(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1")
            ).scalars()
        )
        return revisions, tables, sequences

    def take(self) -> str:
        if self._free:
            return self._free.pop()
        url = _create_database(self.admin_url, self.template)
        self._all.append(url)
        return url

    def give_back(self, url: str) -> None:
        """Empty the database for the next test, or drop it if its schema is no longer the template's."""
        with self._admin.connect() as connection:  # what the test left connected (a thread, an engine)
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": make_url(url).database},
            )
        engine = make_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                if self._describe(connection) != self._schema:
                    raise LookupError("schema changed")
                connection.exec_driver_sql(self._reset_sql)
        except (LookupError, DBAPIError):
            engine.dispose()
            self._all.remove(url)
            _drop_database(self.admin_url, url)
            return
        engine.dispose()
        self._free.append(url)

    def close(self) -> None:
        for url in self._all:
            _drop_database(self.admin_url, url)
        self._admin.dispose()


@pytest.fixture(scope="session")
def migrated_pool(postgres_admin_url: str | None, migrated_postgres: str) -> Iterator[MigratedPool]:
    """This lane's reusable migrated databases (see MigratedPool)."""
    assert postgres_admin_url is not None  # migrated_postgres has failed otherwise
    pool = MigratedPool(postgres_admin_url, migrated_postgres)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests get copies of it (the migrations take ~0.1 s
    a run, a copy ~3 ms), so each still starts from a fresh, fully migrated store."""
    path = tmp_path_factory.mktemp("migrated") / "head.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def migrated_postgres(postgres_admin_url: str | None) -> Iterator[str]:
    """The name of a PostgreSQL database migrated to head once per session (each lane is a process, so each
    has its own); tests' databases are made from it as a template: 0.07 s against 0.6 s of migrations."""
    if postgres_admin_url is None:  # only database_url asks for it, and only with PostgreSQL configured
        pytest.fail(f"migrated_postgres needs PostgreSQL ({POSTGRES_ENV})")
    url = _create_database(postgres_admin_url)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    name = make_url(url).database
    assert name is not None
    yield name
    _drop_database(postgres_admin_url, url)


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database with its backup API (consistent whatever its journal mode)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


@pytest.fixture
def engine(database_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated engine on the integration store (on SQLite, a copy of the session's migrated file)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        _copy_sqlite(request.getfixturevalue("migrated_sqlite"), Path(url.database))
        engine = make_engine(database_url)
    else:
        engine = make_engine(database_url)
        upgrade(engine)  # on PostgreSQL a no-op (0.04 s): database_url made it a copy of a migrated one
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Engine]:
    """A migrated SQLite engine for fast unit tests of store logic."""
    _copy_sqlite(migrated_sqlite, tmp_path / "unit.db")
    engine = make_engine(f"sqlite:///{tmp_path / 'unit.db'}")
    yield engine
    engine.dispose()


Store = tuple[sessionmaker[Session], dict[str, int]]


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """An in-memory SQLite store with the schema and the rows of the test module's `fill(session)`, which
    returns the ids its tests need by name."""
    fill: Callable[[Session], dict[str, int]] | None = getattr(request.module, "fill", None)
    if fill is None:
        pytest.fail(f"{request.module.__name__} uses the store fixture but defines no fill(session)")
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        ids = fill(session)
    yield sessions, ids
    engine.dispose()


@pytest.fixture
def ingest_store(sqlite_engine: Engine) -> tuple[Engine, Ingestor]:
    """The tiny region in a migrated SQLite store, and an Ingestor that knows its devices."""
    with make_session_factory(sqlite_engine).begin() as session:
        load_region(session, tiny_region_data())
        ingestor = Ingestor(sqlite_engine)
        ingestor.refresh(session)
    return sqlite_engine, ingestor


@dataclass(frozen=True)
class ShippedBroker:
    """A Mosquitto started by a test with the project's shipped config, and a URL with credentials."""

    broker: EmbeddedBroker
    url: str


def require_mosquitto() -> None:
    """Tests of the broker's own guarantees (ACLs, bridges, queue limits) need the `mosquitto` binary: a
    failure in CI (RHIZOME_TEST_REQUIRE_SERVICES=1), a skip on a machine that has none."""
    if find_mosquitto() is None:
        if services_required():
            pytest.fail("mosquitto is required in CI")
        pytest.skip("mosquitto is not installed")


@pytest.fixture
def shipped_mosquitto(tmp_path: Path) -> Iterator[ShippedBroker]:
    """Our own Mosquitto with the shipped config (the machine's one drops QoS 1 beyond 1,000 queued)."""
    require_mosquitto()
    account = BrokerAccount("shipped-test", secrets.token_urlsafe(12))
    with EmbeddedBroker(tmp_path / "broker", [account], prefer="mosquitto") as broker:
        yield ShippedBroker(broker, broker.url(account))


def tiny_region_data(tag: str = "") -> dict[str, Any]:
    """Two communities, a pump, a storage hub and two goods: small enough to reason about by hand.

    `tag` is appended to community and device slugs so tests on a shared broker use their own topics.
    """
    text = json.dumps(_TINY).replace("utuado", f"utuado{tag}").replace("jayuya", f"jayuya{tag}")
    return json.loads(text)


_TINY: dict[str, Any] = {
    "format": "rhizome-region/1",
    "name": "Tiny",
    "goods": [
        {
            "slug": "water",
            "name": "Water",
            "unit": "L",
            "sector": "water",
            "essential": True,
            "perishability_hours": None,
            "weight_kg_per_unit": 1.0,
        },
        {
            "slug": "rice",
            "name": "Rice",
            "unit": "kg",
            "sector": "food",
            "essential": True,
            "perishability_hours": None,
            "weight_kg_per_unit": 1.0,
        },
    ],
    "communities": [
        {
            "slug": "utuado",
            "name": "Utuado",
            "lat": 18.27,
            "lon": -66.7,
            "population": 28000,
            "sites": [
                {
                    "slug": "pump-1",
                    "name": "Pump 1",
                    "kind": "pump",
                    "lat": 18.26,
                    "lon": -66.71,
                    "people_served": 2000,
                    "devices": [{"slug": "utuado-pump-1-pump", "kind": "pump", "interval_s": 60}],
                },
                {
                    "slug": "hub",
                    "name": "Hub",
                    "kind": "storage",
                    "lat": 18.27,
                    "lon": -66.7,
                    "devices": [{"slug": "utuado-hub-stock", "kind": "stock", "interval_s": 300}],
                    "stock": {"water": 500, "rice": 200},
                },
            ],
            "needs": {"water": {"minimum": 1000, "target": 3000}},
        },
        {
            "slug": "jayuya",
            "name": "Jayuya",
            "lat": 18.22,
            "lon": -66.59,
            "population": 14000,
            "sites": [
                {
                    "slug": "hub",
                    "name": "Hub",
                    "kind": "storage",
                    "lat": 18.22,
                    "lon": -66.59,
                    "devices": [{"slug": "jayuya-hub-stock", "kind": "stock", "interval_s": 300}],
                    "stock": {"water": 9000},
                }
            ],
            "needs": {"water": {"minimum": 1000, "target": 2000}},
        },
    ],
    "members": [
        {
            "name": "Ana",
            "community": "utuado",
            "lat": 18.27,
            "lon": -66.7,
            "skills": ["pump-mechanic"],
            "roles": ["crew", "driver"],
            "hours_per_week": 4,
            "vehicle": {"name": "Pickup", "kind": "pickup", "capacity_kg": 800},
        },
    ],
}
