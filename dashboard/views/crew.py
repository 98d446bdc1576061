"""The crew view (/crew): my open repair tasks by urgency, actions on them, and alerts pushed live (SSE)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as Redirect

from dashboard.read import crew as crew_read
from dashboard.web.auth import current_account, role_required
from dashboard.web.notifier import event_stream
from dashboard.web.store import get_session, get_store
from gateway.store import tasks as work
from gateway.store.models import Member
from logistics.common.geo import haversine_km

bp = Blueprint("crew", __name__, url_prefix="/crew")


def _member() -> Member:
    """The member the signed-in account acts as (a coordinator may pick one with ?member=)."""
    account = current_account()
    assert account is not None  # role_required ran first
    member_id = account.member_id
    if account.role == "coordinator":
        raw = request.args.get("member", "")
        if raw:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
                abort(400, description="member must be a member id (a positive integer)")
            member_id = int(raw)
    member = get_session().get(Member, member_id) if member_id is not None else None
    if member is None:
        abort(404, description="this account is not linked to a member (a coordinator may add ?member=<id>)")
    return member


def bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> str:
    """Compass direction from the first point to the second (N, NE, ...)."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    degrees = (math.degrees(math.atan2(y, x)) + 360) % 360
    return ("N", "NE", "E", "SE", "S", "SW", "W", "NW")[round(degrees / 45) % 8]


@bp.get("")
@role_required("crew")
def index() -> str:
    """My tasks by urgency with where they are, and my recent alerts."""
    member = _member()
    session = get_session()
    tasks = crew_read.member_tasks(session, member.id)
    alerts = crew_read.member_alerts(session, member.id)
    ways = {
        t.id: (
            haversine_km(member.lat, member.lon, t.lat, t.lon),
            bearing(member.lat, member.lon, t.lat, t.lon),
        )
        for t in tasks
    }
    data = {
        "home": {"lat": member.lat, "lon": member.lon, "name": member.name},
        "tasks": [
            {"id": t.id, "title": t.title, "lat": t.lat, "lon": t.lon, "site": t.site_name} for t in tasks
        ],
    }
    return render_template(
        "crew.html",
        member=member,
        tasks=tasks,
        alerts=list(reversed(alerts)),
        ways=ways,
        map_data=data,
        events_url=url_for(
            "crew.events",
            member=request.args.get("member"),
            after=max((a.id for a in alerts), default=0),
            tasks_after=max((t.id for t in tasks), default=0),
        ),
    )


@bp.post("/tasks/<id:task_id>/<action>")
@role_required("crew")
def act(task_id: int, action: str) -> Redirect:
    """Accept, decline (with a reason), start or mark fixed one of my tasks."""
    member = _member()
    # A refused action raises a domain error (bad input, not found, conflict): the web layer answers it.
    with get_store().sessions.begin() as session:
        task = work.apply_action(session, task_id, member.id, action, request.form.get("reason", ""))
        message = f"Task “{task.title}” is now {task.status.replace('_', ' ')}."
    flash(message, "ok")
    return redirect(url_for("crew.index", member=request.args.get("member")))


def _int_arg(name: str) -> int:
    raw = request.args.get(name, "0")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        abort(400, description=f"{name} must be a non-negative integer")
    return int(raw)


@bp.get("/events")
@role_required("crew")
def events() -> Response:
    """Server-Sent Events: `alert` for each new alert to me, `task` for each task newly given to me.

    The stream reads the store when it opens and then only when the process's change notifier moves (an
    internal event, or a new outbox row when there is no broker), never on a timer of its own."""
    member_id = _member().id
    last_alert = max(_int_arg("after"), _int_arg_header())
    last_task = _int_arg("tasks_after")
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def new_events() -> Iterator[str]:
        nonlocal last_alert, last_task
        with get_store(app).sessions() as session:
            alerts = crew_read.member_alerts(session, member_id, last_alert)
            tasks = [t for t in crew_read.member_tasks(session, member_id) if t.id > last_task]
        for alert in alerts:
            last_alert = alert.id
            body = {"id": alert.id, "at": alert.at.isoformat(), "text": alert.text}
            yield f"id: {alert.id}\nevent: alert\ndata: {json.dumps(body)}\n\n"
        for task in tasks:
            last_task = max(last_task, task.id)
            body = {
                "id": task.id,
                "title": task.title,
                "urgency": task.urgency,
                "status": task.status,
                "site": task.site_name,
                "community": task.community_name,
            }
            yield f"event: task\ndata: {json.dumps(body)}\n\n"

    return event_stream(app, new_events)


def _int_arg_header() -> int:
    raw = request.headers.get("Last-Event-ID", "0")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0
