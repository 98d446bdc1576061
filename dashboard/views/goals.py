"""The month's sector goals (/goals): each sector's progress ("Food: 86% of this month's goals met") and
every hours and slots goal of the region and the communities with how far it has come; coordinators set
and remove goals here.

Public like the map, and like it collective only: sums by sector and community, never a person's hours or
name (who set a goal is shown to coordinators alone). gateway.store.goals checks every value; its
InvalidInput re-shows the form with the message and a 400.

On a community node the current month's page also shows, as lines of their own, the hours other nodes'
people gave this node's communities this year (their `hours` facts, sums per sector). They are not counted
in the goals: the goals are monthly and the facts carry yearly sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from dashboard.read import admin, progress
from dashboard.read import help as help_read
from dashboard.web.auth import current_account, role_required, viewer_required
from dashboard.web.node import current_node
from dashboard.web.store import get_session, get_store
from gateway.contract import clock
from gateway.contract.errors import InvalidInput
from gateway.store import goals as store
from gateway.store.models.vocab import BOARD_SECTORS, GOAL_KINDS

bp = Blueprint("goals", __name__)
FIELDS = ("community", "sector", "kind", "target", "month")


@dataclass(frozen=True)
class SectorRow:
    """One sector on the page: its progress this month (None for another month) and its work goals."""

    sector: str
    summary: progress.SectorProgress | None
    goals: tuple[progress.GoalProgress, ...]


@bp.get("/goals")
@viewer_required
def index() -> str:
    """This month's goals by sector (or another month's, ?month=YYYY-MM), with the form for coordinators."""
    return _page()


@bp.post("/goals")
@role_required("coordinator")
def set_goal() -> Response | tuple[str, int]:
    """Set a goal (or change its target); a bad value re-shows the page with the message and a 400."""
    account = current_account()
    assert account is not None  # role_required ran first
    form = request.form
    try:
        with get_store().sessions.begin() as session:
            goal = store.set_goal(
                session,
                community_id=store.community_id_of(session, form.get("community", "")),
                sector=form.get("sector", ""),
                month=form.get("month", "") or store.month_of(clock.now()),
                kind=form.get("kind", ""),
                target=form.get("target", ""),
                set_by=account.username,
            )
            month = goal.month
    except InvalidInput as exc:
        return _page(error=str(exc)), 400
    flash("Goal set.", "ok")
    return redirect(_month_url(month))


@bp.post("/goals/<id:goal_id>/remove")
@role_required("coordinator")
def remove_goal(goal_id: int) -> Response:
    """Remove a goal (a 404 if there is none)."""
    with get_store().sessions.begin() as session:
        month = store.remove_goal(session, goal_id).month
    flash("Goal removed.", "ok")
    return redirect(_month_url(month))


def _month_url(month: str) -> str:
    current = store.month_of(clock.now())
    return url_for("goals.index") if month == current else url_for("goals.index", month=month)


def _page(error: str | None = None) -> str:
    session = get_session()
    now = clock.now()
    current = store.month_of(now)
    month = store.parse_month(request.args["month"]) if request.args.get("month") else current
    if month == current:
        by_sector = {p.sector: p for p in progress.sector_progress(session, now=now, every_sector=True)}
        rows = [
            SectorRow(s, p, p.work)
            for s, p in by_sector.items()
            if s in BOARD_SECTORS or p.goals  # water and energy have stock goals only
        ]
    else:
        start, _ = store.month_bounds(month)
        work = progress.work_goals(session, start)
        rows = [SectorRow(s, None, tuple(g for g in work if g.sector == s)) for s in BOARD_SECTORS]
    account = current_account()
    coordinator = account is not None and account.role == "coordinator"
    node = current_node()
    neighbours = help_read.received(session, node.communities, now.year) if node and month == current else []
    return render_template(
        "goals.html",
        month=month,
        month_name=_month_name(store.month_bounds(month)[0]),
        current=month == current,
        rows=rows,
        neighbours=neighbours,
        year=now.year,
        coordinator=coordinator,
        set_by=_set_by(session, month) if coordinator else {},
        communities=admin.community_choices(session) if coordinator else [],
        sectors=BOARD_SECTORS,
        kinds=GOAL_KINDS,
        values=_values(month) if error is None else {k: request.form.get(k, "") for k in FIELDS},
        error=error,
    )


def _set_by(session: Session, month: str) -> dict[int, str]:
    """Who set each goal of the month (coordinators' accounts), for coordinators only."""
    return {g.id: g.set_by for g in store.goals_for(session, month)}


def _values(month: str) -> dict[str, str]:
    return {"community": store.REGION, "sector": "", "kind": "hours", "target": "", "month": month}


def _month_name(start: datetime) -> str:
    return start.strftime("%B %Y")
