"""Routing's door to the store: a plan's shipments and the drivers in; routes, stops and notices out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.payloads import VERSION, format_ts
from gateway.contract.topics import member_routes_topic
from gateway.store.deliveries import put_on_route
from gateway.store.models import (
    Good,
    Member,
    Route,
    RouteStop,
    Shipment,
    Site,
    Vehicle,
    utcnow,
)
from gateway.store.models.vocab import RouteStatus, ShipmentStatus
from gateway.store.outbox import enqueue
from logistics.allocation.data import (
    good_priority,
)
from logistics.common.geo import distance_matrix_km
from logistics.loaders.allocation import current_proposal_id
from logistics.routing.data import PlannedRoute, Request, RoutingInput, RoutingPlan, Stop, VehicleSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingKeys:
    """How a routing input maps back to the store: its plan, shipments, sites and drivers."""

    plan_id: int
    shipments: tuple[int, ...]  # request index -> shipment id
    sites: tuple[int | None, ...]  # node -> site id (None for a driver's home)
    drivers: tuple[tuple[int, int], ...]  # vehicle spec -> (vehicle id, member id)


def load_routing_input(
    session: Session,
    plan_id: int | None = None,
    speed_kmh: float = 40.0,
    detour_factor: float = 1.3,
    stop_minutes: float = 10.0,
    shift_hours: float = 8.0,
) -> tuple[RoutingInput, RoutingKeys] | None:
    """The proposal's planned shipments as pickup-delivery requests (kg) and each active driver's vehicle.

    Distances are great-circle km x the detour factor; times are minutes at `speed_kmh`, plus
    `stop_minutes` at every stop. A driver starts and ends at home; their route lasts at most
    `shift_hours`, or their weekly hours when fewer. None when there is no plan or nothing to route.
    """
    plan_id = plan_id if plan_id is not None else current_proposal_id(session)
    if plan_id is None:
        return None
    rows = session.execute(
        select(Shipment, Good)
        .join(Good, Shipment.good_id == Good.id)
        .where(Shipment.plan_id == plan_id, Shipment.status == ShipmentStatus.PLANNED)
        .order_by(Shipment.id)
    ).all()
    drivers = session.execute(
        select(Vehicle, Member)
        .join(Member, Vehicle.member_id == Member.id)
        .where(Vehicle.active.is_(True), Member.active.is_(True), Member.is_driver.is_(True))
        .order_by(Vehicle.id)
    ).all()
    if not rows or not drivers:
        return None
    sites = {s.id: s for s in session.scalars(select(Site))}
    nodes = _Nodes()
    vehicles = [_vehicle(nodes, vehicle, person, shift_hours) for vehicle, person in drivers]
    requests = [_request(nodes, sites, shipment, good) for shipment, good in rows]
    lat = [p[0] for p in nodes.points]
    lon = [p[1] for p in nodes.points]
    km = distance_matrix_km(lat, lon, lat, lon) * detour_factor
    stops = [Stop() if site is None else Stop(service=stop_minutes) for site in nodes.sites]
    data = RoutingInput(
        km, requests, vehicles, stops=stops, duration=km / speed_kmh * 60.0, name=f"plan {plan_id}"
    )
    keys = RoutingKeys(
        plan_id,
        tuple(shipment.id for shipment, _ in rows),
        tuple(nodes.sites),
        tuple((vehicle.id, person.id) for vehicle, person in drivers),
    )
    return data, keys


@dataclass
class _Nodes:
    """The matrix rows as they are added: each node's point and its site (None for a driver's home)."""

    points: list[tuple[float, float]] = field(default_factory=list)
    sites: list[int | None] = field(default_factory=list)

    def add(self, lat: float, lon: float, site_id: int | None) -> int:
        """Add a node; its row number."""
        self.points.append((lat, lon))
        self.sites.append(site_id)
        return len(self.points) - 1


def _vehicle(nodes: _Nodes, vehicle: Vehicle, person: Member, shift_hours: float) -> VehicleSpec:
    """A driver's vehicle from and back to their home, for a shift or their weekly hours if fewer."""
    home = nodes.add(person.lat, person.lon, None)
    hours = min(shift_hours, person.hours_per_week) if person.hours_per_week > 0 else shift_hours
    return VehicleSpec(
        start=home,
        end=home,
        capacity=vehicle.capacity_kg,
        max_duration=hours * 60.0,
        label=f"{person.name} ({vehicle.name})",
    )


def _request(nodes: _Nodes, sites: Mapping[int, Site], shipment: Shipment, good: Good) -> Request:
    """A shipment as a pickup at its source and a delivery at its destination, its load in kg."""
    source, destination = sites[shipment.from_site_id], sites[shipment.to_site_id]
    pickup = nodes.add(source.lat, source.lon, source.id)
    delivery = nodes.add(destination.lat, destination.lon, destination.id)
    return Request(
        pickup=pickup,
        delivery=delivery,
        load=shipment.quantity * good.weight_kg_per_unit,
        label=str(shipment.id),
        # When drivers are short, insulin and water go before eggs (the allocation's priorities).
        weight=good_priority(good.sector, good.essential),
    )


def save_routes(session: Session, data: RoutingInput, keys: RoutingKeys, plan: RoutingPlan) -> int:
    """Write the new routes: routes, stops, shipments assigned, a notice per driver.

    The input holds only shipments on no route, so routes already offered stand until they are driven or
    declined: replacing them on every top-up of the proposal had dropped their shipments off every route
    (in the region week, 254 of 720 route notices went undriven, 8% of them by design). Shipments no
    route can carry keep status `planned` with the reason in `failure_reason`. Returns routes written.
    """
    owner = {node: i for i, r in enumerate(data.requests) for node in r.nodes}
    now = utcnow()
    for planned in plan.routes:
        vehicle_id, member_id = keys.drivers[planned.vehicle]
        row = Route(
            plan_id=keys.plan_id,
            member_id=member_id,
            vehicle_id=vehicle_id,
            status=RouteStatus.PROPOSED.value,
            distance_km=round(planned.distance, 3),
            duration_min=round(planned.duration, 1),
        )
        session.add(row)
        session.flush()
        stops = _add_stops(session, data, keys, owner, row.id, planned, now)
        carried = sorted({keys.shipments[owner[n]] for n in planned.nodes})
        put_on_route(session, carried, row.id)
        body = {
            "v": VERSION,
            "event": "route_planned",
            "ts": format_ts(now),
            "plan": keys.plan_id,
            "route": row.id,
            "distance_km": row.distance_km,
            "duration_min": row.duration_min,
            "stops": stops,
        }
        enqueue(session, member_routes_topic(member_id), body)
    for u in plan.unassigned:
        shipment = session.get(Shipment, keys.shipments[u.request])
        if shipment is not None:
            shipment.failure_reason = u.reason[:500]
    return len(plan.routes)


def _add_stops(
    session: Session,
    data: RoutingInput,
    keys: RoutingKeys,
    owner: Mapping[int, int],
    route_id: int,
    planned: PlannedRoute,
    now: datetime,
) -> list[dict[str, Any]]:
    """The route's stops as rows, each with its ETA (travel, waiting and service from the shift start), and
    as the driver's notice lists them."""
    duration = data.distance if data.duration is None else data.duration
    spec = data.vehicles[planned.vehicle]
    clock = spec.shift_start
    previous = spec.start
    stops: list[dict[str, Any]] = []
    for position, node in enumerate(planned.nodes):
        clock += data.stop(previous).service + float(duration[previous, node])
        clock = max(clock, data.stop(node).earliest)
        previous = node
        request = data.requests[owner[node]]
        shipment_id = keys.shipments[owner[node]]
        action = "pickup" if node == request.pickup else "delivery"
        site_id = keys.sites[node]
        assert site_id is not None  # request nodes are sites; homes are depots
        eta = now + timedelta(minutes=clock)
        session.add(
            RouteStop(
                route_id=route_id,
                position=position,
                site_id=site_id,
                action=action,
                shipment_id=shipment_id,
                eta=eta,
            )
        )
        stops.append(
            {
                "position": position,
                "site": site_id,
                "action": action,
                "shipment": shipment_id,
                "eta": format_ts(eta),
            }
        )
    return stops
