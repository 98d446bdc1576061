"""Engine and session factory: SQLite (WAL, foreign keys on) embedded by default, PostgreSQL in production."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (dashboard) never block the gateway's writes
    cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores foreign keys unless asked, per connection
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode except on power loss mid-checkpoint
    cursor.close()


def private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds people's names, homes and hours); an
    existing one loses any access for others (SQLite gives its -wal and -shm files the same mode). A path that
    cannot be opened (a directory, no permission) is left for SQLite to report when the store is first used,
    so a dashboard on a broken store answers 503 rather than failing to start."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        log.warning("cannot open the SQLite file %s to make it private: %s", path, exc)
        return
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o007:
            os.fchmod(fd, mode & 0o770)
    finally:
        os.close(fd)


def make_engine(url: str, *, connect_timeout_s: int | None = None, **kwargs: Any) -> Engine:
    """Create an engine for `url`, creating the SQLite file's directory and setting its pragmas.

    `connect_timeout_s` bounds a PostgreSQL connection attempt (unless the URL sets connect_timeout), so a
    process probing a database that drops packets is not stuck for psycopg's default of 130 s."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            private_file(Path(parsed.database))
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    postgres = parsed.get_backend_name() == "postgresql"
    if connect_timeout_s is not None and postgres and "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": connect_timeout_s, **kwargs.get("connect_args", {})}
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for callers to own: `with factory.begin() as session: ...`."""
    return sessionmaker(engine, expire_on_commit=False)
