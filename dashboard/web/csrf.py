"""CSRF protection for every form: a per-session token, required on every state-changing request."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    """Check the token before every unsafe request and offer `csrf_token()` to templates."""
    app.before_request(check)
    app.jinja_env.globals["csrf_token"] = csrf_token


def csrf_token() -> str:
    """This session's token, made on first use."""
    token = session.get(FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[FIELD] = token
    return token


def check() -> None:
    """400 unless a POST/PUT/PATCH/DELETE carries the session's token (form field or header)."""
    if request.method in SAFE_METHODS or request.routing_exception is not None:
        return  # an unknown URL or method gets its own 404/405
    expected = session.get(FIELD)
    given = request.form.get(FIELD) or request.headers.get(HEADER) or ""
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), given.encode()):
        abort(
            400, description="the form's security token is missing or out of date: reload the page and retry"
        )
