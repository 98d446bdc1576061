"""The driver view (/routes/<id>): when, ordered stops, the route on a map, GPX, accept / give back / decline,
picked up / delivered buttons; a route the planner replaced or withdrew says why and links to its successor.

Every action on a superseded, withdrawn, declined or done route is a 409 with the store's message
(gateway.store.deliveries.DEAD_ROUTE); for a superseded one the page links to the route that replaced it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as Redirect

from dashboard.read import route_list
from dashboard.read import routes as route_read
from dashboard.web.auth import current_account, role_required
from dashboard.web.store import get_session, get_store
from gateway.contract.errors import Conflict
from gateway.store import deliveries
from gateway.store.models import Member

bp = Blueprint("routes", __name__, url_prefix="/routes")
T = TypeVar("T")


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
    """The route's stops in order, each with its action, and a map of the route."""
    route = _route(route_id)
    driver = get_session().get(Member, route.member_id) if route.member_id is not None else None
    data = {
        "stops": [
            {"n": s.position + 1, "lat": s.lat, "lon": s.lon, "site": s.site_name, "status": s.status}
            for s in route.stops
        ]
    }
    return render_template("route.html", route=route, driver=driver, map_data=data)


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
    """The quantity a driver entered for a pickup (None: as planned); 400 if it is not a number."""
    if not text.strip():
        return None
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        abort(400, description=f"the quantity {text[:20]!r} is not a number")


@bp.post("/<id:route_id>/stops/<id:stop_id>/<outcome>")
@role_required("driver")
def record(route_id: int, stop_id: int, outcome: str) -> Redirect:
    """Picked up / delivered (outcome done) or failed with a reason."""
    _route(route_id)
    quantity = _quantity(request.form.get("quantity", ""))
    reason = request.form.get("reason", "")
    # A refused stop raises a domain error (bad input, not found, conflict): the web layer answers it.
    action = _act(
        route_id,
        lambda session: deliveries.record_stop(session, route_id, stop_id, outcome, reason, quantity).action,
    )
    done = {"pickup": "Picked up.", "delivery": "Delivered."}[action]
    message = done if outcome == "done" else "Failed delivery recorded; it will be re-planned."
    flash(message, "ok")
    return redirect(url_for("routes.show", route_id=route_id) + f"#stop-{stop_id}")


@bp.post("/<id:route_id>/accept")
@role_required("driver")
def accept(route_id: int) -> Redirect:
    """The driver will drive it: their hours are reserved and the planner no longer revises it."""
    _route(route_id)
    _act(route_id, lambda session: deliveries.accept_route(session, route_id))
    flash("Route accepted: it is yours. Thank you!", "ok")
    return redirect(url_for("routes.show", route_id=route_id))


@bp.post("/<id:route_id>/release")
@role_required("driver")
def release(route_id: int) -> Redirect:
    """The driver gives back a route they accepted and have not started (a reason is required)."""
    return _give_back(route_id, "Route given back; its {n} shipment{s} go back to the planner.")


@bp.post("/<id:route_id>/decline")
@role_required("driver")
def decline(route_id: int) -> Redirect:
    """The driver cannot drive this route: it goes back to the planner, with the reason."""
    return _give_back(route_id, "Route declined; its {n} shipment{s} go back to the planner.")


def _give_back(route_id: int, done: str) -> Redirect:
    """Decline a proposed route or release an accepted one (deliveries.decline_route does either)."""
    _route(route_id)
    reason = request.form.get("reason", "")
    freed = _act(route_id, lambda session: deliveries.decline_route(session, route_id, reason))
    flash(done.format(n=len(freed), s="" if len(freed) == 1 else "s"), "ok")
    return redirect(url_for("routes.mine"))


def _act(route_id: int, write: Callable[[Session], T]) -> T:
    """`write(session)` in its own transaction. A refusal (Conflict) is answered with a 409 page linking to
    the route that replaced it (superseded) or to the driver's routes; other domain errors go to the web
    layer's handlers."""
    try:
        with get_store().sessions.begin() as session:
            return write(session)
    except Conflict as exc:
        get_session().expire_all()  # read the route as the refused write saw it
        route = route_read.load_route(get_session(), route_id)
        if route is None:
            raise
        if route.replaced_by is not None:
            link = (url_for("routes.show", route_id=route.replaced_by), f"Open route {route.replaced_by}")
        else:  # declined, withdrawn, done, or not allowed from its state: back to what the driver has
            link = (url_for("routes.mine"), "My routes")
        page = render_template("error.html", status=409, name="Conflict", message=str(exc), link=link)
        abort(make_response(page, 409))
