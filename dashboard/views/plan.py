"""The plan desk (/coordinator/plan): the current delivery plan, its coverage, what it could not reach and
why, and the planner's controls: re-plan now, pause / resume, approve routes, require approval.

The actions write the controls in the store (gateway.store.planner) with an audit line; the planner reads
them before each run and polls the re-plan request while it waits, so nothing here talks to it directly.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from dashboard.read import plan as plan_read
from dashboard.web.auth import current_account, role_required
from dashboard.web.store import get_session, get_store
from dashboard.web.websessions import client_address
from gateway.store import planner
from logistics.allocation.report import REASONS

bp = Blueprint("plan", __name__, url_prefix="/coordinator/plan")
ACTIONS = ("replan", "pause", "resume", "approve", "approval")


@bp.get("")
@role_required("coordinator")
def index() -> str:
    """The plan, its coverage, what it left unmet and why, the planner's last runs and controls."""
    reason = request.args.get("reason") or None
    if reason is not None and reason not in REASONS:
        abort(400, description=f"reason must be one of: {', '.join(REASONS)}")
    return render_template(
        "plan.html",
        desk=plan_read.desk(get_session(), reason),
        reason=reason,
        reason_words=REASONS,
        triggers=plan_read.TRIGGER_WORDS,
    )


@bp.post("/<action>")
@role_required("coordinator")
def act(action: str) -> Response:
    """One control; the planner acts on it at its next look (a few seconds)."""
    if action not in ACTIONS:
        abort(404, description=f"no plan action {action[:40]!r}")
    account = current_account()
    assert account is not None  # role_required ran first
    who, address = account.username, client_address()
    required = None
    if action == "approval":
        value = request.form.get("required", "")
        if value not in ("on", "off"):
            abort(400, description="required must be on or off")
        required = value == "on"
    with get_store().sessions.begin() as session:
        if action == "replan":
            planner.request_replan(session, who, address)
            message = "Re-plan asked for: the planner starts within a few seconds."
            if planner.controls(session).paused:
                message = "Re-plan asked for; planning is paused, so it runs once you resume."
        elif action in ("pause", "resume"):
            changed = planner.set_paused(session, action == "pause", who, address)
            if action == "resume" and changed:
                planner.request_replan(session, who, address)  # catch up now, not at the next timer
            message = {
                ("pause", True): "Delivery planning paused. Repair assignments and the board go on.",
                ("resume", True): "Delivery planning resumed: a run starts within a few seconds.",
            }.get((action, changed), f"Planning was already {'paused' if action == 'pause' else 'running'}.")
        elif action == "approve":
            released = planner.approve(session, who, address)
            message = f"Approved: {released} route{'s' * (released != 1)} offered to their drivers."
        else:
            assert required is not None
            changed = planner.set_require_approval(session, required, who, address)
            state = "New routes now wait for approval." if required else "New routes go to drivers at once."
            message = state if changed else "No change: " + state[0].lower() + state[1:]
    flash(message, "ok")
    return redirect(url_for("plan.index"))
