"""Alembic environment: the engine comes from the caller (gateway.store.migrate), never from a config file."""

from __future__ import annotations

from alembic import context

from gateway.store.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTERs
        compare_type=True,
    )
    context.run_migrations()
