"""Read-only queries of the store for the dashboard: functions taking a session, returning plain values.

Pages and the API share these, and the map builder consumes their results without touching the ORM.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.read.links import shown_state
from gateway.store.models import Community, Device, Good, NeedLevel, Site, Stock

# Shortage levels, worst first: an essential good below its minimum is critical, any other good is short.
CRITICAL, SHORT, OK = "critical", "short", "ok"
LEVELS = (CRITICAL, SHORT, OK)


@dataclass(frozen=True)
class GoodLevel:
    """A community's total stock of one good (over all its sites) against its need levels."""

    good: str
    name: str
    unit: str
    essential: bool
    quantity: float
    minimum: float | None = None
    target: float | None = None

    @property
    def level(self) -> str:
        """critical, short or ok."""
        if self.minimum is None or self.quantity >= self.minimum:
            return OK
        return CRITICAL if self.essential else SHORT

    @property
    def ratio(self) -> float:
        """Stock as a fraction of the minimum (inf when no minimum), to rank shortages."""
        return self.quantity / self.minimum if self.minimum else math.inf


@dataclass(frozen=True)
class CommunitySummary:
    """A community with its stock-vs-need levels, enough for the map and the API."""

    id: int
    slug: str
    name: str
    lat: float
    lon: float
    population: int
    goods: tuple[GoodLevel, ...]

    @cached_property  # read several times per community and page: the map sorts, colours and counts by it
    def worst(self) -> GoodLevel | None:
        """The worst shortage: essential goods first, then the lowest stock-to-minimum ratio."""
        short = [g for g in self.goods if g.level != OK]
        return min(short, key=lambda g: (LEVELS.index(g.level), g.ratio, g.good)) if short else None

    @cached_property
    def level(self) -> str:
        """The community's colour class: its worst shortage's level, or ok."""
        worst = self.worst
        return worst.level if worst else OK


@dataclass(frozen=True)
class DeviceRow:
    """A device and where it is."""

    slug: str
    kind: str
    state: str
    last_seen_at: datetime | None
    site: str
    site_name: str
    community: str


@dataclass(frozen=True)
class SiteSummary:
    """A site with its devices, for the map's second layer."""

    slug: str
    name: str
    kind: str
    lat: float
    lon: float
    community: str
    community_name: str
    devices: tuple[DeviceRow, ...]


@dataclass(frozen=True)
class StockRow:
    """Stock of one good at one site."""

    community: str
    site: str
    good: str
    quantity: float
    unit: str
    updated_at: datetime


def community_summaries(session: Session, slug: str | None = None) -> list[CommunitySummary]:
    """Every community (or the one with `slug`) with its goods' levels, ordered by name."""
    # Plain columns, not ORM objects: a 5,000-community region loads several times faster.
    query = select(
        Community.id, Community.slug, Community.name, Community.lat, Community.lon, Community.population
    ).order_by(Community.name, Community.slug)
    if slug is not None:
        query = query.where(Community.slug == slug)
    communities = session.execute(query).all()
    if not communities:
        return []
    ids = [c[0] for c in communities] if slug is not None else None
    goods = {
        g.id: g
        for g in session.execute(select(Good.id, Good.slug, Good.name, Good.unit, Good.essential)).all()
    }
    totals: dict[int, dict[int, float]] = defaultdict(dict)
    stock_query = (
        select(Site.community_id, Stock.good_id, func.sum(Stock.quantity))
        .join(Stock, Stock.site_id == Site.id)
        .group_by(Site.community_id, Stock.good_id)
    )
    need_query = select(NeedLevel.community_id, NeedLevel.good_id, NeedLevel.minimum, NeedLevel.target)
    if ids is not None:
        stock_query = stock_query.where(Site.community_id.in_(ids))
        need_query = need_query.where(NeedLevel.community_id.in_(ids))
    for community_id, good_id, quantity in session.execute(stock_query):
        totals[community_id][good_id] = float(quantity or 0.0)
    needs: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)  # (minimum, target)
    for community_id, good_id, minimum, target in session.execute(need_query):
        needs[community_id][good_id] = (minimum, target)
    order = {good_id: n for n, good_id in enumerate(sorted(goods, key=lambda i: goods[i].slug))}
    summaries = []
    for community_id, c_slug, c_name, lat, lon, population in communities:  # plain tuples: 5,000 of them
        held, wanted = totals[community_id], needs[community_id]
        levels = []
        for good_id in sorted(held.keys() | wanted.keys(), key=order.__getitem__):
            good, need = goods[good_id], wanted.get(good_id)
            levels.append(
                GoodLevel(
                    good.slug,
                    good.name,
                    good.unit,
                    good.essential,
                    held.get(good_id, 0.0),
                    need[0] if need else None,
                    need[1] if need else None,
                )
            )
        summaries.append(CommunitySummary(community_id, c_slug, c_name, lat, lon, population, tuple(levels)))
    return summaries


def device_rows(
    session: Session,
    community: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[DeviceRow]:
    """Devices with their site and community, optionally filtered (by the state shown), in a stable order."""
    state_shown = shown_state()
    query = (
        select(
            Device.slug, Device.kind, state_shown, Device.last_seen_at, Site.slug, Site.name, Community.slug
        )
        .join(Site, Device.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .order_by(Community.slug, Site.slug, Device.slug)
    )
    if community is not None:
        query = query.where(Community.slug == community)
    if kind is not None:
        query = query.where(Device.kind == kind)
    if state is not None:
        query = query.where(state_shown == state)
    query = query.limit(limit).offset(offset)
    return [DeviceRow(*row) for row in session.execute(query)]


def stock_rows(
    session: Session,
    community: str | None = None,
    good: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[StockRow]:
    """Stock per site and good, optionally for one community and/or good, in a stable order."""
    query = (
        select(Community.slug, Site.slug, Good.slug, Stock.quantity, Good.unit, Stock.updated_at)
        .join(Site, Stock.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .join(Good, Stock.good_id == Good.id)
        .order_by(Community.slug, Site.slug, Good.slug)
    )
    if community is not None:
        query = query.where(Community.slug == community)
    if good is not None:
        query = query.where(Good.slug == good)
    query = query.limit(limit).offset(offset)
    return [StockRow(*row) for row in session.execute(query)]


def exists(session: Session, model: type[Community] | type[Good], slug: str) -> bool:
    """Whether a community or good with `slug` exists (to tell 'unknown' from 'nothing there')."""
    return session.scalar(select(func.count()).select_from(model).where(model.slug == slug)) == 1


def counts(session: Session) -> dict[str, int]:
    """Row counts of the region's main tables, for the health check and page header."""
    tables: Sequence[tuple[str, type[Community] | type[Site] | type[Device] | type[Good]]] = (
        ("communities", Community),
        ("sites", Site),
        ("devices", Device),
        ("goods", Good),
    )
    return {name: int(session.scalar(select(func.count()).select_from(model)) or 0) for name, model in tables}
