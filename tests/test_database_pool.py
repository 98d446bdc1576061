"""The lane's pool of migrated PostgreSQL databases hands each test a store as empty as a new one."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text

from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import alembic_config
from gateway.store.models.region import Community
from gateway.store.region import load_region
from tests.conftest import MigratedPool, tiny_region_data

pytestmark = pytest.mark.postgres


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as connection:
        tables = [t for t in inspect(connection).get_table_names() if t != "alembic_version"]
        counts = {t: connection.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in tables}
    engine.dispose()
    return counts


def test_a_database_given_back_is_emptied_and_its_ids_start_again(migrated_pool: MigratedPool) -> None:
    url = migrated_pool.take()
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data("pool"))
    with make_session_factory(engine).begin() as session:
        first_id = session.scalar(select(func.min(Community.id)))
    filled = {t: n for t, n in _counts(url).items() if n}
    assert len(filled) >= 3  # communities, sites, devices at least
    leaked = engine.connect()  # a test that forgot a connection does not stop its store being emptied
    migrated_pool.give_back(url)
    leaked.invalidate()
    engine.dispose()

    assert migrated_pool.take() == url  # the same database, reused
    assert set(_counts(url).values()) == {0}
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data("pool"))
        assert session.scalar(select(func.min(Community.id))) == first_id
    with engine.connect() as connection:  # the reset turned triggers off for its own transaction only
        assert connection.execute(text("SHOW session_replication_role")).scalar_one() == "origin"
    engine.dispose()
    migrated_pool.give_back(url)


def test_a_database_whose_schema_a_test_changed_is_dropped(migrated_pool: MigratedPool) -> None:
    url = migrated_pool.take()
    engine = make_engine(url)
    command.downgrade(alembic_config(engine), "-1")
    engine.dispose()
    migrated_pool.give_back(url)
    assert migrated_pool.take() != url
