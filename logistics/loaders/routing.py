"""Routing's door to the store: a plan's shipments and the drivers in; routes, stops and notices out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.contract.protocol import (
    QOS,
    VERSION,
    format_ts,
    member_routes_topic,
)
from gateway.store.models import (
    Good,
    Member,
    OutboxMessage,
    Route,
    RouteStop,
    Shipment,
    Site,
    Vehicle,
    utcnow,
)
from logistics.allocation.data import (
    good_priority,
)
from logistics.common.geo import distance_matrix_km
from logistics.loaders import json_payload as _json
from logistics.loaders.allocation import current_proposal_id
from logistics.routing.data import Request, RoutingInput, RoutingPlan, Stop, VehicleSpec

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
        .where(Shipment.plan_id == plan_id, Shipment.status == "planned")
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
    points: list[tuple[float, float]] = []
    node_sites: list[int | None] = []
    vehicles = []
    for vehicle, person in drivers:
        home = len(points)
        points.append((person.lat, person.lon))
        node_sites.append(None)
        hours = min(shift_hours, person.hours_per_week) if person.hours_per_week > 0 else shift_hours
        vehicles.append(
            VehicleSpec(
                start=home,
                end=home,
                capacity=vehicle.capacity_kg,
                max_duration=hours * 60.0,
                label=f"{person.name} ({vehicle.name})",
            )
        )
    requests = []
    for shipment, good in rows:
        for site_id in (shipment.from_site_id, shipment.to_site_id):
            points.append((sites[site_id].lat, sites[site_id].lon))
            node_sites.append(site_id)
        requests.append(
            Request(
                pickup=len(points) - 2,
                delivery=len(points) - 1,
                load=shipment.quantity * good.weight_kg_per_unit,
                label=str(shipment.id),
                # When drivers are short, insulin and water go before eggs (the allocation's priorities).
                weight=good_priority(good.sector, good.essential),
            )
        )
    lat = [p[0] for p in points]
    lon = [p[1] for p in points]
    km = distance_matrix_km(lat, lon, lat, lon) * detour_factor
    stops = [Stop() if site is None else Stop(service=stop_minutes) for site in node_sites]
    data = RoutingInput(
        km, requests, vehicles, stops=stops, duration=km / speed_kmh * 60.0, name=f"plan {plan_id}"
    )
    keys = RoutingKeys(
        plan_id,
        tuple(shipment.id for shipment, _ in rows),
        tuple(node_sites),
        tuple((vehicle.id, person.id) for vehicle, person in drivers),
    )
    return data, keys


def save_routes(session: Session, data: RoutingInput, keys: RoutingKeys, plan: RoutingPlan) -> int:
    """Write the new routes: routes, stops, shipments assigned, a notice per driver.

    The input holds only shipments on no route, so routes already offered stand until they are driven or
    declined: replacing them on every top-up of the proposal had dropped their shipments off every route
    (in the region week, 254 of 720 route notices went undriven, 8% of them by design). Shipments no
    route can carry keep status `planned` with the reason in `failure_reason`. Returns routes written.
    """
    owner = {node: i for i, r in enumerate(data.requests) for node in r.nodes}
    now = utcnow()
    duration = data.distance if data.duration is None else data.duration
    for planned in plan.routes:
        vehicle_id, member_id = keys.drivers[planned.vehicle]
        spec = data.vehicles[planned.vehicle]
        row = Route(
            plan_id=keys.plan_id,
            member_id=member_id,
            vehicle_id=vehicle_id,
            status="proposed",
            distance_km=round(planned.distance, 3),
            duration_min=round(planned.duration, 1),
        )
        session.add(row)
        session.flush()
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
                    route_id=row.id,
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
        carried = sorted({keys.shipments[owner[n]] for n in planned.nodes})
        session.execute(
            update(Shipment).where(Shipment.id.in_(carried)).values(route_id=row.id, status="assigned")
        )
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
        session.add(OutboxMessage(topic=member_routes_topic(member_id), payload=_json(body), qos=QOS))
    for u in plan.unassigned:
        shipment = session.get(Shipment, keys.shipments[u.request])
        if shipment is not None:
            shipment.failure_reason = u.reason[:500]
    return len(plan.routes)
