"""Allocation's door to the store: stock, needs and goods moving in; a delivery plan out as rows, alerts."""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from gateway.contract.payloads import MAX_PAYLOAD_BYTES, VERSION, format_ts
from gateway.contract.topics import community_alerts_topic
from gateway.store.models import (
    Community,
    DeliveryPlan,
    Good,
    Member,
    NeedLevel,
    Shipment,
    Site,
    Stock,
    StockLedgerEntry,
    Vehicle,
    utcnow,
)
from gateway.store.models.vocab import LedgerSource, PlanStatus, ShipmentStatus
from gateway.store.outbox import compact_json, enqueue
from logistics.allocation.data import (
    AllocationInput,
    AllocationPlan,
    GoodInfo,
    Holding,
    Place,
    PlannedShipment,
)

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
    _count_goods_on_their_way(session, levels)
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


def _count_goods_on_their_way(session: Session, levels: dict[tuple[int, int], list[float]]) -> None:
    """Move the stock of shipments under way, in `levels` ((community, good) -> [stock, minimum, target]),
    to where it is going.

    A shipment on a route (`assigned`) still sits in its source's stock but is promised, one `picked_up`
    has left its source and not yet arrived. Planned on stock alone, a re-plan while drivers were out
    promised the same goods again (in the region week, 912 pickups found nothing left to load).
    """
    community_of = dict(session.execute(select(Site.id, Site.community_id)).all())
    moving = session.execute(
        select(
            Shipment.status, Shipment.good_id, Shipment.from_site_id, Shipment.to_site_id, Shipment.quantity
        ).where(Shipment.status.in_((ShipmentStatus.ASSIGNED, ShipmentStatus.PICKED_UP)))
    )
    for status, good_id, source, destination, quantity in moving:
        if status == ShipmentStatus.ASSIGNED:
            held = levels[community_of[source], good_id]
            held[0] = max(0.0, held[0] - quantity)
        levels[community_of[destination], good_id][0] += quantity


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
            StockLedgerEntry.source == LedgerSource.SENSOR,
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
            update(DeliveryPlan)
            .where(DeliveryPlan.status == PlanStatus.PROPOSED)
            .values(status=PlanStatus.SUPERSEDED.value)
        ),
    )
    row = DeliveryPlan(status=PlanStatus.PROPOSED.value, solver_status=plan.status, objective=plan.objective)
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
            status=ShipmentStatus.PLANNED.value,
        )
        for s in planned
    ]
    session.add_all(shipments)
    session.flush()  # shipment ids go into the alerts
    return shipments, _queue_alerts(session, plan_id, planned, shipments)


def current_proposal_id(session: Session) -> int | None:
    """The newest plan still proposed, if any."""
    return session.scalar(select(func.max(DeliveryPlan.id)).where(DeliveryPlan.status == PlanStatus.PROPOSED))


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
            Shipment.plan_id == plan_id, Shipment.status == ShipmentStatus.PLANNED
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
        enqueue(session, community_alerts_topic(slugs[place]), payload)
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
    raw = compact_json(body)
    if len(raw) > MAX_PAYLOAD_BYTES:
        body["shipments"] = []
        body["truncated"] = len(items)
        raw = compact_json(body)
    return raw


# --- repair assignment -------------------------------------------------------------------------------------
