"""The driver view (/routes/<id>): ordered stops, the route on a map, GPX, picked up / delivered buttons."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as Redirect

from dashboard.read import routes as route_read
from dashboard.web.auth import current_account, role_required
from dashboard.web.store import get_session, get_store
from gateway.store import deliveries
from gateway.store.models import Member

bp = Blueprint("routes", __name__, url_prefix="/routes")


def _route(route_id: int) -> route_read.RouteView:
    """The route if the signed-in driver drives it (coordinators see every route); 404 otherwise."""
    route = route_read.load_route(get_session(), route_id)
    account = current_account()
    assert account is not None  # role_required ran first
    if route is None or (account.role != "coordinator" and route.member_id != account.member_id):
        abort(404, description="no such route among yours")
    return route


@bp.get("")
@role_required("driver")
def mine() -> str:
    """My routes not yet done (for a coordinator: every route, and the failed deliveries with reasons)."""
    account = current_account()
    assert account is not None
    coordinator = account.role == "coordinator"
    member_id = None if coordinator else account.member_id
    return render_template(
        "routes.html",
        routes=route_read.member_routes(get_session(), member_id),
        failed=route_read.failed_deliveries(get_session()) if coordinator else [],
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
@role_required("driver")
def gpx(route_id: int) -> Response:
    """The route as GPX 1.1, for OsmAnd, Organic Maps and other navigation apps."""
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
    # A refused stop raises a domain error (bad input, not found, conflict): the web layer answers it.
    with get_store().sessions.begin() as session:
        reason = request.form.get("reason", "")
        stop = deliveries.record_stop(session, route_id, stop_id, outcome, reason, quantity)
        done = {"pickup": "Picked up.", "delivery": "Delivered."}[stop.action]
        message = done if outcome == "done" else "Failed delivery recorded; it will be re-planned."
    flash(message, "ok")
    return redirect(url_for("routes.show", route_id=route_id) + f"#stop-{stop_id}")


@bp.post("/<id:route_id>/decline")
@role_required("driver")
def decline(route_id: int) -> Redirect:
    """The driver cannot drive this route: it goes back to the planner, with the reason."""
    _route(route_id)
    with get_store().sessions.begin() as session:
        freed = deliveries.decline_route(session, route_id, request.form.get("reason", ""))
    flash(f"Route declined; its {len(freed)} shipments go back to the planner.", "ok")
    return redirect(url_for("routes.mine"))
