"""Errors as answers: JSON under /api, a small HTML page elsewhere; a bad request never becomes a 500."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Register the handlers on `app`."""
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(OperationalError, handle_store_unavailable)
    app.register_error_handler(Exception, handle_unexpected)


def error_response(status: int, name: str, message: str) -> tuple[Response | str, int]:
    """The error in the form the client asked for: JSON for the API, HTML for pages."""
    if request.path == "/api" or request.path.startswith("/api/"):
        return jsonify(error=name, message=message, status=status), status
    return render_template("error.html", status=status, name=name, message=message), status


def handle_http_error(exc: HTTPException) -> tuple[Response | str, int] | HTTPException:
    """404, 400, 405...: the werkzeug description, shaped for the client."""
    if exc.code is None or exc.code < 400:
        return exc  # redirects and the like pass through untouched
    return error_response(exc.code, exc.name, exc.description or exc.name)


def handle_store_unavailable(exc: OperationalError) -> tuple[Response | str, int]:
    """The database is down or locked: say so with a 503 instead of a stack trace."""
    log.error("store unavailable: %s", exc.orig if exc.orig is not None else exc)
    return error_response(ServiceUnavailable.code, ServiceUnavailable().name, "the store is unavailable")


def handle_unexpected(exc: Exception) -> tuple[Response | str, int]:
    """A bug: logged with its traceback, answered with a plain 500 that leaks nothing."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(InternalServerError.code, InternalServerError().name, "internal error, see the log")
