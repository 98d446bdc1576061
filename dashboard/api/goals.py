"""Sector goals as JSON (/api/goals): this month's progress per sector and each goal with what is achieved,
collective sums only; coordinators set and remove goals with the same checks as the /goals form."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

from dashboard.read import progress
from dashboard.web.auth import current_account
from dashboard.web.store import get_session, get_store
from gateway.contract import clock
from gateway.store import goals as store

bp = Blueprint("api_goals", __name__, url_prefix="/api/goals")


@bp.before_request
def _readers_only() -> None:
    if not current_app.config["PUBLIC_MAP"] and current_account() is None:
        abort(401, description="sign in first: this dashboard's map and API are not public")


def _coordinator() -> str:
    account = current_account()
    if account is None:
        abort(401, description="sign in first: goals are set by coordinators")
    if account.role != "coordinator":
        abort(403, description="only coordinators set or remove goals")
    return account.username


def goal_record(goal: progress.GoalProgress) -> dict[str, Any]:
    return {
        "id": goal.id,
        "sector": goal.sector,
        "kind": goal.kind,
        "community": goal.community,
        "community_name": goal.community_name,
        "target": goal.target,
        "achieved": round(goal.achieved, 2),
        "met": goal.met,
        "percent": goal.percent,
    }


@bp.get("")
def index() -> Response:
    """This month's sectors ("Food: 86% of this month's goals met") and every hours or places goal."""
    unknown = sorted(set(request.args))
    if unknown:
        abort(400, description=f"unknown query parameter {unknown[0][:40]!r}: this answer has no filters")
    session = get_session()
    now = clock.now()
    sectors = [
        {"sector": p.sector, "sentence": p.sentence, "percent": p.percent, "goals": p.goals, "met": p.met}
        for p in progress.sector_progress(session, now=now, every_sector=True)
    ]
    goals = [goal_record(g) for g in progress.work_goals(session, now)]
    return jsonify(month=store.month_of(now), sectors=sectors, goals=goals)


@bp.post("")
def set_goal() -> tuple[Response, int]:
    """Set (or change) a goal: {"sector", "kind": "hours"|"slots", "target", "community": slug|"region",
    "month": "YYYY-MM"}."""
    username = _coordinator()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="send a JSON object (Content-Type: application/json)")
    unknown = sorted(set(body) - {"sector", "kind", "target", "community", "month"})
    if unknown:
        abort(400, description=f"unknown field {str(unknown[0])[:40]!r}")
    with get_store().sessions.begin() as session:
        goal = store.set_goal(
            session,
            community_id=store.community_id_of(session, body.get("community", "region")),
            sector=body.get("sector", ""),
            month=body["month"] if "month" in body else store.month_of(clock.now()),
            kind=body.get("kind", ""),
            target=body.get("target", ""),
            set_by=username,
        )
        answer = {
            "id": goal.id,
            "sector": goal.sector,
            "kind": goal.kind,
            "month": goal.month,
            "target": goal.target,
        }
    return jsonify(answer), 201


@bp.delete("/<id:goal_id>")
def remove_goal(goal_id: int) -> Response:
    """Remove a goal (404 if there is none)."""
    _coordinator()
    with get_store().sessions.begin() as session:
        goal = store.remove_goal(session, goal_id)
        answer = {"id": goal_id, "removed": True, "month": goal.month}
    return jsonify(answer)
