"""A driver's route: its ordered stops, and recording each pickup, delivery or failed delivery.

Picking up takes the shipment's goods out of the source site's stock; delivering puts them into the
destination's; both append a stock ledger entry with source "delivery". A failed delivery keeps its reason,
returns picked-up goods to the source site's stock, and tells the planner (an internal event; the planner
loop sees the failed shipment in the store within seconds and re-plans at once).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape as xml_escape

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from gateway.contract.protocol import INTERNAL_EVENTS, format_ts
from gateway.store.models import (
    Community,
    Good,
    OutboxMessage,
    Route,
    RouteStop,
    Shipment,
    Site,
    Stock,
    StockLedgerEntry,
    utcnow,
)

MAX_REASON = 500
FAILED_SHOWN = 100  # the coordinator's list of failed deliveries: the newest


class DeliveryError(ValueError):
    """A stop action that cannot be applied; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StopView:
    """One stop as the driver sees it."""

    id: int
    position: int
    action: str
    status: str
    site_name: str
    community_name: str
    lat: float
    lon: float
    good_name: str | None
    quantity: float | None
    unit: str | None
    eta: datetime | None
    failure_reason: str | None


@dataclass(frozen=True)
class RouteView:
    """A route with its stops in order."""

    id: int
    status: str
    member_id: int | None
    distance_km: float
    duration_min: float
    stops: tuple[StopView, ...]


def load_route(session: Session, route_id: int) -> RouteView | None:
    """The route and its stops, in order; None when there is no such route."""
    route = session.get(Route, route_id)
    if route is None:
        return None
    rows = session.execute(
        select(RouteStop, Site.name, Community.name, Site.lat, Site.lon, Good.name, Shipment, Good.unit)
        .join(Site, RouteStop.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .outerjoin(Shipment, RouteStop.shipment_id == Shipment.id)
        .outerjoin(Good, Shipment.good_id == Good.id)
        .where(RouteStop.route_id == route_id)
        .order_by(RouteStop.position)
    )
    stops = tuple(
        StopView(
            stop.id,
            stop.position,
            stop.action,
            stop.status,
            site,
            community,
            lat,
            lon,
            good,
            shipment.quantity if shipment else None,
            unit,
            stop.eta,
            shipment.failure_reason if shipment and stop.status == "failed" else None,
        )
        for stop, site, community, lat, lon, good, shipment, unit in rows
    )
    return RouteView(route.id, route.status, route.member_id, route.distance_km, route.duration_min, stops)


def member_routes(session: Session, member_id: int | None) -> list[Route]:
    """Routes of a member (all routes for None) not yet done, newest first."""
    query = select(Route).where(Route.status != "done").order_by(Route.id.desc())
    if member_id is not None:
        query = query.where(Route.member_id == member_id)
    return list(session.scalars(query))


def _move_stock(session: Session, site_id: int, shipment: Shipment, delta: float, reason: str) -> None:
    stock = session.get(Stock, (site_id, shipment.good_id))
    before = stock.quantity if stock else 0.0
    after = before + delta
    if after < 0:
        raise DeliveryError(f"the site holds only {before:g} of this good, not {-delta:g}")
    now = utcnow()
    if stock is None:
        stock = Stock(site_id=site_id, good_id=shipment.good_id, quantity=0.0)
        session.add(stock)
    stock.quantity, stock.updated_at = after, now
    session.add(
        StockLedgerEntry(
            site_id=site_id,
            good_id=shipment.good_id,
            delta=delta,
            quantity_after=after,
            reason=reason[:200],
            source="delivery",
            shipment_id=shipment.id,
            created_at=now,
        )
    )


def record_stop(
    session: Session,
    route_id: int,
    stop_id: int,
    outcome: str,
    reason: str = "",
    quantity: float | None = None,
) -> RouteStop:
    """Record `outcome` (done or failed) for a pending stop of the route; raises DeliveryError.

    A pickup may take less than planned (`quantity`: what was there); the shipment then carries what was
    loaded, and the rest of the need waits for the next plan instead of the whole delivery failing."""
    if outcome not in ("done", "failed"):
        raise DeliveryError(f"unknown outcome {outcome[:40]!r}: use done or failed", 404)
    reason = reason.strip()
    if outcome == "failed" and not reason:
        raise DeliveryError("say why the delivery failed, so it can be re-planned sensibly", 400)
    if len(reason) > MAX_REASON:
        raise DeliveryError(f"the reason is longer than {MAX_REASON} characters", 400)
    if quantity is not None and not math.isfinite(quantity):
        raise DeliveryError("the quantity must be a number", 400)
    stop = session.scalar(
        select(RouteStop).where(RouteStop.id == stop_id, RouteStop.route_id == route_id).with_for_update()
    )
    if stop is None:
        raise DeliveryError("no such stop on this route", 404)
    if stop.status != "pending":
        raise DeliveryError(f"this stop is already recorded as {stop.status}")
    shipment = session.get(Shipment, stop.shipment_id) if stop.shipment_id is not None else None
    if shipment is None:
        raise DeliveryError("this stop carries no shipment", 400)
    if outcome == "failed":
        if stop.action != "delivery":
            raise DeliveryError("only a delivery can fail; skip a pickup by failing its delivery", 400)
        if shipment.status == "picked_up":
            _move_stock(session, shipment.from_site_id, shipment, shipment.quantity, f"returned: {reason}")
        shipment.status, shipment.failure_reason = "failed", reason
        event = {
            "type": "delivery_failed",
            "ts": format_ts(utcnow()),
            "shipment_id": shipment.id,
            "route_id": route_id,
            "reason": reason,
        }
        session.add(OutboxMessage(topic=INTERNAL_EVENTS, payload=json.dumps(event).encode(), qos=1))
    elif stop.action == "pickup":
        if shipment.status not in ("planned", "assigned"):
            raise DeliveryError(
                f"the shipment is {shipment.status.replace('_', ' ')}: it cannot be picked up"
            )
        planned = shipment.quantity
        taken = planned if quantity is None else quantity
        if not 0 < taken <= planned:
            raise DeliveryError(f"pick up more than 0 and at most the planned {planned:g}", 400)
        note = f"picked up (route {route_id})" if taken == planned else f"picked up {taken:g} of {planned:g}"
        stock = session.get(Stock, (stop.site_id, shipment.good_id))
        held = stock.quantity if stock else 0.0
        if held < taken:
            raise DeliveryError(
                f"the site holds only {held:g} of this good, not {taken:g}: pick up what is there"
            )
        shipment.quantity = taken
        _move_stock(session, stop.site_id, shipment, -taken, note)
        shipment.status = "picked_up"
    else:
        if shipment.status != "picked_up":
            raise DeliveryError("pick the goods up first: the shipment has not been picked up")
        _move_stock(session, stop.site_id, shipment, shipment.quantity, f"delivered (route {route_id})")
        shipment.status = "delivered"
    stop.status = outcome
    route = session.get(Route, route_id)
    assert route is not None  # the stop belongs to it
    pending = session.scalar(
        select(RouteStop.id).where(RouteStop.route_id == route_id, RouteStop.status == "pending").limit(1)
    )
    route.status = "in_progress" if pending is not None else "done"
    return stop


def decline_route(session: Session, route_id: int, reason: str) -> list[int]:
    """The driver cannot drive a route they have not started: it is declined and its shipments are free
    for the planner again (planned, no route, the reason kept). Returns their ids; DeliveryError if the
    route is under way, done or declined already."""
    reason = reason.strip()
    if not reason:
        raise DeliveryError("say why, so the coordinator and the planner know", 400)
    if len(reason) > MAX_REASON:
        raise DeliveryError(f"the reason is longer than {MAX_REASON} characters", 400)
    route = session.scalar(select(Route).where(Route.id == route_id).with_for_update())
    if route is None:
        raise DeliveryError("no such route", 404)
    if route.status != "proposed":
        raise DeliveryError(
            f"this route is {route.status.replace('_', ' ')}: only a route not started can be declined"
        )
    freed = list(
        session.scalars(select(Shipment).where(Shipment.route_id == route_id, Shipment.status == "assigned"))
    )
    for shipment in freed:
        shipment.status, shipment.route_id = "planned", None
        shipment.failure_reason = f"route {route_id} declined: {reason}"
    route.status = "declined"
    return [s.id for s in freed]


@dataclass(frozen=True)
class FailedDelivery:
    """A failed shipment for the coordinator: why, and what the planner made of it since."""

    shipment_id: int
    route_id: int | None
    good_name: str
    quantity: float
    unit: str
    from_name: str
    to_name: str
    reason: str
    again: str  # "route 12 (assigned)", "waiting: <the router's reason>", "not planned again (yet)", ...


def failed_deliveries(session: Session, limit: int = FAILED_SHOWN) -> list[FailedDelivery]:
    """The newest failed shipments with their reasons and what became of their goods: the same good on the
    same lane planned again later (on a route, or waiting with the router's reason), or not."""
    source, dest = aliased(Site), aliased(Site)
    rows = session.execute(
        select(Shipment, Good.name, Good.unit, source.name, dest.name)
        .join(Good, Shipment.good_id == Good.id)
        .join(source, Shipment.from_site_id == source.id)
        .join(dest, Shipment.to_site_id == dest.id)
        .where(Shipment.status == "failed")
        .order_by(Shipment.id.desc())
        .limit(limit)
    ).all()
    found = []
    for shipment, good, unit, from_name, to_name in rows:
        later = session.scalars(
            select(Shipment)
            .where(
                Shipment.id > shipment.id,
                Shipment.good_id == shipment.good_id,
                Shipment.from_site_id == shipment.from_site_id,
                Shipment.to_site_id == shipment.to_site_id,
                Shipment.status.in_(("planned", "assigned", "picked_up", "delivered")),
            )
            .order_by(Shipment.id)
            .limit(1)
        ).first()
        if later is None:  # the planner has not run since, or no longer sends this good this way
            again = "not planned again (yet)"
        elif later.route_id is not None:
            again = f"route {later.route_id} ({later.status.replace('_', ' ')})"
        else:
            again = f"waiting: {later.failure_reason}" if later.failure_reason else "planned, not yet routed"
        found.append(
            FailedDelivery(
                shipment.id,
                shipment.route_id,
                good,
                shipment.quantity,
                unit,
                from_name,
                to_name,
                shipment.failure_reason or "",
                again,
            )
        )
    return found


def gpx(route: RouteView, name: str) -> str:
    """GPX 1.1 for navigation apps (OsmAnd, Organic Maps): a waypoint per stop and the route in order."""
    points = []
    for stop in route.stops:
        what = (
            f"{stop.action} {stop.quantity:g} {stop.unit} {stop.good_name}" if stop.good_name else stop.action
        )
        label = f"{stop.position + 1}. {stop.site_name} ({stop.community_name})"
        points.append((stop, label, what))
    wpts = "".join(
        f'<wpt lat="{s.lat:.6f}" lon="{s.lon:.6f}"><name>{xml_escape(label)}</name>'
        f"<desc>{xml_escape(what)}</desc></wpt>\n"
        for s, label, what in points
    )
    rtepts = "".join(
        f'<rtept lat="{s.lat:.6f}" lon="{s.lon:.6f}"><name>{xml_escape(label)}</name></rtept>\n'
        for s, label, _ in points
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="Rhizome" xmlns="http://www.topografix.com/GPX/1/1">\n'
        f"<metadata><name>{xml_escape(name)}</name></metadata>\n"
        f"{wpts}<rte><name>{xml_escape(name)}</name>\n{rtepts}</rte>\n</gpx>\n"
    )
