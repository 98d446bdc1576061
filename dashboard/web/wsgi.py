"""WSGI entry point for a production server: `gunicorn dashboard.web.wsgi:app` (or waitress-serve).

Settings come from the RHIZOME_* environment (docs/deploy/rhizome.env.example). Several worker processes
must sign sessions with the same key, so a missing RHIZOME_SECRET_KEY stops the server at start instead of
logging users out whenever a request lands on another worker.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from dashboard.web.app import create_app
from gateway.process.settings import from_env


def build_app(environ: Mapping[str, str] | None = None) -> Flask:
    """The dashboard configured from `environ` (default: os.environ); refuses to run without a secret key."""
    settings = from_env(environ)
    if not settings.secret_key:
        raise RuntimeError("set RHIZOME_SECRET_KEY: every worker must sign sessions with the same key")
    return create_app(settings)


app = build_app()
