"""Collective progress and shortages: per-sector goals met and the list of goods below their minimum.

Progress is only ever collective (a sector across the region), never a ranking of people or communities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard.read.queries import CRITICAL, LEVELS, OK, SHORT, CommunitySummary
from gateway.store.models import Community, Good, NeedLevel, Site, Stock, StockLedgerEntry, utcnow
from gateway.store.models.vocab import GOOD_SECTORS


@dataclass(frozen=True)
class SectorProgress:
    """A sector's goals this month: each community's minimum of each of the sector's goods."""

    sector: str
    goals: int
    met: int
    deliveries: int  # stock arrivals recorded by drivers since the month began

    @property
    def percent(self) -> int | None:
        """Share of goals met, rounded down (None without goals)."""
        return self.met * 100 // self.goals if self.goals else None

    @property
    def sentence(self) -> str:
        """For example "Food: 86% of this month's goals met"."""
        if self.percent is None:
            return f"{self.sector.capitalize()}: no goals set"
        return f"{self.sector.capitalize()}: {self.percent}% of this month's goals met"


@dataclass(frozen=True)
class Shortage:
    """One good below a community's minimum."""

    community: str
    community_name: str
    lat: float
    lon: float
    good: str
    good_name: str
    sector: str
    essential: bool
    unit: str
    quantity: float
    minimum: float
    target: float

    @property
    def level(self) -> str:
        """critical for an essential good, short otherwise."""
        return CRITICAL if self.essential else SHORT

    @property
    def gap(self) -> float:
        """How much is missing to reach the minimum."""
        return self.minimum - self.quantity


def month_start(now: datetime) -> datetime:
    """Midnight UTC on the first of `now`'s month."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _levels(session: Session) -> list[tuple[Any, Any, Any, float]]:
    """Each need level as (community row, good row, need row, quantity the community holds)."""
    totals = {
        (community_id, good_id): float(quantity or 0.0)
        for community_id, good_id, quantity in session.execute(
            select(Site.community_id, Stock.good_id, func.sum(Stock.quantity))
            .join(Stock, Stock.site_id == Site.id)
            .group_by(Site.community_id, Stock.good_id)
        )
    }
    communities = {
        c.id: c
        for c in session.execute(
            select(Community.id, Community.slug, Community.name, Community.lat, Community.lon)
        ).all()
    }
    goods = {
        g.id: g
        for g in session.execute(
            select(Good.id, Good.slug, Good.name, Good.sector, Good.essential, Good.unit)
        ).all()
    }
    needs = session.execute(
        select(NeedLevel.community_id, NeedLevel.good_id, NeedLevel.minimum, NeedLevel.target)
    ).all()
    return [
        (communities[n.community_id], goods[n.good_id], n, totals.get((n.community_id, n.good_id), 0.0))
        for n in needs
    ]


def sector_progress(
    session: Session, communities: Sequence[CommunitySummary] | None = None, now: datetime | None = None
) -> list[SectorProgress]:
    """Per sector with goals: how many of this month's goals (need minimums) are met by the stock held now.

    `communities` (already loaded for the map) saves reading the levels again.
    """
    goals: dict[str, int] = defaultdict(int)
    met: dict[str, int] = defaultdict(int)
    if communities is None:
        for _community, good, need, quantity in _levels(session):
            goals[good.sector] += 1
            met[good.sector] += quantity >= need.minimum
    else:
        sectors = dict(session.execute(select(Good.slug, Good.sector)).all())
        for level in (g for c in communities for g in c.goods if g.minimum is not None):
            goals[sectors[level.good]] += 1
            met[sectors[level.good]] += level.level == OK
    since = month_start(now or utcnow())
    deliveries = dict(
        session.execute(
            select(Good.sector, func.count())
            .join(StockLedgerEntry, StockLedgerEntry.good_id == Good.id)
            .where(StockLedgerEntry.source == "delivery", StockLedgerEntry.delta > 0)
            .where(StockLedgerEntry.created_at >= since)
            .group_by(Good.sector)
        ).all()
    )
    return [
        SectorProgress(sector, goals[sector], met[sector], int(deliveries.get(sector, 0)))
        for sector in GOOD_SECTORS
        if goals[sector]
    ]


def shortages(session: Session) -> list[Shortage]:
    """Every good below a community's minimum: essential goods first, then the largest share missing."""
    found = [
        Shortage(
            c.slug,
            c.name,
            c.lat,
            c.lon,
            g.slug,
            g.name,
            g.sector,
            g.essential,
            g.unit,
            quantity,
            need.minimum,
            need.target,
        )
        for c, g, need, quantity in _levels(session)
        if quantity < need.minimum
    ]
    return sorted(found, key=lambda s: (LEVELS.index(s.level), s.quantity / s.minimum, s.community, s.good))


__all__ = ["OK", "SectorProgress", "Shortage", "sector_progress", "shortages"]
