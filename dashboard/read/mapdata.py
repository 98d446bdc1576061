"""What the map draws beyond community levels: sites with their sensors, open repair tasks, delivery flows.

Column queries (no ORM objects) so a 50,000-device region loads in well under a second; results are plain
frozen dataclasses the map builder turns into JSON for the page's own script.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import chain

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session, aliased

from dashboard.read.links import LINK_DOWN, shown_state
from dashboard.read.queries import DeviceRow, SiteSummary
from gateway.store.models import (
    Community,
    DeliveryPlan,
    Device,
    Good,
    RepairTask,
    Shipment,
    Site,
)

OPEN_TASK_STATUSES = ("open", "assigned", "accepted", "in_progress", "fixed_pending", "escalated")
# Flows worth drawing: shipments of a live plan that have not arrived, failed or been cancelled.
LIVE_PLAN_STATUSES = ("proposed", "active")
MOVING_SHIPMENT_STATUSES = ("planned", "assigned", "picked_up")


@dataclass(frozen=True)
class TaskPoint:
    """An open repair task where it is."""

    id: int
    title: str
    status: str
    urgency: int
    site: str
    site_name: str
    community: str
    community_name: str
    lat: float
    lon: float
    assigned: bool  # someone of the crew has it (never who: the map is public)
    created_at: datetime


@dataclass(frozen=True)
class FlowGood:
    """One good moving along a flow."""

    name: str
    quantity: float
    unit: str
    status: str


@dataclass(frozen=True)
class Flow:
    """Everything planned or moving from one site to another, drawn as one directed line."""

    from_name: str
    to_name: str
    from_lat: float
    from_lon: float
    to_lat: float
    to_lon: float
    weight_kg: float
    goods: tuple[FlowGood, ...]


@dataclass(frozen=True)
class GoodFlow:
    """One good planned or moving from one community to another: the map's unit of a delivery line (many
    shipments between the same two places become one line, so a region's plan stays readable)."""

    from_name: str
    to_name: str
    from_lat: float
    from_lon: float
    to_lat: float
    to_lon: float
    good: str
    unit: str
    sector: str
    essential: bool
    quantity: float
    weight_kg: float
    shipments: int
    moving: int  # of them picked up and on the road


# A site shows its worst sensor: any fault, else any silent one, else online; no sensor is its own word.
_WORST_FIRST = ("fault", "offline", LINK_DOWN, "stale", "unknown", "online")
SITE_STATES = (*_WORST_FIRST, "no sensor")  # the map's site states, by index (sites.json says so too)
COORD_SCALE = 100_000  # site coordinates travel as integers of 1e-5 degrees
_UNKNOWN_RANK = _WORST_FIRST.index("unknown")  # a state the map has no word for counts as unknown


def worst_state(states: Iterable[str]) -> str:
    """One word for a site's sensors: fault if any is faulty, online if all are, else the worst other."""
    present = set(states)
    if not present:
        return "no sensor"
    return next((s for s in _WORST_FIRST if s in present), "unknown")


def site_points(session: Session) -> list[int]:
    """Every site as flat [lat, lon, state, id, lat, ...]: coordinates in 1e-5 degrees (about a metre),
    state an index into SITE_STATES (its worst sensor's). The database does the work, per site; Python only
    chains the rows, so 50,000 sites cost one query and one json.dumps."""
    known = case({state: i for i, state in enumerate(_WORST_FIRST)}, value=shown_state(), else_=_UNKNOWN_RANK)
    rank = case((Device.id.is_(None), None), else_=known)  # no device (outer join): NULL, so min() is NULL
    query = (
        select(
            cast(func.round(Site.lat * COORD_SCALE), Integer),
            cast(func.round(Site.lon * COORD_SCALE), Integer),
            func.coalesce(func.min(rank), SITE_STATES.index("no sensor")),
            Site.id,
        )
        .outerjoin(Device, Device.site_id == Site.id)
        .group_by(Site.id, Site.lat, Site.lon)
        .order_by(Site.id)
    )
    return list(chain.from_iterable(session.execute(query)))


def sites_with_fault(session: Session) -> int:
    """How many sites have a sensor in fault (the map's header)."""
    query = select(func.count(func.distinct(Device.site_id))).where(Device.state == "fault")
    return int(session.scalar(query) or 0)


def site_detail(session: Session, site_id: int) -> SiteSummary | None:
    """One site with its devices (a site popup, fetched when opened)."""
    found = session.execute(
        select(Site.slug, Site.name, Site.kind, Site.lat, Site.lon, Community.slug, Community.name)
        .join(Community, Site.community_id == Community.id)
        .where(Site.id == site_id)
    ).first()
    if found is None:
        return None
    devices = session.execute(
        select(Device.slug, Device.kind, shown_state(), Device.last_seen_at)
        .where(Device.site_id == site_id)
        .order_by(Device.slug)
    ).all()
    rows = tuple(DeviceRow(*d, found[0], found[1], found[5]) for d in devices)
    return SiteSummary(*found, devices=rows)


def site_summaries(session: Session) -> list[SiteSummary]:
    """Every site with its devices (each site's by slug), sites by community and slug; by columns."""
    devices: dict[int, list[DeviceRow]] = defaultdict(list)
    device_query = (
        select(
            Device.site_id,
            Device.slug,
            Device.kind,
            shown_state(),
            Device.last_seen_at,
            Site.slug,
            Site.name,
            Community.slug,
        )
        .join(Site, Device.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .order_by(Device.slug)
    )
    for site_id, slug, kind, state, seen, site_slug, site_name, community_slug in session.execute(
        device_query
    ):
        devices[site_id].append(DeviceRow(slug, kind, state, seen, site_slug, site_name, community_slug))
    site_query = (
        select(Site.id, Site.slug, Site.name, Site.kind, Site.lat, Site.lon, Community.slug, Community.name)
        .join(Community, Site.community_id == Community.id)
        .order_by(Community.slug, Site.slug)
    )
    return [
        SiteSummary(slug, name, kind, lat, lon, community, community_name, tuple(devices[site_id]))
        for site_id, slug, name, kind, lat, lon, community, community_name in session.execute(site_query)
    ]


def open_tasks(session: Session, community: str | None = None) -> list[TaskPoint]:
    """Repair tasks not yet closed, most urgent first."""
    query = (
        select(
            RepairTask.id,
            RepairTask.title,
            RepairTask.status,
            RepairTask.urgency,
            Site.slug,
            Site.name,
            Community.slug,
            Community.name,
            Site.lat,
            Site.lon,
            RepairTask.assigned_member_id.is_not(None) | RepairTask.helper_ref.is_not(None),  # or a neighbour
            RepairTask.created_at,
        )
        .join(Site, RepairTask.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .where(RepairTask.status.in_(OPEN_TASK_STATUSES))
        .order_by(RepairTask.urgency.desc(), RepairTask.created_at, RepairTask.id)
    )
    if community is not None:
        query = query.where(Community.slug == community)
    return [TaskPoint(*tuple(row)) for row in session.execute(query)]  # 12 columns: past select()'s typing


def flows(session: Session) -> list[Flow]:
    """Shipments of live plans still to arrive, grouped into one flow per (from site, to site)."""
    source, dest = aliased(Site), aliased(Site)
    query = (
        select(
            source.id,
            dest.id,
            source.name,
            dest.name,
            source.lat,
            source.lon,
            dest.lat,
            dest.lon,
            Good.name,
            Good.unit,
            Good.weight_kg_per_unit,
            Shipment.quantity,
            Shipment.status,
        )
        .join(DeliveryPlan, Shipment.plan_id == DeliveryPlan.id)
        .join(source, Shipment.from_site_id == source.id)
        .join(dest, Shipment.to_site_id == dest.id)
        .join(Good, Shipment.good_id == Good.id)
        .where(DeliveryPlan.status.in_(LIVE_PLAN_STATUSES))
        .where(Shipment.status.in_(MOVING_SHIPMENT_STATUSES))
        .order_by(source.id, dest.id, Good.slug, Shipment.id)
    )
    ends: dict[tuple[int, int], tuple[str, str, float, float, float, float]] = {}
    goods: dict[tuple[int, int], list[FlowGood]] = defaultdict(list)
    weights: dict[tuple[int, int], float] = defaultdict(float)
    for row in session.execute(query):
        from_id, to_id, from_name, to_name, from_lat, from_lon, to_lat, to_lon = row[:8]
        name, unit, kg_per_unit, quantity, status = row[8:]
        key = (from_id, to_id)
        ends.setdefault(key, (from_name, to_name, from_lat, from_lon, to_lat, to_lon))
        goods[key].append(FlowGood(name, float(quantity), unit, status))
        weights[key] += float(kg_per_unit) * float(quantity)
    return [Flow(*ends[key], weights[key], tuple(goods[key])) for key in ends]


def good_flows(session: Session) -> list[GoodFlow]:
    """Shipments of live plans still to arrive, summed per (from community, to community, good), heaviest
    first; a shipment within one community is no line on a regional map."""
    source, dest = aliased(Site), aliased(Site)
    origin, target = aliased(Community), aliased(Community)
    moving = func.sum(case((Shipment.status == "picked_up", 1), else_=0))
    weight = func.sum(Shipment.quantity * Good.weight_kg_per_unit)
    query = (
        select(
            origin.name,
            target.name,
            origin.lat,
            origin.lon,
            target.lat,
            target.lon,
            Good.name,
            Good.unit,
            Good.sector,
            Good.essential,
            func.sum(Shipment.quantity),
            weight,
            func.count(Shipment.id),
            moving,
        )
        .join(DeliveryPlan, Shipment.plan_id == DeliveryPlan.id)
        .join(source, Shipment.from_site_id == source.id)
        .join(dest, Shipment.to_site_id == dest.id)
        .join(origin, source.community_id == origin.id)
        .join(target, dest.community_id == target.id)
        .join(Good, Shipment.good_id == Good.id)
        .where(DeliveryPlan.status.in_(LIVE_PLAN_STATUSES))
        .where(Shipment.status.in_(MOVING_SHIPMENT_STATUSES))
        .where(origin.id != target.id)
        .group_by(origin.id, target.id, Good.id)
        .order_by(weight.desc(), origin.id, target.id, Good.id)
    )
    return [
        GoodFlow(
            *row[:9],
            bool(row[9]),
            float(row[10] or 0),
            float(row[11] or 0),
            int(row[12]),
            int(row[13] or 0),
        )
        for row in session.execute(query)
    ]
