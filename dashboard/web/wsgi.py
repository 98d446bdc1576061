"""WSGI entry point for a production server: `gunicorn dashboard.web.wsgi:app` (or waitress-serve).

The entry point reads the environment once (docs/deploy/rhizome.env.example): the process's Settings and
the dashboard's config, both frozen, handed to the app factory. Several worker processes must sign
sessions with the same key, so a missing RHIZOME_SECRET_KEY stops the server at start instead of logging
users out whenever a request lands on another worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from dashboard.web.app import create_app
from dashboard.web.config import from_environ
from gateway.process.settings import from_env


def build_app(environ: Mapping[str, str] | None = None) -> Flask:
    """The dashboard configured from `environ` (default: os.environ); refuses to run without a secret key."""
    environ = os.environ if environ is None else environ
    settings = from_env(environ)
    if not settings.secret_key:
        raise RuntimeError("set RHIZOME_SECRET_KEY: every worker must sign sessions with the same key")
    return create_app(settings, from_environ(environ))


app = build_app()
