"""Migrations build the same schema on SQLite and PostgreSQL, and that schema is what the models declare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, types

from gateway.store.db import make_engine
from gateway.store.migrate import MIGRATIONS, current_revision, upgrade
from gateway.store.models import Base

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()  # one head: the chain never forks
BEFORE_0008 = str(ScriptDirectory(str(MIGRATIONS)).get_revision("0008").down_revision)

# Reflected types differ in spelling between databases; compare what kind of value a column holds.
KINDS: list[tuple[type, str]] = [
    (types.Boolean, "bool"),
    (types.Integer, "int"),
    (types.Float, "float"),
    (types.Numeric, "float"),
    (types.DateTime, "datetime"),
    (types.Date, "date"),
    (types.JSON, "json"),
    (types.LargeBinary, "bytes"),
    (types.String, "text"),
]


def kind_of(column_type: Any) -> str:
    if column_type.__class__.__name__ in ("JSONB", "JSON"):
        return "json"
    for cls, kind in KINDS:
        if isinstance(column_type, cls):
            return kind
    raise AssertionError(f"unexpected column type {column_type!r}")


def describe(engine: Engine) -> dict[str, Any]:
    """A database-neutral description of every table: columns, keys, constraints and indexes."""
    inspector = inspect(engine)
    schema = {}
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        schema[table] = {
            "columns": {c["name"]: (kind_of(c["type"]), c["nullable"]) for c in inspector.get_columns(table)},
            "pk": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
            ),
            "checks": sorted(c["name"] for c in inspector.get_check_constraints(table)),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                if not i["name"].startswith("uq_")  # PostgreSQL also lists unique constraints as indexes
            ),
        }
    return schema


@pytest.mark.postgres
def test_empty_sqlite_and_postgresql_upgrade_to_the_same_schema(tmp_path: Path, postgres_url: str) -> None:
    sqlite = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    postgres = make_engine(postgres_url)
    upgrade(sqlite)
    upgrade(postgres)
    try:
        sqlite_schema, postgres_schema = describe(sqlite), describe(postgres)
        assert len(sqlite_schema) == len(Base.metadata.tables) == 39
        assert sqlite_schema == postgres_schema
        assert current_revision(sqlite) == current_revision(postgres) == HEAD
    finally:
        postgres.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migrations_match_the_models(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_constraints_live_in_the_database(sqlite_engine: Engine) -> None:
    checks = {
        c["name"]
        for t in ("stock", "readings", "need_levels")
        for c in inspect(sqlite_engine).get_check_constraints(t)
    }
    assert {"ck_stock_quantity", "ck_need_levels_levels", "ck_readings_seq"} <= checks
    uniques = {u["name"] for u in inspect(sqlite_engine).get_unique_constraints("readings")}
    assert "uq_readings_device_id_seq" in uniques


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    upgrade(engine)
    from alembic import command

    from gateway.store.migrate import alembic_config

    command.downgrade(alembic_config(engine), "base")
    assert inspect(engine).get_table_names() == ["alembic_version"]
    upgrade(engine)
    assert current_revision(engine) == HEAD


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_0008_keeps_the_accounts_both_ways_and_downgrade_drops_only_the_new_kinds(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from gateway.broker.accounts import provision, service_topics
    from gateway.store.db import make_session_factory
    from gateway.store.migrate import alembic_config
    from gateway.store.region import load_region
    from tests.conftest import tiny_region_data

    url = f"sqlite:///{tmp_path / 'a.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    try:
        upgrade(engine)
        with make_session_factory(engine).begin() as session:
            load_region(session, tiny_region_data())
            provision(session, "device", "utuado-pump-1-pump")
            provision(session, "bridge", "utuado")
            provision(session, "service", "metrics", topics=service_topics(["$SYS/broker/#"], []))
        accounts = "SELECT username, kind, password_hash FROM broker_credentials ORDER BY username"
        with engine.connect() as connection:
            before = connection.execute(text(accounts)).all()
        command.downgrade(alembic_config(engine), BEFORE_0008)
        with engine.connect() as connection:
            assert connection.execute(text(accounts)).all() == [before[-1]]  # the device, hash and all
            with pytest.raises(IntegrityError, match=r"ck_broker_credentials_(kind|owner)"):
                connection.execute(
                    text(
                        "INSERT INTO broker_credentials (username, kind, created_at, rotated_at, revoked_at)"
                        " VALUES ('bridge.x', 'bridge', CURRENT_DATE, CURRENT_DATE, CURRENT_DATE)"
                    )
                )
        upgrade(engine)
        assert current_revision(engine) == HEAD
        with engine.connect() as connection:
            assert connection.execute(text(accounts)).all() == [before[-1]]
    finally:
        engine.dispose()
