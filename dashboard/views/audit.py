"""Coordinator tool: the security audit trail (logins, throttles, sessions, accounts, credentials), paged."""

from __future__ import annotations

from flask import Blueprint, abort, make_response, render_template, request
from werkzeug.wrappers import Response

from dashboard.web.auth import role_required
from dashboard.web.store import get_session
from gateway.store import audit
from gateway.store.models.vocab import SECURITY_EVENT_KINDS

bp = Blueprint("audit", __name__, url_prefix="/coordinator/audit")
PER_PAGE = 50


def _page_number() -> int:
    raw = request.args.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and int(raw) >= 1):
        abort(400, description="page must be a whole number from 1")
    return int(raw)


@bp.get("")
@role_required("coordinator")
def index() -> Response:
    """Security events newest first, PER_PAGE a page, optionally of one kind."""
    kind = request.args.get("kind") or None
    if kind is not None and kind not in SECURITY_EVENT_KINDS:
        abort(400, description=f"kind must be one of {', '.join(SECURITY_EVENT_KINDS)}")
    page = _page_number()
    session = get_session()
    total = audit.count(session, kind)
    pages = max(1, -(-total // PER_PAGE))
    if page > pages:
        abort(404, description=f"there are {pages} pages")
    events = audit.recent(session, PER_PAGE, (page - 1) * PER_PAGE, kind)
    body = render_template(
        "audit.html",
        events=events,
        kinds=SECURITY_EVENT_KINDS,
        kind=kind,
        page=page,
        pages=pages,
        total=total,
    )
    response = make_response(body)
    response.headers["Cache-Control"] = "no-store"  # who signed in from where is not for shared caches
    return response
