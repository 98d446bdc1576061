"""The crew view (/crew): my open repair tasks by urgency, actions on them, and alerts pushed live (SSE).

Open repairs nobody has yet, in the member's community or near their home and needing no skill they lack,
are listed with "Take it" (the board's take, gateway.store.board.take_repair): a task must not wait unseen
while no planner runs.

On a community node the page also lists the neighbours' open repair tasks the member could take (near their
home, no skill they lack) with "I can help", and their own standing offers with "Withdraw"
(gateway.federation.help). Elsewhere none of it shows and the help forms answer 404.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as Redirect

from dashboard.read import crew as crew_read
from dashboard.read import crew_overview, wording
from dashboard.read import help as help_read
from dashboard.web.auth import current_account, role_required
from dashboard.web.node import current_node, node_or_404
from dashboard.web.notifier import event_stream
from dashboard.web.store import get_session, get_store
from gateway.contract import clock
from gateway.contract.errors import Conflict, InvalidInput, NotFound
from gateway.federation import help as fed_help
from gateway.store import board
from gateway.store import tasks as work
from gateway.store.models import Member, utcnow
from logistics.common.geo import haversine_km

bp = Blueprint("crew", __name__, url_prefix="/crew")
TASK_REF = re.compile(r"[a-z0-9][a-z0-9-]{0,47}/[0-9]{1,18}")  # "<node>/<task id>", as help.task_ref writes
MAX_REASON = 500
# Check and write as one step, so a double tap offers once (offer_help checks for a standing offer first).
_OFFERING = threading.Lock()


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
    """My tasks by urgency with where they are, and my recent alerts (a coordinator who is no member, and
    names none with ?member=, gets the crew's work at a glance instead: the nav's "Crew" link)."""
    account = current_account()
    assert account is not None  # role_required ran first
    if account.role == "coordinator" and account.member_id is None and not request.args.get("member"):
        session = get_session()
        return render_template(
            "crew_overview.html",
            crew=crew_overview.crew_lines(session),
            waiting=crew_overview.waiting(session),
            words=wording,
        )
    member = _member()
    session = get_session()
    tasks = crew_read.member_tasks(session, member.id)
    alerts = crew_read.member_alerts(session, member.id)
    near = crew_read.open_near(session, member)
    ways = {
        t.id: (
            haversine_km(member.lat, member.lon, t.lat, t.lon),
            bearing(member.lat, member.lon, t.lat, t.lon),
        )
        for t in [*tasks, *near]
    }
    data = {
        "home": {"lat": member.lat, "lon": member.lon, "name": member.name},
        "tasks": [
            {"id": t.id, "title": t.title, "lat": t.lat, "lon": t.lon, "site": t.site_name} for t in tasks
        ],
    }
    node = current_node()
    return render_template(
        "crew.html",
        member=member,
        asking=help_read.asking(session, node.name, member.id) if node is not None else None,
        my_offers=help_read.my_offers(session, member.id) if node is not None else [],
        tasks=tasks,
        near=near,
        near_km=crew_read.NEAR_KM,
        alerts=list(reversed(alerts)),
        ways=ways,
        words=wording,
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
    """Accept, decline (with a reason), start, mark fixed, or escalate (with a note: parts or another skill
    needed) one of my tasks."""
    member = _member()
    # A refused action raises a domain error (bad input, not found, conflict): the web layer answers it.
    with get_store().sessions.begin() as session:
        task = work.apply_action(session, task_id, member.id, action, request.form.get("reason", ""))
        if action == work.TaskAction.ESCALATE:
            message = f"Thank you: “{task.title}” is handed on with your note; its community is told."
        else:
            message = f"Task “{task.title}” is now {task.status.replace('_', ' ')}."
    flash(message, "ok")
    return redirect(url_for("crew.index", member=request.args.get("member")))


@bp.post("/tasks/<id:task_id>/take")
@role_required("crew")
def take(task_id: int) -> Redirect:
    """Take an open repair near me: assigned to me and accepted in one step, as the board's "I'll fix it"
    (gateway.store.board.take_repair: 409 if someone has it, a skill is missing or my week is full)."""
    member = _member()
    with get_store().sessions.begin() as session:
        task = board.take_repair(session, member.id, task_id, now=clock.now())  # the work clock, as the board
        message = f"The repair “{task.title}” is yours; thank you."
    flash(message, "ok")
    return redirect(url_for("crew.index", member=request.args.get("member")))


@bp.post("/help")
@role_required("crew")
def offer_help() -> Redirect:
    """Offer to do a neighbour's open task (a node only): the offer becomes this node's `help` fact.

    400: a ref of the wrong shape, or hours beyond what the member offered; 404: no such task was ever
    open; 409: offered already, or the task is no longer open to this member."""
    node = node_or_404()
    member = _member()
    ref = request.form.get("ref", "")
    if not TASK_REF.fullmatch(ref):
        abort(400, description="ref must name a neighbour's task: <node>/<task id>")
    with _OFFERING, get_store().sessions.begin() as session:
        try:
            row = fed_help.offer_help(session, node.name, member.id, ref, utcnow())
        except NotFound:
            if help_read.is_known_task(session, ref):
                raise Conflict("this task is no longer open to you: taken, closed or out of reach") from None
            raise
        message = f"Thank you: your offer of {row.hours:g} h for “{row.title}” is sent to its community."
    flash(message, "ok")
    return redirect(url_for("crew.index", member=request.args.get("member")))


@bp.post("/help/<id:help_id>/withdraw")
@role_required("crew")
def withdraw_help(help_id: int) -> Redirect:
    """Take back one of my offers (a node only); 404 if it is not mine, 409 if it no longer stands."""
    node = node_or_404()
    member = _member()
    reason = request.form.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason: at most {MAX_REASON} characters")
    with _OFFERING, get_store().sessions.begin() as session:
        fed_help.withdraw_help(session, node.name, help_id, member.id, reason, utcnow())
    flash("Your offer is withdrawn; its community is told.", "ok")
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
            body = {
                "id": alert.id,
                "at": alert.at.isoformat(),
                "text": alert.text,
                "kind": alert.kind,
                "link": alert.link,
            }
            yield f"id: {alert.id}\nevent: alert\ndata: {json.dumps(body)}\n\n"
        for task in tasks:
            last_task = max(last_task, task.id)
            body = {
                "id": task.id,
                "title": task.title,
                "urgency": task.urgency,
                "urgency_word": wording.urgency_word(task.urgency),
                "status": task.status,
                "site": task.site_name,
                "community": task.community_name,
            }
            yield f"event: task\ndata: {json.dumps(body)}\n\n"

    return event_stream(app, new_events)


def _int_arg_header() -> int:
    raw = request.headers.get("Last-Event-ID", "0")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0
