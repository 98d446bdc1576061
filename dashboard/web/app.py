"""The dashboard's Flask app factory: settings in, app out, so tests and the CLI each build their own."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from dashboard.api import routes as api
from dashboard.views import coordinator, credentials, crew, places, routes, tables
from dashboard.views import map as map_view
from dashboard.web import auth, compression, config, csrf, errors, security, store
from dashboard.web.accounts import AccountStore, FileAccountStore
from gateway.process.settings import Settings, from_env

log = logging.getLogger(__name__)
ACCOUNTS_FILE = "dashboard-accounts.json"


class RowIdConverter(IntegerConverter):
    """`<id:...>`: a row id that fits a 32-bit INTEGER column; a bigger number is a 404, not a DB error."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=2**31 - 1)


def create_app(
    settings: Settings | None = None,
    test_config: Mapping[str, Any] | None = None,
    accounts: AccountStore | None = None,
) -> Flask:
    """The dashboard for `settings` (default: RHIZOME_* variables); `test_config` replaces env config.

    `accounts` defaults to the JSON file ACCOUNTS_FILE (or <data dir>/dashboard-accounts.json).
    """
    if settings is None:
        settings = from_env()
    app = Flask("dashboard")  # templates/ and static/ live at the package root, not beside this module
    app.config.from_mapping(
        # A random key per process: sessions do not survive a restart until a key is configured.
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        RHIZOME_SETTINGS=settings,
        **config.DEFAULTS,
    )
    if test_config is None:
        app.config.from_mapping(config.from_environ(os.environ))
    else:
        app.config.from_mapping(test_config)
    config.map_options(app.config)  # fail at startup, not on the first page view
    if accounts is None:
        accounts = FileAccountStore(Path(app.config["ACCOUNTS_FILE"] or settings.data_dir / ACCOUNTS_FILE))

    app.url_map.converters["id"] = RowIdConverter  # before the blueprints' rules are added
    store.init_app(app, settings.effective_database_url)
    errors.init_app(app)
    security.init_app(app)
    csrf.init_app(app)
    auth.init_app(app, accounts)
    compression.init_app(app)

    for blueprint in (
        map_view.bp,
        places.bp,
        tables.bp,
        crew.bp,
        routes.bp,
        coordinator.bp,
        credentials.bp,
        api.bp,
    ):
        app.register_blueprint(blueprint)
    return app
