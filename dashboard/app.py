"""The dashboard's Flask app factory: settings in, app out, so tests and the CLI each build their own."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask

from dashboard import api, compression, config, errors, security, store
from dashboard.views import map as map_view
from gateway.settings import Settings, from_env

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, test_config: Mapping[str, Any] | None = None) -> Flask:
    """The dashboard for `settings` (default: RHIZOME_* variables); `test_config` replaces env config."""
    if settings is None:
        settings = from_env()
    app = Flask(__name__)
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

    store.init_app(app, settings.effective_database_url)
    errors.init_app(app)
    security.init_app(app)
    compression.init_app(app)

    app.register_blueprint(map_view.bp)
    app.register_blueprint(api.bp)
    return app
