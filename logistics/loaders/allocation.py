"""Allocation's door to the store: stock, needs and goods moving in; a delivery plan out as rows, alerts."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.contract.payloads import MAX_PAYLOAD_BYTES, VERSION, format_ts
from gateway.contract.topics import community_alerts_topic
from gateway.store.deliveries import cancel_planned, revise_quantity
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
from logistics.allocation.lots import UNIT_EPS, LaneKey, Revision, merged, revise_lanes, whole_units

log = logging.getLogger(__name__)
SHORT_LOOKBACK_S = (
    4 * 7 * 24 * 3600.0
)  # how far back the ledger is read for the time short (its weight stops)
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
    simulated hours after their plan).

    Each place carries its people (the community's population, else what its sites serve) and each holding
    how long it has been below its minimum (short_hours): worst-off first weighs both."""
    hubs = hub_sites(session)
    communities = session.scalars(select(Community).order_by(Community.id)).all()
    # A community without any site has nowhere to hold or receive goods, so it cannot take part.
    siteless = [c.slug for c in communities if c.id not in hubs]
    if siteless:
        log.warning("%s communities have no site and are left out of planning: %s", len(siteless), siteless)
    served = dict(
        session.execute(
            select(Site.community_id, func.sum(Site.people_served)).group_by(Site.community_id)
        ).all()
    )
    places = [
        Place(c.id, c.name, c.lat, c.lon, people=float(c.population or served.get(c.id) or 0))
        for c in communities
        if c.id in hubs
    ]
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
    held_now = {key: values[0] for key, values in levels.items()}
    _count_goods_on_their_way(session, levels)
    if lead_s > 0:
        for key, per_s in use_rates(session, USE_WINDOW_LEADS * lead_s, now).items():
            if key in levels:
                levels[key][0] = max(0.0, levels[key][0] - per_s * lead_s)
    minimums: dict[tuple[int, int], float] = {}
    for need in session.scalars(select(NeedLevel)):
        levels[need.community_id, need.good_id][1:] = [need.minimum, need.target]
        minimums[need.community_id, need.good_id] = need.minimum
    short = {key: (held_now.get(key, 0.0), m) for key, m in minimums.items() if held_now.get(key, 0.0) < m}
    hours = short_hours(session, short, now)
    holdings = [
        Holding(place, good, quantity, minimum, target, short_hours=hours.get((place, good), 0.0))
        for (place, good), (quantity, minimum, target) in sorted(levels.items())
        if place in hubs
    ]
    return AllocationInput(places, goods, holdings)


def short_hours(
    session: Session, short: Mapping[tuple[int, int], tuple[float, float]], now: datetime | None = None
) -> dict[tuple[int, int], float]:
    """(community, good) -> hours it has been below its minimum, for those `short` ((community, good) ->
    (stock now, minimum)): walking the stock ledger back from today's stock to the last change that took it
    below the minimum, over at most SHORT_LOOKBACK_S. With no such change in the window, since the oldest
    entry in it (a lower bound); with no entry at all, 0."""
    if not short:
        return {}
    now = now or utcnow()
    since = now - timedelta(seconds=SHORT_LOOKBACK_S)
    rows = session.execute(
        select(
            Site.community_id, StockLedgerEntry.good_id, StockLedgerEntry.delta, StockLedgerEntry.created_at
        )
        .join(Site, StockLedgerEntry.site_id == Site.id)
        .where(
            StockLedgerEntry.created_at >= since,
            StockLedgerEntry.created_at <= now,
            Site.community_id.in_({c for c, _ in short}),
            StockLedgerEntry.good_id.in_({g for _, g in short}),
        )
        .order_by(StockLedgerEntry.created_at.desc(), StockLedgerEntry.id.desc())
    )
    level = {key: stock for key, (stock, _) in short.items()}
    began: dict[tuple[int, int], datetime] = {}
    settled: set[tuple[int, int]] = set()
    for community_id, good_id, delta, created_at in rows:
        key = (community_id, good_id)
        if key not in level or key in settled:
            continue
        began[key] = _aware(created_at)
        level[key] -= delta  # the stock before this entry
        if level[key] >= short[key][1] - UNIT_EPS:  # at or above the minimum before it: the shortage began
            settled.add(key)
    return {key: max(0.0, (now - at).total_seconds() / 3600.0) for key, at in began.items()}


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
            Shipment.status,
            Shipment.good_id,
            Shipment.from_site_id,
            Shipment.to_site_id,
            Shipment.quantity,
            Shipment.fed_ref,
        ).where(Shipment.status.in_((ShipmentStatus.ASSIGNED, ShipmentStatus.PICKED_UP)))
    )
    for status, good_id, source, destination, quantity, fed_ref in moving:
        if status == ShipmentStatus.ASSIGNED:
            held = levels[community_of[source], good_id]
            held[0] = max(0.0, held[0] - quantity)
        if fed_ref is None:  # goods for another node leave this node's books: its store holds no stock there
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


@dataclass(frozen=True)
class SavedPlan:
    """What save_plan did to the one current plan: its id and how many shipments (loads) it changed."""

    plan_id: int
    created: bool = False  # the first plan ever (or since the last one left `proposed`): a new row
    added: int = 0  # loads written, on new lanes or on lanes now split differently
    revised: int = 0  # loads whose quantity was changed
    cancelled: int = 0  # loads no longer wanted, cancelled with the reason
    kept: int = 0  # lanes left as they were: the same, or changed too little to tell (lots.small_change)

    @property
    def unchanged(self) -> bool:
        """Nothing was written: no shipment, no alert."""
        return not (self.created or self.added or self.revised or self.cancelled)


@dataclass(frozen=True)
class _Lane:
    """One lane (good, from site, to site) of a save, with the communities at its ends."""

    key: LaneKey
    giver: int
    receiver: int


def save_plan(session: Session, plan: AllocationPlan) -> SavedPlan:
    """Revise the one current plan in place to `plan`, with an alert per community whose deliveries changed.

    The plan is made on top of the goods already on routes or on their way, so only the current plan's
    shipments still `planned` on no route are compared with it, lane by lane (good, from site, to site;
    lots.revise_lanes): a lane that changed too little to tell keeps its shipments (no write, no alert), a
    changed one gets its new quantity, one no longer wanted is cancelled with the reason, a new one is
    added, each split into loads the usual vehicle carries. Shipments on routes are not touched. The first
    plan ever creates the DeliveryPlan row; afterwards the same row stays current and its summary follows
    the latest plan that changed anything.
    """
    hubs = hub_sites(session)
    missing = {p for s in plan.shipments for p in (s.from_place, s.to_place)} - hubs.keys()
    if missing:
        raise ValueError(f"communities without a site cannot ship or receive: {sorted(missing)}")
    current = current_proposal_id(session)
    held = _held_loads(session, current)
    community_of = dict(session.execute(select(Site.id, Site.community_id)).all())
    held_sites = {(community_of[source], good): source for good, source, _ in held}
    lots = merged(plan.shipments)
    sources = pickup_sites(session, lots, hubs, held_sites)
    lanes = {
        s: _Lane((s.good_id, sources[s.from_place, s.good_id], hubs[s.to_place]), s.from_place, s.to_place)
        for s in lots
    }
    wanted = {lanes[s].key: units for s in lots if (units := whole_units(s.quantity)) >= 1}
    limit = {
        (good, sources[place, good]): quantity
        for (place, good), quantity in plan.above_minimum.items()
        if (place, good) in sources
    }
    weights = dict(session.execute(select(Good.id, Good.weight_kg_per_unit)).all())
    revision = revise_lanes(
        {lane: [q for _, q in rows] for lane, rows in held.items()},
        wanted,
        weights,
        vehicle_load_kg(session),
        limit,
    )
    created = current is None
    if current is None:
        row = DeliveryPlan(status=PlanStatus.PROPOSED.value)
        session.add(row)
        session.flush()
        current = row.id
    if revision.unchanged and not created:
        log.debug("plan %s unchanged: %s lanes kept", current, len(revision.keep))
        return SavedPlan(current, kept=len(revision.keep))
    ends = {lane.key: lane for lane in lanes.values()}
    ends |= {key: _Lane(key, community_of[key[1]], community_of[key[2]]) for key in held if key not in ends}
    notices: list[tuple[int, dict[str, Any]]] = []
    added, revised, cancelled = _write_lanes(session, current, revision, held, ends, notices)
    cancelled += _cancel_lanes(session, plan, revision.cancel, held, ends, notices)
    _store_summary(session, current, plan)
    alerts = _queue_alerts(session, current, notices)
    log.info(
        "plan %s%s: %s loads added, %s revised, %s cancelled, %s lanes kept; %s alerts",
        current,
        " created" if created else "",
        added,
        revised,
        cancelled,
        len(revision.keep),
        alerts,
    )
    return SavedPlan(current, created, added, revised, cancelled, len(revision.keep))


def _write_lanes(
    session: Session,
    plan_id: int,
    revision: Revision,
    held: Mapping[LaneKey, Sequence[tuple[int, float]]],
    ends: Mapping[LaneKey, _Lane],
    notices: list[tuple[int, dict[str, Any]]],
) -> tuple[int, int, int]:
    """New lanes' loads and revised lanes' new loads: a stored load changed in place where there is one,
    stored loads left over cancelled, missing ones added; each noted for its receiver. Returns (added,
    revised, cancelled)."""
    added = revised = cancelled = 0
    for key, loads in [*revision.revise.items(), *revision.add.items()]:
        rows, lane = list(held.get(key, ())), ends[key]
        for (shipment_id, was), quantity in zip(rows, loads, strict=False):
            if quantity != was:
                revise_quantity(session, shipment_id, float(quantity))
                notices.append((lane.receiver, _notice(lane, shipment_id, quantity, "revised", was=was)))
                revised += 1
        left_over = dict(rows[len(loads) :])
        why = f"re-planned: this good now goes in {len(loads)} loads"
        for shipment_id in cancel_planned(session, list(left_over), why) if left_over else []:
            notice = _notice(lane, shipment_id, 0, "cancelled", was=left_over[shipment_id], reason=why)
            notices.append((lane.receiver, notice))
            cancelled += 1
        new = [
            Shipment(
                plan_id=plan_id,
                good_id=key[0],
                from_site_id=key[1],
                to_site_id=key[2],
                quantity=float(quantity),
                status=ShipmentStatus.PLANNED.value,
            )
            for quantity in loads[len(rows) :]
        ]
        session.add_all(new)
        session.flush()  # shipment ids go into the alerts
        notices += [(lane.receiver, _notice(lane, s.id, s.quantity, "new")) for s in new]
        added += len(new)
    return added, revised, cancelled


def _cancel_lanes(
    session: Session,
    plan: AllocationPlan,
    cancel: Sequence[LaneKey],
    held: Mapping[LaneKey, Sequence[tuple[int, float]]],
    ends: Mapping[LaneKey, _Lane],
    notices: list[tuple[int, dict[str, Any]]],
) -> int:
    """Cancel the lanes the new plan no longer wants, each with the reason; returns the loads cancelled."""
    slugs = dict(session.execute(select(Community.id, Community.slug)).all())
    goods = dict(session.execute(select(Good.id, Good.slug)).all())
    cancelled = 0
    for key in cancel:
        lane = ends[key]
        giver, receiver, good = slugs[lane.giver], slugs[lane.receiver], goods[key[0]]
        if (lane.receiver, key[0]) in plan.coverage:
            why = f"re-planned: {giver} no longer sends {good} to {receiver} (less to give, or nearer)"
        else:
            why = f"no longer needed: {receiver} is not short of {good} any more"
        rows = dict(held[key])
        for shipment_id in cancel_planned(session, list(rows), why):
            notices.append(
                (lane.receiver, _notice(lane, shipment_id, 0, "cancelled", was=rows[shipment_id], reason=why))
            )
            cancelled += 1
    return cancelled


def _notice(
    lane: _Lane, shipment_id: int, quantity: float, change: str, was: float | None = None, reason: str = ""
) -> dict[str, Any]:
    """One changed shipment in its receiver's alert (the good and giver are ids until _queue_alerts)."""
    item: dict[str, Any] = {"id": shipment_id, "good": lane.key[0], "quantity": float(quantity)}
    item |= {"from": lane.giver, "change": change}
    if was is not None:
        item["was"] = float(was)
    if reason:
        item["reason"] = reason
    return item


def _store_summary(session: Session, plan_id: int, plan: AllocationPlan) -> None:
    """The current plan row follows the latest plan: its counts, fair shares and solver outcome."""
    row = session.get(DeliveryPlan, plan_id)
    assert row is not None  # the caller just made or found it
    summary: dict[str, Any] = plan.summary()
    summary["fair_share"] = {str(g): round(v, 6) for g, v in sorted(plan.fair_share.items())}
    row.summary, row.solver_status, row.objective = summary, plan.status, plan.objective


def vehicle_load_kg(session: Session) -> float | None:
    """What most active drivers' vehicles carry (the median capacity, kg): a shipment heavier than that is
    split into loads that fit (lots.split_loads), since no route took a 2.3-tonne shipment of rice when
    the largest van carried 1.35 t. None when no vehicle is active (no splitting)."""
    capacities = sorted(
        session.scalars(
            select(Vehicle.capacity_kg)
            .join(Member, Vehicle.member_id == Member.id)
            .where(Vehicle.active.is_(True), Member.active.is_(True), Member.is_driver.is_(True))
        )
    )
    return capacities[len(capacities) // 2] if capacities else None


def current_proposal_id(session: Session) -> int | None:
    """The one current plan (the newest still proposed), if any."""
    return session.scalar(select(func.max(DeliveryPlan.id)).where(DeliveryPlan.status == PlanStatus.PROPOSED))


def shipment_count(session: Session, plan_id: int | None) -> int:
    """How many shipments plan `plan_id` holds (0 for None)."""
    if plan_id is None:
        return 0
    return int(session.scalar(select(func.count()).where(Shipment.plan_id == plan_id)) or 0)


def _held_loads(session: Session, plan_id: int | None) -> dict[LaneKey, list[tuple[int, float]]]:
    """The plan's shipments a new plan stands in for, by lane: (id, quantity) of those still `planned` on
    no route, oldest first. One on a route or on its way is already in the allocation input (see
    load_allocation_input); a failed or cancelled one is needed again, if at all."""
    held: dict[LaneKey, list[tuple[int, float]]] = defaultdict(list)
    if plan_id is None:
        return held
    rows = session.execute(
        select(Shipment.id, Shipment.good_id, Shipment.from_site_id, Shipment.to_site_id, Shipment.quantity)
        .where(
            Shipment.plan_id == plan_id,
            Shipment.status == ShipmentStatus.PLANNED,
            Shipment.route_id.is_(None),
            Shipment.fed_ref.is_(None),  # a shipment another node's plan asked for is not ours to revise
        )
        .order_by(Shipment.id)
    )
    for shipment_id, good, source, destination, quantity in rows:
        held[good, source, destination].append((shipment_id, quantity))
    return held


def pickup_sites(
    session: Session,
    planned: Sequence[PlannedShipment],
    hubs: Mapping[int, int],
    held_sites: Mapping[tuple[int, int], int] | None = None,
) -> dict[tuple[int, int], int]:
    """(community, good) -> where a driver loads it: the community's site holding the most of it, its hub on
    a tie or when no site holds any. Harvests stay on the farm and medicine at the clinic; sent to an empty
    hub, drivers found nothing to load (the region week's pickups). A site in `held_sites` (one a stored
    shipment of the good already leaves from) stays the source while it holds all that is given, so a
    re-plan does not move a lane between farm and hub for a few units of stock."""
    held_sites = held_sites or {}
    giving: dict[tuple[int, int], float] = defaultdict(float)
    for s in planned:
        giving[s.from_place, s.good_id] += s.quantity
    best: dict[tuple[int, int], tuple[bool, float, bool, int]] = {}
    if giving:
        rows = session.execute(
            select(Site.community_id, Stock.site_id, Stock.good_id, Stock.quantity)
            .join(Site, Stock.site_id == Site.id)
            .where(Site.community_id.in_({c for c, _ in giving}), Stock.good_id.in_({g for _, g in giving}))
        )
        for community_id, site_id, good_id, quantity in rows:
            key = (community_id, good_id)
            if key not in giving or quantity <= 0:
                continue
            stays = held_sites.get(key) == site_id and quantity >= giving[key] - UNIT_EPS
            rank = (stays, quantity, site_id == hubs[community_id], -site_id)
            if key not in best or rank > best[key]:
                best[key] = rank
    return {key: -best[key][3] if key in best else hubs[key[0]] for key in giving}


def hub_sites(session: Session) -> dict[int, int]:
    """Community id -> the site goods move through: its storage hub, else its lowest-numbered site."""
    rows = session.execute(select(Site.community_id, Site.id, Site.kind)).all()
    hubs: dict[int, int] = {}
    for community_id, site_id, _kind in sorted(rows, key=lambda r: (r[0], r[2] != HUB_KIND, r[1])):
        hubs.setdefault(community_id, site_id)
    return hubs


def _queue_alerts(session: Session, plan_id: int, notices: Sequence[tuple[int, dict[str, Any]]]) -> int:
    """One outbox message per community whose deliveries changed, written in the plan's own transaction:
    its new, revised and cancelled shipments."""
    slugs = {i: slug for i, slug in session.execute(select(Community.id, Community.slug))}
    goods = {i: slug for i, slug in session.execute(select(Good.id, Good.slug))}
    incoming: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for place, item in notices:
        incoming[place].append(item | {"good": goods[item["good"]], "from": slugs[item["from"]]})
    now = format_ts(utcnow())
    for place, items in sorted(incoming.items()):
        payload = alert_payload(plan_id, slugs[place], now, sorted(items, key=lambda i: i["id"]))
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
