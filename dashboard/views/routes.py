"""The driver view (/routes/<id>): when, ordered stops, the route on a map, GPX, accept / give back / decline,
picked up / delivered buttons; a route the planner replaced or withdrew says why and links to its successor.

Every action on a superseded, withdrawn, declined or done route is a 409 with the store's message
(gateway.store.deliveries.DEAD_ROUTE); for a superseded one the page links to the route that replaced it.
Each form carries an action id made when the page was drawn, so a form sent twice is applied once
(gateway.store.route_actions); with script, route.js sends the same actions through the JSON API instead,
queued on the phone while it is offline.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import escape
from werkzeug.wrappers import Response as Redirect

from dashboard.read import route_list
from dashboard.read import routes as route_read
from dashboard.read import visits as route_visits
from dashboard.web.auth import current_account, role_required
from dashboard.web.config import map_options
from dashboard.web.store import get_session, get_store
from gateway.contract.errors import Conflict
from gateway.store import route_actions
from gateway.store.models import Member, utcnow
from gateway.store.models.vocab import DriverActionKind, StopAction

bp = Blueprint("routes", __name__, url_prefix="/routes")
# A stop's outcome in the form's URL -> the action, for (a drop-off, a pickup).
OUTCOME_KINDS = {
    "done": (DriverActionKind.DELIVERED, DriverActionKind.PICKED_UP),
    "failed": (DriverActionKind.FAILED, DriverActionKind.FAILED),
}


@bp.app_template_filter("interval")
def interval(starts_at: datetime | None, ends_at: datetime | None = None) -> str:
    """When a route runs, as "Tue 14 Jan 08:00 to 10:30" in UTC (the store's clock)."""
    if starts_at is None:
        return "time not set"
    text = starts_at.strftime("%a %d %b %H:%M")
    if ends_at is not None:
        same_day = ends_at.date() == starts_at.date()
        text += "\u2013" + ends_at.strftime("%H:%M" if same_day else "%a %d %b %H:%M")
    return text + " UTC"


def _route(route_id: int) -> route_read.RouteView:
    """The route if the signed-in driver drives it (coordinators see every route); 404 otherwise, also for
    a route held for a coordinator's approval (not offered to its driver yet)."""
    route = route_read.load_route(get_session(), route_id)
    account = current_account()
    assert account is not None  # role_required ran first
    if account.role != "coordinator" and (
        route is None or route.member_id != account.member_id or route.held
    ):
        abort(404, description="no such route among yours")
    if route is None:
        abort(404, description="no such route")
    return route


@bp.get("")
@role_required("driver")
def mine() -> str:
    """My current routes with their times and the planner's notices about the others. A coordinator gets
    the failed deliveries first, then every route filtered by driver, state and day, a page at a time."""
    account = current_account()
    assert account is not None
    session = get_session()
    if account.role != "coordinator":
        member_id = account.member_id
        return render_template(
            "routes.html",
            routes=route_read.member_routes(session, member_id) if member_id is not None else [],
            notices=route_read.route_notices(session, member_id) if member_id is not None else [],
        )
    try:
        wanted = route_list.parse_filter(request.args)
        page = route_list.route_page(session, wanted)
    except route_list.RouteFilterError as exc:
        abort(400, description=str(exc))
    return render_template(
        "routes_all.html",
        page=page,
        wanted=wanted,
        drivers=route_list.driver_choices(session),
        states=[(s, route_list.STATE_LABELS.get(s, s.replace("_", " "))) for s in route_list.STATES],
        failed=route_read.failed_deliveries(session),
    )


@bp.get("/<id:route_id>")
@role_required("driver")
def show(route_id: int) -> str:
    """The route's visits in order (stops at one site merged), each with its actions and a geo: link, and
    a map of the route; the page keeps working offline (driver_app: its service worker and queue)."""
    route = _route(route_id)
    driver = get_session().get(Member, route.member_id) if route.member_id is not None else None
    found = route_visits.visits(route)
    options = map_options(current_app.config)
    data = route_visits.map_data(found) | {
        "tiles": options.tile_url,
        "attribution": str(escape(options.tile_attribution)),
        "maxZoom": options.max_zoom,
    }
    if options.basemap and not options.tile_url:  # the map's own basemap, kept on the phone by the worker
        data["basemap"] = {
            "url": url_for("map.basemap"),
            "attribution": str(escape(options.basemap_attribution)),
            "maxDataZoom": options.basemap_max_zoom,
        }
    return render_template(
        "route.html",
        route=route,
        driver=driver,
        visits=found,
        map_data=data,
        rendered_at=utcnow(),
        new_action_id=lambda: str(uuid.uuid4()),
    )


@bp.get("/<id:route_id>.gpx")
def gpx(route_id: int) -> Response:
    """The route as GPX 1.1, for OsmAnd, Organic Maps and other navigation apps. A file, not a page: signed
    out (or not a driver) is a 401 (403) as documented, not a redirect to the login page."""
    account = current_account()
    if account is None:
        abort(401, description="sign in as the route's driver (or a coordinator) to download its GPX")
    if account.role not in ("driver", "coordinator"):
        abort(403, description="only the route's driver or a coordinator downloads its GPX")
    route = _route(route_id)
    return Response(
        route_read.gpx(route, f"Rhizome route {route.id}"),
        mimetype="application/gpx+xml",
        headers={"Content-Disposition": f'attachment; filename="rhizome-route-{route.id}.gpx"'},
    )


def _quantity(text: str) -> float | None:
    """The quantity a driver entered for a pickup (None: left empty, which the store refuses for a pickup
    rather than taking the plan); 400 if it is not a number."""
    if not text.strip():
        return None
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        abort(400, description=f"the quantity {text[:20]!r} is not a number")


def _action_id() -> str:
    """The form's action id (made when the page was drawn: a form sent twice is applied once), or a new
    one for a client that sent none."""
    given = request.form.get("action_id", "").strip().lower()
    return given or str(uuid.uuid4())


@bp.post("/<id:route_id>/stops/<id:stop_id>/<outcome>")
@role_required("driver")
def record(route_id: int, stop_id: int, outcome: str) -> Redirect:
    """Picked up / delivered (outcome done) or failed with a reason."""
    route = _route(route_id)
    if outcome not in OUTCOME_KINDS:
        abort(404, description=f"unknown outcome {outcome[:40]!r}: use done or failed")
    stop = next((s for s in route.stops if s.id == stop_id), None)
    if stop is None:
        abort(404, description="no such stop on this route")
    kind = OUTCOME_KINDS[outcome][stop.action == StopAction.PICKUP]
    quantity = _quantity(request.form.get("quantity", "")) if kind is DriverActionKind.PICKED_UP else None
    reason = request.form.get("reason", "") if kind is DriverActionKind.FAILED else ""
    answer = _act(route_id, kind, stop_id, quantity, reason)
    flash(answer.message, "ok")
    return redirect(url_for("routes.show", route_id=route_id) + f"#stop-{stop_id}")


@bp.post("/<id:route_id>/accept")
@role_required("driver")
def accept(route_id: int) -> Redirect:
    """The driver will drive it: their hours are reserved and the planner no longer revises it."""
    _route(route_id)
    flash(_act(route_id, DriverActionKind.ACCEPT).message, "ok")
    return redirect(url_for("routes.show", route_id=route_id))


@bp.post("/<id:route_id>/release")
@role_required("driver")
def release(route_id: int) -> Redirect:
    """The driver gives back a route they accepted and have not started (a reason is welcome, not needed)."""
    return _give_back(route_id)


@bp.post("/<id:route_id>/decline")
@role_required("driver")
def decline(route_id: int) -> Redirect:
    """The driver cannot drive this route: it goes back to the planner (a reason is welcome, not needed)."""
    return _give_back(route_id)


def _give_back(route_id: int) -> Redirect:
    """Decline a proposed route or release an accepted one (deliveries.decline_route does either)."""
    _route(route_id)
    answer = _act(route_id, DriverActionKind.DECLINE, reason=request.form.get("reason", ""))
    flash(answer.message, "ok")
    return redirect(url_for("routes.mine"))


def _act(
    route_id: int,
    kind: DriverActionKind,
    stop_id: int | None = None,
    quantity: float | None = None,
    reason: str = "",
) -> route_actions.Answer:
    """The action applied once under the form's action id (route_actions.perform). A refusal (Conflict) is
    answered with a 409 page linking to the route that replaced it (superseded) or back to the route and
    the driver's routes; other refusals go to the web layer's handlers."""
    account = current_account()
    assert account is not None  # role_required ran first
    ask = route_actions.Ask(_action_id(), route_id, kind, account.username, stop_id, quantity, reason)
    answer = route_actions.perform(get_store().sessions, ask)
    if answer.refused is None:
        return answer
    if answer.refused is not Conflict:
        raise answer.refused(answer.message)
    get_session().expire_all()  # read the route as the refused write saw it
    route = route_read.load_route(get_session(), route_id)
    links = [(url_for("routes.show", route_id=route_id), f"Back to route {route_id}")]
    if route is not None and route.replaced_by is not None:
        links.insert(
            0, (url_for("routes.show", route_id=route.replaced_by), f"Open route {route.replaced_by}")
        )
    page = render_template("error.html", status=409, name="Conflict", message=answer.message, links=links)
    abort(make_response(page, 409))
