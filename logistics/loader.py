"""The planner's only door to the store: rows in as plain input data, a plan out as rows and outbox alerts."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from gateway.models import (
    Community,
    ContributedHours,
    DeliveryPlan,
    Good,
    Member,
    MemberSkill,
    NeedLevel,
    OutboxMessage,
    RepairTask,
    Route,
    RouteStop,
    Shipment,
    Site,
    Stock,
    StockLedgerEntry,
    TaskEvent,
    Vehicle,
    utcnow,
)
from gateway.protocol import (
    MAX_PAYLOAD_BYTES,
    QOS,
    VERSION,
    community_alerts_topic,
    format_ts,
    member_alerts_topic,
    member_routes_topic,
)
from logistics.allocation_data import (
    AllocationInput,
    AllocationPlan,
    GoodInfo,
    Holding,
    Place,
    PlannedShipment,
    good_priority,
)
from logistics.geo import distance_matrix_km
from logistics.repair_data import CrewMember, RepairInput, RepairJob, RepairPlan, hours_until_available
from logistics.routing_data import Request, RoutingInput, RoutingPlan, Stop, VehicleSpec

log = logging.getLogger(__name__)
USE_WINDOW_LEADS = 2.0  # the rate of use is measured over twice the lead time (a day for 12 hours)
HUB_KIND = "storage"  # goods arrive at a community's storage hub if any; they leave from where they are
ALERT_EVENT = "shipments_planned"


def load_allocation_input(
    session: Session, lead_s: float = 0.0, now: datetime | None = None
) -> AllocationInput:
    """Communities as places, stock summed over each one's sites with the goods on their way counted where
    they go, need levels (0 when none are set).

    With `lead_s`, each stock is the one expected that far ahead at the community's recent rate of use
    (use_rates): a delivery takes hours to arrive, so a community about to fall below its minimum is
    planned for now, not once it is short (in the region week, drop-offs came a median 8.4 and a p90 13.5
    simulated hours after their plan)."""
    hubs = hub_sites(session)
    communities = session.scalars(select(Community).order_by(Community.id)).all()
    # A community without any site has nowhere to hold or receive goods, so it cannot take part.
    siteless = [c.slug for c in communities if c.id not in hubs]
    if siteless:
        log.warning("%s communities have no site and are left out of planning: %s", len(siteless), siteless)
    places = [Place(c.id, c.name, c.lat, c.lon) for c in communities if c.id in hubs]
    goods = [
        GoodInfo(g.id, g.slug, g.sector, g.essential, g.perishability_hours, g.weight_kg_per_unit)
        for g in session.scalars(select(Good).order_by(Good.id))
    ]
    levels: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    stock = session.execute(
        select(Site.community_id, Stock.good_id, func.sum(Stock.quantity))
        .join(Site, Stock.site_id == Site.id)
        .group_by(Site.community_id, Stock.good_id)
    )
    for community_id, good_id, quantity in stock:
        levels[community_id, good_id][0] = float(quantity or 0.0)
    # Goods already on their way count where they are going: a shipment on a route (`assigned`) still sits in
    # its source's stock but is promised, one `picked_up` has left its source and not yet arrived. Planned
    # on stock alone, a re-plan while drivers were out promised the same goods again (in the region week,
    # 912 pickups found nothing left to load).
    community_of = dict(session.execute(select(Site.id, Site.community_id)).all())
    moving = session.execute(
        select(
            Shipment.status, Shipment.good_id, Shipment.from_site_id, Shipment.to_site_id, Shipment.quantity
        ).where(Shipment.status.in_(("assigned", "picked_up")))
    )
    for status, good_id, source, destination, quantity in moving:
        if status == "assigned":
            held = levels[community_of[source], good_id]
            held[0] = max(0.0, held[0] - quantity)
        levels[community_of[destination], good_id][0] += quantity
    if lead_s > 0:
        for key, per_s in use_rates(session, USE_WINDOW_LEADS * lead_s, now).items():
            if key in levels:
                levels[key][0] = max(0.0, levels[key][0] - per_s * lead_s)
    for need in session.scalars(select(NeedLevel)):
        levels[need.community_id, need.good_id][1:] = [need.minimum, need.target]
    holdings = [
        Holding(place, good, quantity, minimum, target)
        for (place, good), (quantity, minimum, target) in sorted(levels.items())
        if place in hubs
    ]
    return AllocationInput(places, goods, holdings)


def use_rates(session: Session, window_s: float, now: datetime | None = None) -> dict[tuple[int, int], float]:
    """(community, good) -> units used per second over the last `window_s` (or since the first ledger
    entry, if later): what the stock boxes reported going out, summed over the community's sites. Harvests,
    restocking and deliveries are left out, so the rate is of use alone."""
    now = now or utcnow()
    first = session.scalar(select(func.min(StockLedgerEntry.created_at)))
    if first is None:
        return {}
    since = max(now - timedelta(seconds=window_s), _aware(first))
    span = (now - since).total_seconds()
    if span <= 0:
        return {}
    rows = session.execute(
        select(Site.community_id, StockLedgerEntry.good_id, func.sum(StockLedgerEntry.delta))
        .join(Site, StockLedgerEntry.site_id == Site.id)
        .where(
            StockLedgerEntry.source == "sensor",
            StockLedgerEntry.delta < 0,
            StockLedgerEntry.created_at >= since,
        )
        .group_by(Site.community_id, StockLedgerEntry.good_id)
    )
    return {(community, good): -float(used) / span for community, good, used in rows if used}


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def save_plan(session: Session, plan: AllocationPlan) -> int:
    """Store the plan as the one proposed plan, with its shipments and an alert per receiving community.

    The plan is made on top of the goods already on routes or on their way, so it is compared with the
    current proposal's shipments still only `planned`. A plan equal to those is not stored again, so a
    quiet network is not re-alerted on every run; the current proposal's id is returned instead. A plan
    that only adds shipments to it (a failed delivery's goods are needed again, or a new shortage) is
    added to the current proposal, so routes already under way are not superseded.
    """
    hubs = hub_sites(session)
    missing = {p for s in plan.shipments for p in (s.from_place, s.to_place)} - hubs.keys()
    if missing:
        raise ValueError(f"communities without a site cannot ship or receive: {sorted(missing)}")

    sources = pickup_sites(session, plan.shipments, hubs)
    planned = vehicle_loads(session, plan.shipments)

    def lane(s: PlannedShipment) -> tuple[int, int, int, float]:
        return (s.good_id, sources[s.from_place, s.good_id], hubs[s.to_place], s.quantity)

    wanted = Counter(lane(s) for s in planned)
    current = current_proposal_id(session)
    if current is not None:
        held = Counter(_shipments_of(session, current))
        if held == wanted:
            log.debug("plan unchanged: proposal %s stays", current)
            return current
        if not held - wanted:  # nothing held is dropped: add what is new
            extra, added = wanted - held, []
            for s in planned:
                if extra[lane(s)] > 0:
                    extra[lane(s)] -= 1
                    added.append(s)
            _add_shipments(session, current, plan, added, hubs, sources)
            log.info("proposal %s: %s shipments added", current, len(added))
            return current
    superseded = cast(
        CursorResult[Any],
        session.execute(
            update(DeliveryPlan).where(DeliveryPlan.status == "proposed").values(status="superseded")
        ),
    )
    row = DeliveryPlan(status="proposed", solver_status=plan.status, objective=plan.objective)
    session.add(row)
    session.flush()
    shipments, alerts = _add_shipments(session, row.id, plan, planned, hubs, sources)
    log.debug(
        "saved plan %s: %s shipments, %s alerts queued, %s earlier proposals superseded",
        row.id,
        len(shipments),
        alerts,
        superseded.rowcount,
    )
    return row.id


def vehicle_loads(session: Session, shipments: Sequence[PlannedShipment]) -> list[PlannedShipment]:
    """The shipments, each one heavier than most active drivers' vehicles can carry (the median capacity)
    split into equal loads that fit: no route can take a 2.3-tonne shipment of rice when the largest van
    carries 1.35 t, so it sat unrouted. Unchanged when no vehicle is active."""
    capacities = sorted(
        session.scalars(
            select(Vehicle.capacity_kg)
            .join(Member, Vehicle.member_id == Member.id)
            .where(Vehicle.active.is_(True), Member.active.is_(True), Member.is_driver.is_(True))
        )
    )
    if not capacities:
        return list(shipments)
    load_kg = capacities[len(capacities) // 2]
    weights = dict(session.execute(select(Good.id, Good.weight_kg_per_unit)).all())
    loads: list[PlannedShipment] = []
    for s in shipments:
        parts = math.ceil(s.quantity * weights.get(s.good_id, 0.0) / load_kg - 1e-9)
        if parts <= 1:
            loads.append(s)
            continue
        each = float(f"{s.quantity / parts:.6g}")
        loads += [replace(s, quantity=each) for _ in range(parts - 1)]
        loads.append(replace(s, quantity=float(f"{s.quantity - each * (parts - 1):.6g}")))
    return loads


def _add_shipments(
    session: Session,
    plan_id: int,
    plan: AllocationPlan,
    planned: Sequence[PlannedShipment],
    hubs: Mapping[int, int],
    sources: Mapping[tuple[int, int], int],
) -> tuple[list[Shipment], int]:
    """Write `planned` (some or all of `plan`'s shipments) into plan `plan_id`, its summary and solver
    outcome from `plan`, and an alert per receiving community about them. Returns the rows and alerts."""
    row = session.get(DeliveryPlan, plan_id)
    assert row is not None  # the caller just made or found it
    summary: dict[str, Any] = plan.summary()
    summary["fair_share"] = {str(g): round(v, 6) for g, v in sorted(plan.fair_share.items())}
    row.summary, row.solver_status, row.objective = summary, plan.status, plan.objective
    shipments = [
        Shipment(
            plan_id=plan_id,
            good_id=s.good_id,
            from_site_id=sources[s.from_place, s.good_id],
            to_site_id=hubs[s.to_place],
            quantity=s.quantity,
            status="planned",
        )
        for s in planned
    ]
    session.add_all(shipments)
    session.flush()  # shipment ids go into the alerts
    return shipments, _queue_alerts(session, plan_id, planned, shipments)


def current_proposal_id(session: Session) -> int | None:
    """The newest plan still proposed, if any."""
    return session.scalar(select(func.max(DeliveryPlan.id)).where(DeliveryPlan.status == "proposed"))


def shipment_count(session: Session, plan_id: int | None) -> int:
    """How many shipments plan `plan_id` holds (0 for None)."""
    if plan_id is None:
        return 0
    return int(session.scalar(select(func.count()).where(Shipment.plan_id == plan_id)) or 0)


def _shipments_of(session: Session, plan_id: int) -> list[tuple[int, int, int, float]]:
    """The plan's shipments a new plan stands in for: those still only `planned`. One on a route or on its
    way is already in the allocation input (see load_allocation_input); a failed or cancelled one is
    needed again, if at all."""
    rows = session.execute(
        select(Shipment.good_id, Shipment.from_site_id, Shipment.to_site_id, Shipment.quantity).where(
            Shipment.plan_id == plan_id, Shipment.status == "planned"
        )
    )
    return sorted((good, source, dest, quantity) for good, source, dest, quantity in rows)


def pickup_sites(
    session: Session, planned: Sequence[PlannedShipment], hubs: Mapping[int, int]
) -> dict[tuple[int, int], int]:
    """(community, good) -> where a driver loads it: the community's site holding the most of it, its hub on
    a tie or when no site holds any. Harvests stay on the farm and medicine at the clinic; sent to an empty
    hub, drivers found nothing to load (the region week's pickups)."""
    wanted = {(s.from_place, s.good_id) for s in planned}
    best: dict[tuple[int, int], tuple[float, bool, int]] = {}
    if wanted:
        rows = session.execute(
            select(Site.community_id, Stock.site_id, Stock.good_id, Stock.quantity)
            .join(Site, Stock.site_id == Site.id)
            .where(Site.community_id.in_({c for c, _ in wanted}), Stock.good_id.in_({g for _, g in wanted}))
        )
        for community_id, site_id, good_id, quantity in rows:
            key = (community_id, good_id)
            rank = (quantity, site_id == hubs[community_id], -site_id)
            if key in wanted and quantity > 0 and (key not in best or rank > best[key]):
                best[key] = rank
    return {key: -best[key][2] if key in best else hubs[key[0]] for key in wanted}


def hub_sites(session: Session) -> dict[int, int]:
    """Community id -> the site goods move through: its storage hub, else its lowest-numbered site."""
    rows = session.execute(select(Site.community_id, Site.id, Site.kind)).all()
    hubs: dict[int, int] = {}
    for community_id, site_id, _kind in sorted(rows, key=lambda r: (r[0], r[2] != HUB_KIND, r[1])):
        hubs.setdefault(community_id, site_id)
    return hubs


def _queue_alerts(
    session: Session, plan_id: int, planned: Sequence[PlannedShipment], shipments: list[Shipment]
) -> int:
    """One outbox message per receiving community, written in the plan's own transaction."""
    slugs = {i: slug for i, slug in session.execute(select(Community.id, Community.slug))}
    goods = {i: slug for i, slug in session.execute(select(Good.id, Good.slug))}
    incoming: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for one, row in zip(planned, shipments, strict=True):
        item = {"id": row.id, "good": goods[one.good_id], "quantity": one.quantity}
        incoming[one.to_place].append(item | {"from": slugs[one.from_place]})
    now = format_ts(utcnow())
    for place, items in sorted(incoming.items()):
        payload = alert_payload(plan_id, slugs[place], now, items)
        session.add(OutboxMessage(topic=community_alerts_topic(slugs[place]), payload=payload, qos=QOS))
    return len(incoming)


def alert_payload(plan_id: int, community: str, ts: str, items: list[dict[str, Any]]) -> bytes:
    """JSON telling a community what is coming; per-good totals alone if the list would not fit a message."""
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        totals[item["good"]] += item["quantity"]
    body: dict[str, Any] = {
        "v": VERSION,
        "event": ALERT_EVENT,
        "ts": ts,
        "plan": plan_id,
        "community": community,
        "totals": {good: round(q, 6) for good, q in sorted(totals.items())},
        "shipments": items,
    }
    raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    if len(raw) > MAX_PAYLOAD_BYTES:
        body["shipments"] = []
        body["truncated"] = len(items)
        raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    return raw


# --- repair assignment -------------------------------------------------------------------------------------
OPEN_TASK_STATUSES = ("open", "escalated")  # tasks the planner (re)assigns
ACTIVE_TASK_STATUSES = ("assigned", "accepted", "in_progress")  # tasks that take up a member's slot


def load_repair_input(
    session: Session,
    now: datetime | None = None,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    max_concurrent: int = 2,
    horizon_h: float = 24.0,
    window_days: int = 365,
    region_fallback: bool = True,
) -> RepairInput:
    """Open and escalated tasks, active crew with skills, free slots, availability and recent hours.

    `baselines` maps community slugs to per-sector yearly hours (unknown slugs raise ValueError).
    """
    now = now or utcnow()
    sites = {s.id: s for s in session.scalars(select(Site))}
    communities = {c.id: c for c in session.scalars(select(Community).order_by(Community.id))}
    tasks_rows = session.scalars(
        select(RepairTask).where(RepairTask.status.in_(OPEN_TASK_STATUSES)).order_by(RepairTask.id)
    ).all()
    declined: dict[int, set[int]] = defaultdict(set)
    for task_id, member_id in session.execute(
        select(TaskEvent.task_id, TaskEvent.member_id).where(TaskEvent.event == "declined")
    ):
        if member_id is not None:
            declined[task_id].add(member_id)
    tasks = [
        RepairJob(
            id=t.id,
            title=t.title,
            community_id=sites[t.site_id].community_id,
            lat=sites[t.site_id].lat,
            lon=sites[t.site_id].lon,
            required_skills=frozenset(str(s) for s in t.required_skills or ()),
            urgency=t.urgency,
            declined_by=frozenset(declined[t.id]),
        )
        for t in tasks_rows
    ]
    members = session.scalars(
        select(Member).where(Member.active.is_(True), Member.is_crew.is_(True)).order_by(Member.id)
    ).all()
    skills: dict[int, set[str]] = defaultdict(set)
    for member_id, skill in session.execute(select(MemberSkill.member_id, MemberSkill.skill)):
        skills[member_id].add(skill)
    busy = dict(
        session.execute(
            select(RepairTask.assigned_member_id, func.count())
            .where(RepairTask.status.in_(ACTIVE_TASK_STATUSES), RepairTask.assigned_member_id.is_not(None))
            .group_by(RepairTask.assigned_member_id)
        ).all()
    )
    since = (now - timedelta(days=window_days)).date()
    hours: dict[int, dict[str, float]] = defaultdict(dict)
    for member_id, sector, total in session.execute(
        select(ContributedHours.member_id, ContributedHours.sector, func.sum(ContributedHours.hours))
        .where(ContributedHours.period_start >= since)
        .group_by(ContributedHours.member_id, ContributedHours.sector)
    ):
        hours[member_id][sector] = float(total or 0.0)
    crew = [
        CrewMember(
            id=m.id,
            name=m.name,
            community_id=m.community_id,
            lat=m.lat,
            lon=m.lon,
            skills=frozenset(skills[m.id]),
            free_slots=max(0, max_concurrent - int(busy.get(m.id, 0))),
            available_in_h=hours_until_available(m.availability, now, horizon_h),
            recent_hours=hours[m.id],
        )
        for m in members
    ]
    by_slug = {c.slug: c.id for c in communities.values()}
    unknown = set(baselines or {}) - by_slug.keys()
    if unknown:
        raise ValueError(f"baselines name unknown communities: {sorted(unknown)}")
    return RepairInput(
        tasks=tasks,
        crew=crew,
        communities={c.id: (c.lat, c.lon) for c in communities.values()},
        baselines={by_slug[slug]: dict(b) for slug, b in (baselines or {}).items()},
        region_fallback=region_fallback,
    )


def save_repair_plan(session: Session, plan: RepairPlan) -> tuple[int, int]:
    """Write assignments (status, member, explanation, event, member alert) and escalations, one transaction.

    A task that changed since it was loaded (taken, closed) is left alone. Returns (assigned, escalated).
    """
    now = utcnow()
    ts = format_ts(now)
    slugs = dict(session.execute(select(Community.id, Community.slug)).all())
    assigned = escalated = 0
    for a in plan.assignments:
        task = session.get(RepairTask, a.task_id)
        if task is None or task.status not in OPEN_TASK_STATUSES:
            log.info("task %s changed while planning; not assigned", a.task_id)
            continue
        task.status = "assigned"
        task.assigned_member_id = a.member_id
        task.explanation = a.explanation
        session.add(
            TaskEvent(task_id=task.id, member_id=a.member_id, event="assigned", reason=a.explanation[:500])
        )
        body = {
            "v": VERSION,
            "event": "task_assigned",
            "ts": ts,
            "task": task.id,
            "title": task.title,
            "site": task.site_id,
            "urgency": task.urgency,
            "skills": sorted(str(s) for s in task.required_skills or ()),
            "explanation": a.explanation,
            "escalated": a.escalated,
        }
        session.add(OutboxMessage(topic=member_alerts_topic(a.member_id), payload=_json(body), qos=QOS))
        assigned += 1
    for u in plan.unassigned:
        task = session.get(RepairTask, u.task_id)
        if task is None or task.status != "open":
            continue  # already escalated (and announced) or no longer open
        task.status = "escalated"
        session.add(TaskEvent(task_id=task.id, event="escalated", reason=u.reason[:500]))
        body = {
            "v": VERSION,
            "event": "task_escalated",
            "ts": ts,
            "task": task.id,
            "title": task.title,
            "urgency": task.urgency,
            "skills": sorted(str(s) for s in task.required_skills or ()),
            "reason": u.reason,
        }
        for community in u.widened_to:
            topic = community_alerts_topic(slugs[community])
            session.add(OutboxMessage(topic=topic, payload=_json(body), qos=QOS))
        escalated += 1
    return assigned, escalated


def open_tasks_marker(session: Session) -> tuple[object, ...]:
    """Count, newest id and last update of open or escalated tasks: changes when a task needs planning."""
    row = session.execute(
        select(func.count(), func.max(RepairTask.id), func.max(RepairTask.updated_at)).where(
            RepairTask.status.in_(OPEN_TASK_STATUSES)
        )
    ).one()
    return tuple(row)


def deliveries_marker(session: Session) -> tuple[object, ...]:
    """How many shipments were delivered and how many failed, and how many routes were declined: changes
    when a driver records one, so the planner loop re-plans at once (a failed delivery's or a declined
    route's goods are needed again; a delivery changes stock)."""
    rows = session.execute(
        select(Shipment.status, func.count())
        .where(Shipment.status.in_(("delivered", "failed")))
        .group_by(Shipment.status)
    )
    declined = session.scalar(select(func.count()).where(Route.status == "declined")) or 0
    return (*sorted((status, int(count)) for status, count in rows), ("routes declined", int(declined)))


def decline_task(session: Session, task_id: int, member_id: int, reason: str = "") -> None:
    """Record that the assigned member declined: the task is open again and they are not asked again."""
    task = session.get(RepairTask, task_id)
    if task is None:
        raise ValueError(f"no repair task {task_id}")
    if task.assigned_member_id != member_id or task.status not in ("assigned", "accepted"):
        raise ValueError(f"task {task_id} is not assigned to member {member_id} (status {task.status})")
    task.status = "open"
    task.assigned_member_id = None
    task.explanation = None
    session.add(TaskEvent(task_id=task_id, member_id=member_id, event="declined", reason=reason[:500]))


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


# --- delivery routing --------------------------------------------------------------------------------------


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
