"""The driver's and coordinator's reads of routes: a route's stops in order (and, once it is dead, why), a
member's current routes and the planner's notices about the others, the failed deliveries with what became
of them, and a route as GPX for navigation apps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape as xml_escape

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from gateway.contract import clock
from gateway.contract.text import without_control
from gateway.contract.topics import member_routes_topic
from gateway.store.deliveries import DEAD_ROUTE, replacement
from gateway.store.models import Community, Good, OutboxMessage, Route, RouteStop, Shipment, Site
from gateway.store.models.vocab import RouteStatus, ShipmentStatus, StopStatus

FAILED_SHOWN = 100  # the coordinator's list of failed deliveries: the newest
# Routes a driver still has before them; the others are done, declined, or the planner took them back.
CURRENT = (RouteStatus.PROPOSED, RouteStatus.ACCEPTED, RouteStatus.IN_PROGRESS)
# The planner's notices on a driver's routes topic that "My routes" shows (route_planned is the route itself).
NOTICE_EVENTS = {"route_updated": "updated", "route_withdrawn": "withdrawn"}
NOTICE_DAYS, NOTICES_SHOWN = 7, 20
# A failed shipment's goods counted as sent again: the same good on the same lane, not failed or cancelled.
SENT_AGAIN = (
    ShipmentStatus.PLANNED,
    ShipmentStatus.ASSIGNED,
    ShipmentStatus.PICKED_UP,
    ShipmentStatus.DELIVERED,
)


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
    site_id: int = 0


@dataclass(frozen=True)
class RouteView:
    """A route with its stops in order."""

    id: int
    status: str
    member_id: int | None
    distance_km: float
    duration_min: float
    stops: tuple[StopView, ...]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    replaced_by: int | None = None  # the route that superseded this one
    dead: str | None = None  # why no action applies any more (superseded, withdrawn, declined, done)
    held: bool = False  # waiting for a coordinator's approval: not offered to its driver yet

    @property
    def open(self) -> bool:
        """Whether its driver may still act on it (accept, give back, record stops)."""
        return self.dead is None


def load_route(session: Session, route_id: int) -> RouteView | None:
    """The route and its stops, in order; None when there is no such route."""
    route = session.get(Route, route_id)
    if route is None:
        return None
    rows = session.execute(
        select(
            RouteStop, Site.name, Community.name, Site.lat, Site.lon, Good.name, Shipment, Good.unit, Site.id
        )
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
            shipment.failure_reason if shipment and stop.status == StopStatus.FAILED else None,
            site_id,
        )
        for stop, site, community, lat, lon, good, shipment, unit, site_id in rows
    )
    replaced_by = replacement(session, route)
    why = DEAD_ROUTE.get(RouteStatus(route.status))
    by = f" (route {replaced_by})" if replaced_by is not None else ""
    return RouteView(
        route.id,
        route.status,
        route.member_id,
        route.distance_km,
        route.duration_min,
        stops,
        route.starts_at,
        route.ends_at,
        replaced_by,
        why.format(by=by) if why is not None else None,
        route.held_notice is not None and route.status == RouteStatus.PROPOSED,
    )


def member_routes(session: Session, member_id: int) -> list[Route]:
    """A member's current routes (proposed, accepted, under way; not those held for approval), soonest
    first (routes with no time yet last, newest first among them)."""
    query = (
        select(Route)
        .where(Route.status.in_(CURRENT), Route.member_id == member_id, Route.held_notice.is_(None))
        .order_by(Route.starts_at.is_(None), Route.starts_at, Route.id.desc())
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class RouteNotice:
    """The planner changed a driver's route: `kind` updated (revised: open `route_id`) or withdrawn."""

    id: int
    at: datetime
    kind: str
    route_id: int | None
    replaces_id: int | None
    text: str


def route_notices(
    session: Session, member_id: int, now: datetime | None = None, limit: int = NOTICES_SHOWN
) -> list[RouteNotice]:
    """The planner's route_updated / route_withdrawn notices to the member (their routes topic) from the
    last NOTICE_DAYS days, newest first; payloads that are not such a notice are skipped."""
    since = (now or clock.now()) - timedelta(days=NOTICE_DAYS)
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.created_at, OutboxMessage.payload)
        .where(OutboxMessage.topic == member_routes_topic(member_id), OutboxMessage.created_at >= since)
        .order_by(OutboxMessage.id.desc())
        .limit(limit * 5)  # route_planned notices share the topic
    )
    found = [n for i, at, payload in rows if (n := _notice(i, at, payload)) is not None]
    return found[:limit]


def _notice(message_id: int, at: datetime, payload: bytes) -> RouteNotice | None:
    """A route notice from its JSON: {"event": "route_updated" | "route_withdrawn", "route": id,
    "replaces": id?, "text" | "reason"?}; None for anything else."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    event = body.get("event") if isinstance(body, dict) else None
    kind = NOTICE_EVENTS.get(event) if isinstance(event, str) else None
    if kind is None:
        return None
    route, replaces = _id(body.get("route")), _id(body.get("replaces"))
    given = next((str(body[k]) for k in ("text", "message", "reason") if isinstance(body.get(k), str)), "")
    name = f"Route {route}" if route is not None else "A route"
    if kind == "updated":
        text = f"{name} replaces route {replaces}" if replaces else f"{name} was revised"
    else:
        text = f"{name} was withdrawn: nothing on it needs carrying any more"
    return RouteNotice(message_id, at, kind, route, replaces, f"{text}. {given}".strip()[:500])


def _id(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


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
    again_route: int | None = None  # the route carrying it again, only while that route is live
    route_live: bool = False  # whether the failed shipment's own route is still under way (or ahead)


def failed_deliveries(session: Session, limit: int = FAILED_SHOWN) -> list[FailedDelivery]:
    """The newest failed shipments with their reasons and what became of their goods: the same good on the
    same lane planned again later (on a route, or waiting with the router's reason), or not."""
    source, dest = aliased(Site), aliased(Site)
    rows = session.execute(
        select(Shipment, Good.name, Good.unit, source.name, dest.name)
        .join(Good, Shipment.good_id == Good.id)
        .join(source, Shipment.from_site_id == source.id)
        .join(dest, Shipment.to_site_id == dest.id)
        .where(Shipment.status == ShipmentStatus.FAILED)
        .order_by(Shipment.id.desc())
        .limit(limit)
    ).all()
    found = []
    live = _live_routes(session, {s.route_id for s, *_ in rows})
    for shipment, good, unit, from_name, to_name in rows:
        later = session.scalars(
            select(Shipment)
            .where(
                Shipment.id > shipment.id,
                Shipment.good_id == shipment.good_id,
                Shipment.from_site_id == shipment.from_site_id,
                Shipment.to_site_id == shipment.to_site_id,
                Shipment.status.in_(SENT_AGAIN),
            )
            .order_by(Shipment.id)
            .limit(1)
        ).first()
        again_route = None
        if later is None:  # the planner has not run since, or no longer sends this good this way
            again = "not planned again (yet)"
        elif later.route_id is not None:
            again = f"route {later.route_id} ({later.status.replace('_', ' ')})"
            if later.route_id in live or _live_routes(session, {later.route_id}):
                again_route = later.route_id  # a link only to a route someone may still drive
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
                again_route,
                shipment.route_id in live,
            )
        )
    return found


def _live_routes(session: Session, ids: set[int | None]) -> set[int]:
    """Which of these routes are current (proposed, accepted or under way): worth a link."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return set()
    return set(session.scalars(select(Route.id).where(Route.id.in_(wanted), Route.status.in_(CURRENT))))


def _xml(text: str) -> str:
    """Escaped for XML 1.0, control characters (stored before they were refused) replaced by spaces."""
    return xml_escape(without_control(text))


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
        f'<wpt lat="{s.lat:.6f}" lon="{s.lon:.6f}"><name>{_xml(label)}</name>'
        f"<desc>{_xml(what)}</desc></wpt>\n"
        for s, label, what in points
    )
    rtepts = "".join(
        f'<rtept lat="{s.lat:.6f}" lon="{s.lon:.6f}"><name>{_xml(label)}</name></rtept>\n'
        for s, label, _ in points
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="Rhizome" xmlns="http://www.topografix.com/GPX/1/1">\n'
        f"<metadata><name>{_xml(name)}</name></metadata>\n"
        f"{wpts}<rte><name>{_xml(name)}</name>\n{rtepts}</rte>\n</gpx>\n"
    )
