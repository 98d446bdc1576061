"""Errors as answers: JSON under /api, a small HTML page elsewhere; a bad request never becomes a 500.

This is the one place where Rhizome's error tree (gateway.contract.errors) meets HTTP: domain code raises
InvalidInput, NotFound, Conflict or Unavailable and never names a status code.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, make_response, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.http import HTTP_STATUS_CODES

from gateway.contract.errors import Conflict, InvalidInput, NotFound, RhizomeError, Unavailable

log = logging.getLogger(__name__)
# The most specific class wins (Flask looks handlers up along the exception's MRO).
DOMAIN_STATUS: dict[type[RhizomeError], int] = {
    InvalidInput: 400,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
}


def init_app(app: Flask) -> None:
    """Register the handlers on `app`."""
    app.register_error_handler(HTTPException, handle_http_error)
    for error in DOMAIN_STATUS:
        app.register_error_handler(error, handle_domain_error)
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
    body, status = error_response(exc.code, exc.name, exc.description or exc.name)
    response = make_response(body, status)
    for name, value in exc.get_headers():
        if name.lower() in ("allow", "retry-after", "www-authenticate"):  # a 405 says what is allowed
            response.headers[name] = value
    return response, status


def status_of(exc: RhizomeError) -> int:
    """The HTTP status for a domain error: that of its nearest class in DOMAIN_STATUS."""
    return next(DOMAIN_STATUS[c] for c in type(exc).__mro__ if c in DOMAIN_STATUS)


def handle_domain_error(exc: RhizomeError) -> tuple[Response | str, int]:
    """A refused request: its message (written for the person who asked) under the status of its kind."""
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.path, exc)
    return error_response(status, HTTP_STATUS_CODES[status], str(exc))


def handle_store_unavailable(exc: OperationalError) -> tuple[Response | str, int]:
    """The database is down or locked: say so with a 503 instead of a stack trace."""
    log.error("store unavailable: %s", exc.orig if exc.orig is not None else exc)
    return error_response(ServiceUnavailable.code, ServiceUnavailable().name, "the store is unavailable")


def handle_unexpected(exc: Exception) -> tuple[Response | str, int]:
    """A bug: logged with its traceback, answered with a plain 500 that leaks nothing."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(InternalServerError.code, InternalServerError().name, "internal error, see the log")
