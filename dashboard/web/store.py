"""The store as the dashboard sees it: one engine per app, one read-only session per request."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.db import make_engine, make_session_factory

EXTENSION = "rhizome"


@dataclass(frozen=True)
class Store:
    """The app's engine and session factory, created once and kept in app.extensions."""

    engine: Engine
    sessions: sessionmaker[Session]


def init_app(app: Flask, database_url: str) -> Store:
    """Create the engine for `database_url` and close each request's session when the request ends."""
    engine = make_engine(database_url)
    store = Store(engine, make_session_factory(engine))
    app.extensions[EXTENSION] = store
    app.teardown_appcontext(close_session)
    return store


def get_store(app: Flask | None = None) -> Store:
    """The store of `app` (default: the current app)."""
    return (app or current_app).extensions[EXTENSION]


def get_session() -> Session:
    """This request's session, opened on first use; the dashboard only reads, so nothing is committed."""
    if "db_session" not in g:
        g.db_session = get_store().sessions()
    return g.db_session


def close_session(_exc: BaseException | None = None) -> None:
    """Close the request's session (rolling back its read transaction) if one was opened."""
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
