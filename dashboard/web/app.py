"""The dashboard's Flask app factory: settings and config in, app out, so tests and the CLI build their own.

It reads no environment: the entry points (`rhizome dashboard`, dashboard/web/wsgi.py) read Settings and
DashboardConfig once and pass them in.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from dashboard.api import board as api_board
from dashboard.api import driver as api_driver
from dashboard.api import federation as api_federation
from dashboard.api import goals as api_goals
from dashboard.api import routes as api
from dashboard.views import (
    audit,
    board,
    coordinator,
    credentials,
    crew,
    driver_app,
    federation,
    goals,
    offers,
    places,
    plan,
    routes,
    tables,
)
from dashboard.views import map as map_view
from dashboard.web import auth, compression, csrf, errors, node, security, store
from dashboard.web.accounts import AccountStore, FileAccountStore
from dashboard.web.config import ACCOUNTS_FILE as ACCOUNTS_FILE  # `rhizome dashboard-account` imports it here
from dashboard.web.config import DashboardConfig, map_options
from dashboard.web.template_cache import TEMPLATE_CODE
from gateway.process.settings import Settings, validate_secret_key

log = logging.getLogger(__name__)


MAX_ROW_ID = 2**31 - 1  # a 32-bit INTEGER column


def up_to(limit: int) -> str:
    """A regex matching exactly the decimal numbers 1..`limit` (leading zeros allowed), ASCII digits only."""
    digits = str(limit)
    width = len(digits)
    parts = [f"[1-9][0-9]{{0,{width - 2}}}"] if width > 1 else []
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            parts.append(f"{digits[:i]}[{low}-{int(digit) - 1}][0-9]{{{width - i - 1}}}")
    return f"0*(?:{'|'.join([*parts, digits])})"


class RowIdConverter(IntegerConverter):
    """`<id:...>`: a row id that fits a 32-bit INTEGER column; a bigger number is a 404, not a DB error.

    The range is in the pattern, not only in to_python: werkzeug checks a rule's method before its converter,
    so PATCH /api/board/99999999999 answered 405 "Allow: GET" where GET answered 404."""

    regex = up_to(MAX_ROW_ID)

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=MAX_ROW_ID)


def create_app(
    settings: Settings,
    config: DashboardConfig | None = None,
    accounts: AccountStore | None = None,
    *,
    test_config: Mapping[str, Any] | None = None,
) -> Flask:
    """The dashboard for `settings` and `config` (default: DashboardConfig(), i.e. offline, public map).

    `accounts` defaults to the JSON file `config.accounts_path(settings.data_dir)`. `test_config` holds
    Flask settings for tests (e.g. TESTING), applied last.
    """
    config = config or DashboardConfig()
    app = Flask("dashboard")  # templates/ and static/ live at the package root, not beside this module
    app.config.from_mapping(
        # A random key per process: sessions do not survive a restart until a key is configured.
        SECRET_KEY=validate_secret_key(settings.secret_key) or secrets.token_hex(32),
        RHIZOME_SETTINGS=settings,
        **config.flask_config(),
    )
    app.config.from_mapping(test_config or {})
    app.jinja_env.bytecode_cache = TEMPLATE_CODE  # before the first template is loaded
    map_options(app.config)  # fail at startup, not on the first page view
    node.init_app(app, settings)  # a node's federation file, read (and checked) once
    if accounts is None:
        accounts = FileAccountStore(config.accounts_path(settings.data_dir))

    hops = app.config["TRUSTED_PROXIES"]
    if hops:  # only then is X-Forwarded-For the client (a client can send any header it likes)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
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
        goals.bp,
        crew.bp,
        offers.bp,
        board.bp,
        routes.bp,
        driver_app.bp,
        coordinator.bp,
        plan.bp,
        credentials.bp,
        audit.bp,
        federation.bp,
        api.bp,
        api_federation.bp,
        api_board.bp,
        api_driver.bp,
        api_goals.bp,
    ):
        app.register_blueprint(blueprint)
    return app
