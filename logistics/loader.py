"""The planner's only door to the store: rows in as plain input data, a plan out as rows and outbox alerts."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from gateway.models import (
    Community,
    DeliveryPlan,
    Good,
    NeedLevel,
    OutboxMessage,
    Shipment,
    Site,
    Stock,
    utcnow,
)
from gateway.protocol import MAX_PAYLOAD_BYTES, QOS, VERSION, community_alerts_topic, format_ts
from logistics.allocation_data import AllocationInput, AllocationPlan, GoodInfo, Holding, Place

log = logging.getLogger(__name__)
HUB_KIND = "storage"  # goods leave from and arrive at a community's storage hub when it has one
ALERT_EVENT = "shipments_planned"


def load_allocation_input(session: Session) -> AllocationInput:
    """Communities as places, stock summed over each one's sites, need levels (0 when none are set)."""
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
    for need in session.scalars(select(NeedLevel)):
        levels[need.community_id, need.good_id][1:] = [need.minimum, need.target]
    holdings = [
        Holding(place, good, quantity, minimum, target)
        for (place, good), (quantity, minimum, target) in sorted(levels.items())
        if place in hubs
    ]
    return AllocationInput(places, goods, holdings)


def save_plan(session: Session, plan: AllocationPlan) -> int:
    """Store the plan as the one proposed plan, with its shipments and an alert per receiving community.

    A plan whose shipments equal the current proposal's is not stored again, so a quiet network is not
    re-alerted on every run; the current proposal's id is returned instead.
    """
    hubs = hub_sites(session)
    missing = {p for s in plan.shipments for p in (s.from_place, s.to_place)} - hubs.keys()
    if missing:
        raise ValueError(f"communities without a site cannot ship or receive: {sorted(missing)}")
    wanted = sorted((s.good_id, hubs[s.from_place], hubs[s.to_place], s.quantity) for s in plan.shipments)
    current = current_proposal_id(session)
    if current is not None and _shipments_of(session, current) == wanted:
        log.debug("plan unchanged: proposal %s stays", current)
        return current
    superseded = cast(
        CursorResult[Any],
        session.execute(
            update(DeliveryPlan).where(DeliveryPlan.status == "proposed").values(status="superseded")
        ),
    )
    summary: dict[str, Any] = plan.summary()
    summary["fair_share"] = {str(g): round(v, 6) for g, v in sorted(plan.fair_share.items())}
    row = DeliveryPlan(
        status="proposed", solver_status=plan.status, objective=plan.objective, summary=summary
    )
    session.add(row)
    session.flush()
    shipments = [
        Shipment(
            plan_id=row.id,
            good_id=s.good_id,
            from_site_id=hubs[s.from_place],
            to_site_id=hubs[s.to_place],
            quantity=s.quantity,
            status="planned",
        )
        for s in plan.shipments
    ]
    session.add_all(shipments)
    session.flush()  # shipment ids go into the alerts
    alerts = _queue_alerts(session, row.id, plan, shipments)
    log.debug(
        "saved plan %s: %s shipments, %s alerts queued, %s earlier proposals superseded",
        row.id,
        len(shipments),
        alerts,
        superseded.rowcount,
    )
    return row.id


def current_proposal_id(session: Session) -> int | None:
    """The newest plan still proposed, if any."""
    return session.scalar(select(func.max(DeliveryPlan.id)).where(DeliveryPlan.status == "proposed"))


def _shipments_of(session: Session, plan_id: int) -> list[tuple[int, int, int, float]]:
    rows = session.execute(
        select(Shipment.good_id, Shipment.from_site_id, Shipment.to_site_id, Shipment.quantity).where(
            Shipment.plan_id == plan_id
        )
    )
    return sorted((good, source, dest, quantity) for good, source, dest, quantity in rows)


def hub_sites(session: Session) -> dict[int, int]:
    """Community id -> the site goods move through: its storage hub, else its lowest-numbered site."""
    rows = session.execute(select(Site.community_id, Site.id, Site.kind)).all()
    hubs: dict[int, int] = {}
    for community_id, site_id, _kind in sorted(rows, key=lambda r: (r[0], r[2] != HUB_KIND, r[1])):
        hubs.setdefault(community_id, site_id)
    return hubs


def _queue_alerts(session: Session, plan_id: int, plan: AllocationPlan, shipments: list[Shipment]) -> int:
    """One outbox message per receiving community, written in the plan's own transaction."""
    slugs = {i: slug for i, slug in session.execute(select(Community.id, Community.slug))}
    goods = {i: slug for i, slug in session.execute(select(Good.id, Good.slug))}
    incoming: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for planned, row in zip(plan.shipments, shipments, strict=True):
        incoming[planned.to_place].append(
            {
                "id": row.id,
                "good": goods[planned.good_id],
                "quantity": planned.quantity,
                "from": slugs[planned.from_place],
            }
        )
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
