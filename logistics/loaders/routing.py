"""Routing's door to the store: the shipments to route, the routes that stand and the drivers' free time in;
new routes, stops, hours offers and notices out, and the routes they revise or withdraw.

One stable plan. A proposed route stands, untouched (nothing written, no notice), while it is still valid:
its shipments are all on it and unchanged, its driver is still within every limit at its time, its start
has not passed and its driver declined no lane on it. Any other proposed route is retired: superseded by
the new route this run gives its driver, or withdrawn if it gives none. Accepted and started routes are
the driver's until they release them. Only shipments on no standing route are routed, over the drivers'
time not already held, so a second run with nothing changed writes nothing, and the number of routes
grows with the work, not with the clock.

The hard limits (issue 13), all roles together, from the hours ledger: a new route takes at most what is
left of the driver's weekly pledge and of their yearly offer in its sector, lies inside one of their
availability windows, outside their away days and their busy intervals, and never carries a lane they
declined in the last 7 days. They are the vehicle's shift, duration and the requests' exclusions
(logistics.routing.limits), which the search never breaks.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Final

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.contract import clock
from gateway.contract.errors import InvalidInput
from gateway.contract.payloads import VERSION, format_ts
from gateway.contract.topics import member_routes_topic
from gateway.store import declines, hours, planner
from gateway.store.deliveries import put_on_route, retire_route
from gateway.store.models import (
    Good,
    HoursEntry,
    Member,
    Route,
    RouteStop,
    Shipment,
    Site,
    Vehicle,
)
from gateway.store.models.vocab import RouteStatus, ShipmentStatus, StopAction, StopStatus, WorkKind
from gateway.store.offers import delivery_sector, offer_sector, sector_hours
from gateway.store.outbox import enqueue
from logistics.allocation.data import good_priority
from logistics.loaders.allocation import current_proposal_id
from logistics.routing import limits
from logistics.routing.data import (
    PlannedRoute,
    Request,
    RoutingPlan,
    VehicleSpec,
    Workload,
)
from logistics.routing.fairness import figures
from logistics.routing.region import RegionRouting
from logistics.routing.solve import EXCLUDED

log = logging.getLogger(__name__)

# A new route starts this long after the run at the earliest, so its driver can see it and accept it before
# it starts (a proposed route whose start passes unaccepted is revised): drivers of the week harness answer
# within 15 to 90 minutes.
LEAD_MIN: Final = 120.0
HORIZON_DAYS: Final = 7  # the weeks whose loads are read (a route may fall in the next one)
# Routes start within this many hours: a shipment put on a route days ahead waits there while other drivers
# are free sooner (in a region week with 7 days, 232 of 679 routes started over a day after they were
# planned and 559 shipments were still waiting on routes at the end); one not routed now is routed by a
# later run, when someone has time.
SLOT_HORIZON_H: Final = 36.0
SLOTS_PER_DRIVER: Final = 2  # free stretches offered to the search per driver and run
# Routes a driver holds at once (proposed, accepted or under way): a person can keep a few in mind, not a
# day of five back-to-back proposals (seen in the demo, where nobody answered).
MAX_OPEN_ROUTES: Final = 3
FAIR_FIXED_KM: Final = 30.0  # a route for a driver with a full week costs this much more than for an idle one
FAIRNESS_KM: Final = 30.0  # the price of the largest load ratio (search and set partitioning)
WAIT_KM_PER_H: Final = 2.0  # and of each hour a route waits to start: sooner is better for those in need
OPEN_STATES: Final = ("offered", "reserved")
READ_CHUNK: Final = 500  # ids per IN (...) when reading many shipments


@dataclass(frozen=True)
class Retired:
    """A proposed route this run takes back: no longer valid, and why."""

    route_id: int
    member_id: int | None
    reason: str


@dataclass(frozen=True)
class RoutingKeys:
    """How a routing input maps back to the store: its plan and clock, shipments, sites and drivers, the
    routes that stand and those to retire, and each driver's ledger as it was read."""

    plan_id: int | None
    now: datetime
    shipments: tuple[int, ...]  # request index -> shipment id
    good_sectors: tuple[str, ...]  # request index -> its good's sector
    sites: tuple[int | None, ...]  # node -> site id (None for a driver's home)
    drivers: tuple[tuple[int, int], ...]  # vehicle spec -> (vehicle id, member id)
    standing: tuple[int, ...] = ()
    retired: tuple[Retired, ...] = ()
    ledgers: Mapping[int, tuple[Any, ...]] = field(default_factory=dict)  # member -> their hours entries
    declined: tuple[frozenset[int], ...] = ()  # request index -> members who declined its lane (7 days)

    @cached_property
    def owner(self) -> dict[int, int]:
        """Node -> the request it serves: each shipment's pickup and delivery follow the drivers' homes."""
        first = len(self.sites) - 2 * len(self.shipments)
        return {first + 2 * i + k: i for i in range(len(self.shipments)) for k in (0, 1)}


@dataclass(frozen=True)
class RoutingJob:
    """One run's input: the problem for the solver (None: nothing to route, or no driver has time) and the
    keys to save its routes with; `workloads` are the drivers' weeks before it (for fairness figures)."""

    data: RegionRouting | None
    keys: RoutingKeys
    workloads: tuple[Workload, ...] = ()

    def figures(self, plan: RoutingPlan | None) -> tuple[float, float]:
        """(max_load_ratio, load_gini) over the drivers, with the plan's new routes if there is one."""
        if plan is not None and self.data is not None:
            return plan.max_load_ratio, plan.load_gini
        return figures(self.workloads, {})


@dataclass(frozen=True)
class SavedRoutes:
    """What a save wrote: new routes, routes retired (superseded or withdrawn), routes left standing, and
    new routes not written because their shipments or their driver's hours changed during the solve."""

    written: int = 0
    superseded: int = 0
    withdrawn: int = 0
    standing: int = 0
    skipped: int = 0


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class _Driver:
    """An active driver with the vehicle they would drive (their largest active one)."""

    member: Member
    vehicle: Vehicle
    budget: limits.Budget
    busy: list[limits.Interval]


@dataclass
class _Proposed:
    """A proposed route with what it carries, as read."""

    route: Route
    stop_shipments: list[int]  # shipment ids of its stops, in order
    stops_pending: bool
    shipments: list[Shipment]  # shipments whose route_id is this route
    entry: HoursEntry | None
    peak_kg: float = 0.0  # the most it carries at once


def load_routing_input(
    session: Session,
    plan_id: int | None = None,
    speed_kmh: float = 40.0,
    detour_factor: float = 1.3,
    stop_minutes: float = 10.0,
    shift_hours: float = 8.0,
    now: datetime | None = None,
) -> RoutingJob | None:
    """The routes that stand, those to retire, and the rest of the work as a routing problem.

    Requests are the proposal's shipments on no route and those of the proposed routes to retire (kg by
    the good's weight, weighted by its priority); vehicles are the drivers' free slots (start and end at
    home, `shift_hours` at most, within every limit). Distances are great-circle km x the detour factor;
    times are minutes at `speed_kmh` plus `stop_minutes` at every stop, from `now`. None when there is no
    proposal and no proposed route.
    """
    now = _aware(now or clock.now())  # the people's clock (simulated in the demo and the week)
    plan_id = plan_id if plan_id is not None else current_proposal_id(session)
    proposed = _proposed(session)
    if plan_id is None and not proposed:
        return None
    drivers = _drivers(session, now, [p.entry for p in proposed if p.entry is not None])
    lanes = declines.declined_lanes(declines.active(session, now))
    standing, retired = _judge(proposed, drivers, lanes, now)
    rows = _to_route(session, plan_id, [r.route_id for r in retired])
    plan_id = plan_id if plan_id is not None else max((s.plan_id for s, _ in rows), default=None)
    workloads, week_of = _workloads(drivers, now)
    wanted = {delivery_sector(good.sector) for _, good in rows}
    ledgers = _fingerprints(session, now, drivers.keys())
    if not rows:
        keys = RoutingKeys(plan_id, now, (), (), (), (), tuple(standing), tuple(retired), ledgers)
        return RoutingJob(None, keys, tuple(workloads))
    nodes = _Nodes()
    vehicles: list[VehicleSpec] = []
    owners: list[tuple[int, int]] = []
    sectors_of: list[frozenset[str]] = []
    held = _open_routes(session, {r.route_id for r in retired})
    for member_id in sorted(drivers):
        driver = drivers[member_id]
        room = max(0, MAX_OPEN_ROUTES - held.get(member_id, 0))
        free_slots = _slots(driver, wanted, now, shift_hours)[:room]
        home = nodes.add(driver.member.lat, driver.member.lon, None) if free_slots else -1
        for slot in free_slots:
            vehicles.append(_vehicle(driver, slot, home, now, workloads, week_of))
            owners.append((driver.vehicle.id, member_id))
            sectors_of.append(slot.sectors)
    excluded = _Exclusions(owners, sectors_of, lanes)
    requests = [_request(nodes, shipment, good, excluded.of(shipment, good)) for shipment, good in rows]
    keys = RoutingKeys(
        plan_id,
        now,
        tuple(s.id for s, _ in rows),
        tuple(g.sector for _, g in rows),
        tuple(nodes.sites),
        tuple(owners),
        tuple(standing),
        tuple(retired),
        ledgers,
        tuple(frozenset(lanes.get((s.good_id, s.from_site_id, s.to_site_id), ())) for s, _ in rows),
    )
    if not vehicles:
        return RoutingJob(None, keys, tuple(workloads))
    points, point_of = _locate(session, nodes)  # one point per site and per home
    data = RegionRouting(
        np.array(points, dtype=float),
        point_of,
        [site is not None for site in nodes.sites],
        requests,
        vehicles,
        detour_factor=detour_factor,
        speed_kmh=speed_kmh,
        stop_minutes=stop_minutes,
        name=f"plan {plan_id}",
        workloads=workloads,
        fairness=FAIRNESS_KM,
    )
    return RoutingJob(data, keys, tuple(workloads))


# --- what is there ------------------------------------------------------------------------------------------


def _proposed(session: Session) -> list[_Proposed]:
    """Every proposed route with its stops' shipments, the shipments on it and its hours entry."""
    routes = list(
        session.scalars(select(Route).where(Route.status == RouteStatus.PROPOSED).order_by(Route.id))
    )
    if not routes:
        return []
    ids = [r.id for r in routes]
    stops: dict[int, list[RouteStop]] = defaultdict(list)
    for stop in session.scalars(
        select(RouteStop).where(RouteStop.route_id.in_(ids)).order_by(RouteStop.route_id, RouteStop.position)
    ):
        stops[stop.route_id].append(stop)
    on: dict[int, list[Shipment]] = defaultdict(list)
    kg: dict[int, float] = {}
    for shipment, weight in session.execute(
        select(Shipment, Good.weight_kg_per_unit)
        .join(Good, Shipment.good_id == Good.id)
        .where(Shipment.route_id.in_(ids))
        .order_by(Shipment.id)
    ):
        assert shipment.route_id is not None
        on[shipment.route_id].append(shipment)
        kg[shipment.id] = shipment.quantity * weight
    entries = {
        e.work_id: e
        for e in session.scalars(
            select(HoursEntry).where(
                HoursEntry.work == WorkKind.ROUTE,
                HoursEntry.work_id.in_(ids),
                HoursEntry.state.in_(OPEN_STATES),
            )
        )
    }
    return [
        _Proposed(
            route,
            [s.shipment_id for s in stops[route.id] if s.shipment_id is not None],
            all(s.status == StopStatus.PENDING for s in stops[route.id]),
            on[route.id],
            entries.get(route.id),
            _peak(stops[route.id], kg),
        )
        for route in routes
    ]


def _peak(stops: Sequence[RouteStop], kg: Mapping[int, float]) -> float:
    """The most a route's vehicle carries at once, its stops in order (pickups load, deliveries unload)."""
    load = peak = 0.0
    for stop in stops:
        weight = kg.get(stop.shipment_id or 0, 0.0)
        load += weight if stop.action == StopAction.PICKUP else -weight
        peak = max(peak, load)
    return peak


def _drivers(session: Session, now: datetime, revisable: Sequence[HoursEntry]) -> dict[int, _Driver]:
    """Active drivers with a pledge and a vehicle, their ledger less the proposed routes' entries (this run
    decides again whether those routes stand)."""
    found: dict[int, _Driver] = {}
    for vehicle, member in session.execute(
        select(Vehicle, Member)
        .join(Member, Vehicle.member_id == Member.id)
        .where(Vehicle.active.is_(True), Member.active.is_(True), Member.is_driver.is_(True))
        .order_by(Member.id, Vehicle.capacity_kg.desc(), Vehicle.id)
    ):
        if member.id in found or member.hours_per_week <= 0:
            continue
        offer = sector_hours(member.sector_hours, member.hours_per_year)
        found[member.id] = _Driver(member, vehicle, limits.Budget(member.hours_per_week, offer), [])
    if not found:
        return found
    days = range(HORIZON_DAYS + 1)
    for week in sorted({hours.week_start(now + timedelta(days=d)) for d in days}):
        for member_id, load in hours.weekly_load(session, week).items():
            if member_id in found:
                found[member_id].budget.week_load[week] = load
    for year in sorted({(now + timedelta(days=d)).year for d in days}):
        start = datetime(year, 1, 1, tzinfo=UTC)
        for member_id, by_sector in hours.yearly_sector_load(session, start).items():
            if member_id in found:
                counted = found[member_id].budget.year_load.setdefault(year, {})
                for sector, load in by_sector.items():
                    counted[offer_sector(sector)] = counted.get(offer_sector(sector), 0.0) + load
    for member_id, intervals in hours.busy_intervals(session, now).items():
        if member_id in found:
            found[member_id].busy = [(_aware(a), _aware(b)) for a, b in intervals]
    for entry in revisable:
        driver = found.get(entry.member_id)
        if driver is not None:
            _uncount(driver, entry)
    return found


def _uncount(driver: _Driver, entry: HoursEntry) -> None:
    """Take a proposed route's offered hours out of the driver's ledger as read."""
    starts, ends = _aware(entry.starts_at), _aware(entry.ends_at)
    week = limits.week_of(starts)
    budget = driver.budget
    budget.week_load[week] = budget.week_load.get(week, 0.0) - entry.hours
    year = budget.year_load.setdefault(starts.year, {})
    sector = offer_sector(entry.sector)
    year[sector] = year.get(sector, 0.0) - entry.hours
    if (starts, ends) in driver.busy:
        driver.busy.remove((starts, ends))


# --- which proposed routes stand ----------------------------------------------------------------------------


def _judge(
    proposed: Sequence[_Proposed],
    drivers: Mapping[int, _Driver],
    lanes: Mapping[tuple[int, int, int], set[int]],
    now: datetime,
) -> tuple[list[int], list[Retired]]:
    """The proposed routes that stand and those to retire, in order of their start: a route stands only
    if it is still valid given the routes that stood before it (their hours and time are counted)."""
    standing: list[int] = []
    retired: list[Retired] = []
    order = sorted(proposed, key=lambda p: (_aware(p.route.starts_at or now), p.route.id))
    for p in order:
        reason = _invalid(p, drivers, lanes, now)
        if reason is not None:
            retired.append(Retired(p.route.id, p.route.member_id, reason))
            continue
        standing.append(p.route.id)
        driver = drivers[p.route.member_id or 0]
        starts, ends = _aware(p.route.starts_at or now), _aware(p.route.ends_at or now)
        driver.budget.take(starts, _hours_of(p), [_sector_of(p)])
        driver.busy.append((starts, ends))
    if retired:
        log.info("routes to retire: %s", "; ".join(f"{r.route_id}: {r.reason}" for r in retired))
    return standing, retired


def _hours_of(p: _Proposed) -> float:
    return p.entry.hours if p.entry is not None else p.route.duration_min / 60.0


def _sector_of(p: _Proposed) -> str:
    """The offer sector the route counts in: its entry's, as it was offered."""
    return offer_sector(p.entry.sector) if p.entry is not None else "other"


def _invalid(
    p: _Proposed,
    drivers: Mapping[int, _Driver],
    lanes: Mapping[tuple[int, int, int], set[int]],
    now: datetime,
) -> str | None:
    """Why a proposed route may not stand, or None if it may."""
    route = p.route
    driver = drivers.get(route.member_id or 0)
    if route.starts_at is None or route.ends_at is None:
        return "planned before routes had times"
    starts, ends = _aware(route.starts_at), _aware(route.ends_at)
    if starts <= now:
        return "its start passed before it was accepted"
    if driver is None or route.vehicle_id is None:
        return "its driver no longer drives or has no time to give"
    changed = _changed(p, driver)
    if changed is not None:
        return changed
    member_id = driver.member.id
    if any(member_id in lanes.get((s.good_id, s.from_site_id, s.to_site_id), ()) for s in p.shipments):
        return "its driver declined a lane on it"
    if not driver.budget.allows(starts, _hours_of(p), _sector_of(p)):
        return "its driver's week or year has no room for it any more"
    try:
        free_time = limits.free(driver.member.availability, driver.member.away, driver.busy, starts, ends)
    except InvalidInput as exc:
        return f"its driver's availability cannot be read: {exc}"
    if not limits.covers(free_time, starts, ends):
        return "its driver is no longer free then"
    return None


def _changed(p: _Proposed, driver: _Driver) -> str | None:
    """Why the route's shipments or vehicle no longer match it, or None."""
    carried = {s.id for s in p.shipments}
    if not p.stops_pending or not carried or set(p.stop_shipments) != carried:
        return "its shipments changed"
    if len(p.stop_shipments) != 2 * len(carried):
        return "its shipments changed"
    if any(s.status != ShipmentStatus.ASSIGNED for s in p.shipments):
        return "its shipments changed"
    if driver.vehicle.id != p.route.vehicle_id:
        return "its vehicle is not the one its driver drives now"
    if p.peak_kg > driver.vehicle.capacity_kg + 1e-6:
        return "its load no longer fits its vehicle"
    return None


# --- the rest of the work, over the drivers' time -----------------------------------------------------------


def _to_route(session: Session, plan_id: int | None, retired: Sequence[int]) -> list[tuple[Shipment, Good]]:
    """The shipments to route: the proposal's on no route and those of the routes to retire."""
    conditions = []
    if plan_id is not None:
        conditions.append(
            (Shipment.plan_id == plan_id)
            & (Shipment.status == ShipmentStatus.PLANNED)
            & Shipment.route_id.is_(None)
        )
    if retired:
        conditions.append(Shipment.route_id.in_(retired) & (Shipment.status == ShipmentStatus.ASSIGNED))
    if not conditions:
        return []
    rows = session.execute(
        select(Shipment, Good)
        .join(Good, Shipment.good_id == Good.id)
        .where(or_(*conditions))
        .order_by(Shipment.id)
    )
    return [(shipment, good) for shipment, good in rows]


def _workloads(
    drivers: Mapping[int, _Driver], now: datetime
) -> tuple[list[Workload], dict[tuple[int, datetime], int]]:
    """Each driver's weeks in the horizon as workloads (minutes), after the routes that stand."""
    weeks = sorted({limits.week_of(now + timedelta(days=d)) for d in range(HORIZON_DAYS + 1)})
    workloads: list[Workload] = []
    index: dict[tuple[int, datetime], int] = {}
    for member_id in sorted(drivers):
        budget = drivers[member_id].budget
        for week in weeks:
            index[member_id, week] = len(workloads)
            held = max(0.0, budget.week_load.get(week, 0.0))
            workloads.append(Workload(member_id, held * 60.0, budget.pledge * 60.0))
    return workloads, index


def _open_routes(session: Session, retiring: set[int]) -> dict[int, int]:
    """Member id -> routes they hold (proposed, accepted, under way), those this run retires left out."""
    held: dict[int, int] = defaultdict(int)
    for route_id, member_id in session.execute(
        select(Route.id, Route.member_id).where(
            Route.status.in_((RouteStatus.PROPOSED, RouteStatus.ACCEPTED, RouteStatus.IN_PROGRESS))
        )
    ):
        if member_id is not None and route_id not in retiring:
            held[member_id] += 1
    return held


def _slots(driver: _Driver, wanted: Iterable[str], now: datetime, shift_hours: float) -> list[limits.Slot]:
    """The driver's free slots in the horizon, sized by what is left of their offer."""
    start = now + timedelta(minutes=LEAD_MIN)
    end = now + timedelta(hours=SLOT_HORIZON_H)
    member = driver.member
    try:
        free_time = limits.free(member.availability, member.away, driver.busy, start, end)
    except InvalidInput as exc:
        log.warning("driver %s gets no routes: their availability cannot be read (%s)", member.id, exc)
        return []
    return limits.slots(free_time, driver.budget, wanted, shift_hours, SLOTS_PER_DRIVER)


def _vehicle(
    driver: _Driver,
    slot: limits.Slot,
    home: int,
    now: datetime,
    workloads: Sequence[Workload],
    week_of: Mapping[tuple[int, datetime], int],
) -> VehicleSpec:
    """A slot as a vehicle from and back to the driver's home: the slot's start, end and hours are the
    shift and the longest route, and its fixed cost grows with the driver's week so far and the wait."""
    workload = week_of[driver.member.id, limits.week_of(slot.start)]
    ratio = workloads[workload].held / workloads[workload].pledge
    wait_h = (slot.start - now).total_seconds() / 3600
    return VehicleSpec(
        start=home,
        end=home,
        capacity=driver.vehicle.capacity_kg,
        shift_start=(slot.start - now).total_seconds() / 60,
        shift_end=(slot.end - now).total_seconds() / 60,
        max_duration=slot.hours * 60.0,
        fixed_cost=FAIR_FIXED_KM * ratio + WAIT_KM_PER_H * wait_h,
        label=f"{driver.member.name} ({driver.vehicle.name}) from {format_ts(slot.start)}",
        workload=workload,
    )


class _Exclusions:
    """The vehicle specs that may not carry a shipment: its lane declined by their driver, or its sector
    with too little left of their yearly offer. Indexed once by sector and by driver, so a region's
    shipments are not each compared with every slot."""

    def __init__(
        self,
        owners: Sequence[tuple[int, int]],
        sectors_of: Sequence[frozenset[str]],
        lanes: Mapping[tuple[int, int, int], set[int]],
    ) -> None:
        self.sectors_of = sectors_of
        self.lanes = lanes
        self.specs_of: dict[int, list[int]] = defaultdict(list)
        for k, (_, member_id) in enumerate(owners):
            self.specs_of[member_id].append(k)
        self.lacking: dict[str, frozenset[int]] = {}

    def of(self, shipment: Shipment, good: Good) -> frozenset[int]:
        sector = delivery_sector(good.sector)
        if sector not in self.lacking:
            self.lacking[sector] = frozenset(k for k, s in enumerate(self.sectors_of) if sector not in s)
        declined = self.lanes.get((shipment.good_id, shipment.from_site_id, shipment.to_site_id), set())
        if not declined:
            return self.lacking[sector]
        return self.lacking[sector] | {k for m in declined for k in self.specs_of.get(m, ())}


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


def _request(nodes: _Nodes, shipment: Shipment, good: Good, excluded: frozenset[int]) -> Request:
    """A shipment as a pickup at its source and a delivery at its destination, its load in kg (the sites'
    points are filled in by `_locate`)."""
    pickup = nodes.add(0.0, 0.0, shipment.from_site_id)
    delivery = nodes.add(0.0, 0.0, shipment.to_site_id)
    return Request(
        pickup=pickup,
        delivery=delivery,
        load=shipment.quantity * good.weight_kg_per_unit,
        label=str(shipment.id),
        # When drivers are short, insulin and water go before eggs (the allocation's priorities).
        weight=good_priority(good.sector, good.essential),
        excluded=excluded,
    )


def _locate(session: Session, nodes: _Nodes) -> tuple[list[tuple[float, float]], list[int]]:
    """The distinct points (sites' and homes' coordinates) and each node's point: one point per site, however
    many shipments start or end there."""
    wanted = {s for s in nodes.sites if s is not None}
    where = dict(
        (site_id, (lat, lon))
        for site_id, lat, lon in session.execute(
            select(Site.id, Site.lat, Site.lon).where(Site.id.in_(wanted))
        )
    )
    index: dict[tuple[float, float], int] = {}
    point_of = []
    for i, site_id in enumerate(nodes.sites):
        at = where[site_id] if site_id is not None else nodes.points[i]
        point_of.append(index.setdefault(at, len(index)))
    return list(index), point_of


def _fingerprints(session: Session, now: datetime, members: Iterable[int]) -> dict[int, tuple[Any, ...]]:
    """Each driver's hours entries this year and ahead, as read: the save writes a driver's new routes only
    if these are unchanged (the repair planner or the driver may have changed them during the solve)."""
    ids = sorted(members)
    if not ids:
        return {}
    since = hours.year_start(now)
    found: dict[int, list[Any]] = {m: [] for m in ids}
    for e in session.scalars(
        select(HoursEntry)
        .where(HoursEntry.member_id.in_(ids), or_(HoursEntry.starts_at >= since, HoursEntry.ends_at > now))
        .order_by(HoursEntry.member_id, HoursEntry.id)
    ):
        found[e.member_id].append((e.id, e.state, e.hours, e.actual_hours, e.starts_at, e.ends_at))
    return {m: tuple(rows) for m, rows in found.items()}


# --- writing the plan ---------------------------------------------------------------------------------------


def save_routes(
    session: Session, job: RoutingJob, plan: RoutingPlan | None, hold: bool = False
) -> SavedRoutes:
    """Retire the routes that no longer stand and write the new ones, with their stops, hours offers and
    notices; the standing ones are not touched. With `hold` (a coordinator approves plans first), a new
    route's notice is kept on it until approval (gateway.store.planner.approve) and its driver is not told.

    A retired route is superseded by its driver's new route (`replaces_id`, notice `route_updated`) or, if
    the run gives the driver none, withdrawn (notice `route_withdrawn`); its shipments are routed again.
    A new route is written only if its shipments are still free (on no route, or on a route being retired)
    and its driver's hours entries are as they were read; otherwise the next run plans them again.
    Shipments no route can carry keep status `planned` with the reason in `failure_reason`.
    """
    keys = job.keys
    retirable = _retirable(session, keys.retired)
    hours.lock_members(session, {m for _, m in keys.drivers})  # the repair saver checks under it too
    fresh = _fingerprints(session, keys.now, {m for _, m in keys.drivers})
    routes = [] if plan is None else [r for r in plan.routes if _writable(session, keys, r, retirable, fresh)]
    skipped = (0 if plan is None else len(plan.routes)) - len(routes)
    if skipped:
        log.info(
            "%s new routes not written: their shipments or their driver's hours changed meanwhile", skipped
        )
    assert job.data is not None or not routes
    rows = _new_rows(session, job, routes, retirable)
    superseded = withdrawn = 0
    for old in sorted(retirable.values(), key=lambda r: r.id):
        new = next((row for row in rows if row.replaces_id == old.id), None)
        retire_route(session, old.id, replaced_by=new.id if new is not None else None)
        if new is None:
            withdrawn += 1
            _withdrawn_notice(session, keys, old)
        else:
            superseded += 1
    for planned, row in zip(routes, rows, strict=True):
        assert job.data is not None
        _write(session, job.data, keys, planned, row, hold)
    if plan is not None:
        _reasons(session, job, plan)
    return SavedRoutes(len(rows), superseded, withdrawn, len(keys.standing), skipped)


def _retirable(session: Session, retired: Sequence[Retired]) -> dict[int, Route]:
    """The routes to retire that are still proposed (the driver may have accepted or declined one during the
    solve), locked."""
    if not retired:
        return {}
    ids = [r.route_id for r in retired]
    return {
        r.id: r
        for r in session.scalars(select(Route).where(Route.id.in_(ids)).order_by(Route.id).with_for_update())
        if r.status == RouteStatus.PROPOSED
    }


def _writable(
    session: Session,
    keys: RoutingKeys,
    planned: PlannedRoute,
    retirable: Mapping[int, Route],
    fresh: Mapping[int, tuple[Any, ...]],
) -> bool:
    """Whether a new route may still be written: its driver's entries unchanged, its shipments free."""
    _, member_id = keys.drivers[planned.vehicle]
    if fresh.get(member_id) != keys.ledgers.get(member_id):
        return False
    ids = _shipments_of(keys, planned)
    for shipment in session.scalars(select(Shipment).where(Shipment.id.in_(ids))):
        free = shipment.status == ShipmentStatus.PLANNED and shipment.route_id is None
        freed = shipment.status == ShipmentStatus.ASSIGNED and shipment.route_id in retirable
        if not (free or freed):
            return False
    return True


def _shipments_of(keys: RoutingKeys, planned: PlannedRoute) -> list[int]:
    """The shipment ids a planned route carries."""
    return sorted({keys.shipments[i] for i in _requests_on(keys, planned)})


def _requests_on(keys: RoutingKeys, planned: PlannedRoute) -> list[int]:
    """Request indices of a route's nodes, in order of their first stop."""
    return list(dict.fromkeys(keys.owner[node] for node in planned.nodes))


def _new_rows(
    session: Session, job: RoutingJob, routes: Sequence[PlannedRoute], retirable: Mapping[int, Route]
) -> list[Route]:
    """Route rows for the new routes, each revising one of its driver's retired routes if any is left."""
    keys = job.keys
    old_of: dict[int, list[int]] = defaultdict(list)
    for route in sorted(retirable.values(), key=lambda r: r.id):
        if route.member_id is not None:
            old_of[route.member_id].append(route.id)
    rows = []
    for planned in routes:
        assert job.data is not None
        vehicle_id, member_id = keys.drivers[planned.vehicle]
        spec = job.data.vehicles[planned.vehicle]
        starts = keys.now + timedelta(minutes=spec.shift_start)
        olds = old_of.get(member_id)
        row = Route(
            plan_id=keys.plan_id,
            member_id=member_id,
            vehicle_id=vehicle_id,
            status=RouteStatus.PROPOSED.value,
            distance_km=round(planned.distance, 3),
            duration_min=round(planned.duration, 1),
            starts_at=starts,
            ends_at=starts + timedelta(minutes=planned.duration),
            replaces_id=olds.pop(0) if olds else None,
            created_at=keys.now,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def _write(
    session: Session, data: RegionRouting, keys: RoutingKeys, planned: PlannedRoute, row: Route, hold: bool
) -> None:
    """A new route's shipments, stops, the driver's hours offer and their notice."""
    owner = keys.owner
    carried = _shipments_of(keys, planned)
    put_on_route(session, carried, row.id)
    starts, ends = _aware(row.starts_at or keys.now), _aware(row.ends_at or keys.now)
    stops = _add_stops(session, data, keys, owner, row.id, planned, starts)
    sector = _route_sector(data, keys, planned)
    assert row.member_id is not None
    hours.offer(session, row.member_id, WorkKind.ROUTE, row.id, sector, planned.duration / 60.0, starts, ends)
    body: dict[str, Any] = {
        "v": VERSION,
        "event": "route_planned" if row.replaces_id is None else "route_updated",
        "ts": format_ts(keys.now),
        "plan": keys.plan_id,
        "route": row.id,
        "starts_at": format_ts(starts),
        "ends_at": format_ts(ends),
        "hours": round(planned.duration / 60.0, 2),
        "sector": sector,
        "distance_km": row.distance_km,
        "duration_min": row.duration_min,
        "stops": stops,
    }
    if row.replaces_id is not None:
        body["replaces"] = row.replaces_id
    planner.offer_or_hold(session, row, body, hold)


def _route_sector(data: RegionRouting, keys: RoutingKeys, planned: PlannedRoute) -> str:
    """The work sector of the good sector carrying most of the route's load (kg; ties by name)."""
    kg: dict[str, float] = defaultdict(float)
    for i in _requests_on(keys, planned):
        kg[keys.good_sectors[i]] += data.requests[i].load
    heaviest = min(kg, key=lambda s: (-kg[s], s))
    return delivery_sector(heaviest)


def _withdrawn_notice(session: Session, keys: RoutingKeys, route: Route) -> None:
    """Tell the driver the planner took a route back (nothing replaces it for them; a route held for
    approval was never shown, so there is nothing to take back)."""
    if route.member_id is None or planner.was_held(route):
        return
    reason = next((r.reason for r in keys.retired if r.route_id == route.id), "")
    body = {
        "v": VERSION,
        "event": "route_withdrawn",
        "ts": format_ts(keys.now),
        "route": route.id,
        "starts_at": format_ts(_aware(route.starts_at)) if route.starts_at is not None else None,
        "ends_at": format_ts(_aware(route.ends_at)) if route.ends_at is not None else None,
        "reason": reason,
    }
    enqueue(session, member_routes_topic(route.member_id), body)


def _reasons(session: Session, job: RoutingJob, plan: RoutingPlan) -> None:
    """Shipments no route carries keep the router's reason, in the people's terms (written only when it
    changes, so a run with nothing new writes nothing)."""
    keys = job.keys
    reasons = {
        keys.shipments[u.request]: (_why_excluded(job, u.request) if u.reason == EXCLUDED else u.reason)[:500]
        for u in plan.unassigned
    }
    ids = sorted(reasons)
    for start in range(0, len(ids), READ_CHUNK):  # a region leaves thousands unrouted: read them in chunks
        chunk = ids[start : start + READ_CHUNK]
        for shipment in session.scalars(select(Shipment).where(Shipment.id.in_(chunk))):
            reason = reasons[shipment.id]
            if shipment.route_id is None and shipment.failure_reason != reason:
                shipment.failure_reason = reason


def _why_excluded(job: RoutingJob, request: int) -> str:
    """Why the drivers who could carry a shipment may not: they declined its lane, or they have used up
    (nearly) all the hours they offered this year in its sector."""
    assert job.data is not None
    keys = job.keys
    members = {keys.drivers[k][1] for k in job.data.requests[request].excluded}
    declined = members & keys.declined[request]
    sector = delivery_sector(keys.good_sectors[request])
    spent = f"no {sector} hours left of their yearly offer"
    days = f"declined in the last {declines.DECLINE_DAYS} days by"
    if declined == members:
        return f"{days} every driver who could carry it"
    if not declined:
        return f"the drivers who could carry it have {spent}"
    return f"{days} some drivers who could carry it; the others have {spent}"


def _add_stops(
    session: Session,
    data: RegionRouting,
    keys: RoutingKeys,
    owner: Mapping[int, int],
    route_id: int,
    planned: PlannedRoute,
    starts: datetime,
) -> list[dict[str, Any]]:
    """The route's stops as rows, each with its ETA (travel and service from the route's start), and as
    the driver's notice lists them."""
    spec = data.vehicles[planned.vehicle]
    clock = 0.0
    previous = spec.start
    stops: list[dict[str, Any]] = []
    for position, node in enumerate(planned.nodes):
        clock += data.duration[previous, node]  # the drive, and the last site's service if it leaves one
        previous = node
        request = data.requests[owner[node]]
        shipment_id = keys.shipments[owner[node]]
        action = "pickup" if node == request.pickup else "delivery"
        site_id = keys.sites[node]
        assert site_id is not None  # request nodes are sites; homes are depots
        eta = starts + timedelta(minutes=clock)
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
