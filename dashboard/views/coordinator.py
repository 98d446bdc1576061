"""Coordinator tools: register communities, sites, goods, need levels and members; review dead letters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from dashboard.read import admin
from dashboard.web.auth import role_required
from dashboard.web.store import get_session, get_store
from gateway.store import registry
from gateway.store.models.vocab import GOOD_SECTORS, SITE_KINDS

bp = Blueprint("coordinator", __name__, url_prefix="/coordinator")
FORMS: dict[str, tuple[Callable[[Session, Any], Any], str]] = {
    "community": (registry.add_community, "Community registered."),
    "site": (registry.add_site, "Site registered."),
    "good": (registry.add_good, "Good added to the catalogue."),
    "need": (registry.set_need_level, "Need level set."),
    "member": (registry.add_member, "Member registered."),
}
DEAD_LETTERS_PER_PAGE = 100


@bp.get("")
@role_required("coordinator")
def index() -> str:
    """Every registration form on one page."""
    return _page()


def _page(error: str | None = None, form_name: str | None = None) -> str:
    session = get_session()
    return render_template(
        "coordinator.html",
        communities=admin.community_choices(session),
        goods=admin.good_choices(session),
        kinds=[(k, k) for k in SITE_KINDS],
        sector_pairs=[(s, s) for s in GOOD_SECTORS],
        error=error,
        form_name=form_name,
        values=request.form if error else {},
    )


@bp.post("/<form_name>")
@role_required("coordinator")
def submit(form_name: str) -> Response | tuple[str, int]:
    """Store one form; a bad value re-shows the page with the message and a 400."""
    if form_name not in FORMS:
        abort(404, description=f"no form {form_name[:40]!r}")
    handler, done = FORMS[form_name]
    try:
        with get_store().sessions.begin() as session:
            handler(session, request.form)
    except registry.FormError as exc:
        return _page(str(exc), form_name), 400
    flash(done, "ok")
    return redirect(url_for("coordinator.index") + f"#{form_name}")


@bp.get("/dead-letters")
@role_required("coordinator")
def dead_letters() -> str:
    """Messages that broke the contract, newest first, filterable by reason."""
    session = get_session()
    reason = request.args.get("reason") or None
    reasons = admin.dead_letter_reasons(session)
    if reason is not None and reason not in {r for r, _ in reasons}:
        abort(404, description="no dead letters with that reason")
    letters = admin.dead_letters(session, DEAD_LETTERS_PER_PAGE, reason)
    return render_template("dead_letters.html", letters=letters, reasons=reasons, reason=reason)
