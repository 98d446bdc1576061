"""Collective progress and shortages: per-sector goals met this month and the goods below their minimum.

A sector's goals this month are its stock goals (each community's minimum of each of the sector's goods,
met when the community holds that much now) and the hours and slots goals communities and the region set
(gateway.store.goals), met when the month's hours in the sector (the ledger's reserved and done entries)
or the board places filled (signups taken or done) reach the target. Progress is only ever collective: sums
by sector and community, never a person's share, never a ranking of people or communities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from dashboard.read.queries import CRITICAL, LEVELS, OK, SHORT, CommunitySummary
from gateway.contract import clock
from gateway.store.goals import goals_for, month_bounds, month_of
from gateway.store.models import (
    BoardTask,
    Community,
    Good,
    HoursEntry,
    Member,
    NeedLevel,
    RepairTask,
    Site,
    SlotSignup,
    Stock,
    StockLedgerEntry,
    TaskShift,
)
from gateway.store.models.vocab import (
    BOARD_SECTORS,
    GOOD_SECTORS,
    GoalKind,
    HoursState,
    SignupState,
    WorkKind,
)
from gateway.store.offers import offer_sector

# Every sector a goal can be in: the board's six, then the goods' sectors that are not among them.
SECTORS: Final = (*BOARD_SECTORS, *(s for s in GOOD_SECTORS if s not in BOARD_SECTORS))
COUNTED_HOURS: Final = (HoursState.RESERVED, HoursState.DONE)  # accepted or given, not merely asked
FILLED: Final = (SignupState.TAKEN, SignupState.DONE)  # a place someone holds or held
REGION_NAME: Final = "the region"


@dataclass(frozen=True)
class GoalProgress:
    """One hours or slots goal of the month and how far the sector has come (a sum, never a person's)."""

    id: int
    sector: str
    kind: str  # hours or slots
    community: str | None  # the community's slug; None: the whole region
    community_name: str
    target: float
    achieved: float

    @property
    def met(self) -> bool:
        return self.achieved >= self.target

    @property
    def fraction(self) -> float:
        """Share of the target reached, 0 to 1 (a progress bar's width)."""
        return min(self.achieved / self.target, 1.0) if self.target > 0 else 0.0

    @property
    def percent(self) -> int:
        """The fraction as a whole percent, rounded down (100 only when met)."""
        return 100 if self.met else min(int(self.fraction * 100), 99)

    @property
    def sentence(self) -> str:
        """For example "Food, Utuado: 42 of 60 hours"."""
        unit = "hours" if self.kind == GoalKind.HOURS else "places filled"
        return (
            f"{self.sector.capitalize()}, {self.community_name}: "
            f"{self.achieved:,.{_places(self.achieved)}f} of {self.target:,.{_places(self.target)}f} {unit}"
        )


def _places(value: float) -> int:
    return 0 if float(value).is_integer() else 1


@dataclass(frozen=True)
class SectorProgress:
    """A sector's goals this month: the stock goals (need minimums) and the hours and slots goals set."""

    sector: str
    stock_goals: int
    stock_met: int
    deliveries: int  # stock arrivals recorded by drivers since the month began
    work: tuple[GoalProgress, ...] = field(default=())  # the hours and slots goals

    @property
    def goals(self) -> int:
        """Every goal of the sector this month."""
        return self.stock_goals + len(self.work)

    @property
    def met(self) -> int:
        """The goals met."""
        return self.stock_met + sum(g.met for g in self.work)

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

    @property
    def detail(self) -> str:
        """What the percent is made of, e.g. "1 of 2 need minimums held; 2 of 3 work goals reached; 4
        deliveries this month" (a tooltip)."""
        parts = []
        if self.stock_goals:
            parts.append(f"{self.stock_met} of {self.stock_goals} need minimums held")
        if self.work:
            parts.append(f"{sum(g.met for g in self.work)} of {len(self.work)} work goals reached")
        parts.append(f"{self.deliveries} deliveries this month")
        return "; ".join(parts)


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
    session: Session,
    communities: Sequence[CommunitySummary] | None = None,
    now: datetime | None = None,
    *,
    community_id: int | None = None,
    every_sector: bool = False,
) -> list[SectorProgress]:
    """Per sector with goals (every sector with `every_sector`): this month's goals and how many are met.

    With `community_id`, one community's page: its need minimums, its own hours and slots goals (counting
    the work of that community) and deliveries to its sites; without, the whole region's, where a region
    goal counts the work of every community. `communities` (already loaded for the map) saves reading the
    levels again.
    """
    at = now or clock.now()
    stock_goals, stock_met = _stock_goals(session, communities, community_id)
    work = work_goals(session, at, community_id=community_id)
    deliveries = _deliveries(session, month_start(at), community_id)
    rows = [
        SectorProgress(
            sector,
            stock_goals[sector],
            stock_met[sector],
            deliveries.get(sector, 0),
            tuple(g for g in work if g.sector == sector),
        )
        for sector in SECTORS
    ]
    return [r for r in rows if every_sector or r.goals]


def _stock_goals(
    session: Session, communities: Sequence[CommunitySummary] | None, community_id: int | None
) -> tuple[dict[str, int], dict[str, int]]:
    """Need minimums by good sector, and how many of them the stock held now meets."""
    goals: dict[str, int] = defaultdict(int)
    met: dict[str, int] = defaultdict(int)
    if communities is None:
        for community, good, need, quantity in _levels(session):
            if community_id is None or community.id == community_id:
                goals[good.sector] += 1
                met[good.sector] += quantity >= need.minimum
    else:
        sectors = dict(session.execute(select(Good.slug, Good.sector)).all())
        chosen = (c for c in communities if community_id is None or c.id == community_id)
        for level in (g for c in chosen for g in c.goods if g.minimum is not None):
            goals[sectors[level.good]] += 1
            met[sectors[level.good]] += level.level == OK
    return goals, met


def _deliveries(session: Session, since: datetime, community_id: int | None) -> dict[str, int]:
    """Stock arrivals by drivers since `since`, by good sector (to one community's sites, if given)."""
    query = (
        select(Good.sector, func.count())
        .join(StockLedgerEntry, StockLedgerEntry.good_id == Good.id)
        .where(StockLedgerEntry.source == "delivery", StockLedgerEntry.delta > 0)
        .where(StockLedgerEntry.created_at >= since)
        .group_by(Good.sector)
    )
    if community_id is not None:
        query = query.join(Site, Site.id == StockLedgerEntry.site_id).where(Site.community_id == community_id)
    return {sector: int(count) for sector, count in session.execute(query).all()}


def work_goals(
    session: Session, now: datetime | None = None, *, community_id: int | None = None
) -> list[GoalProgress]:
    """This month's hours and slots goals with what is achieved: every goal set (the region's and each
    community's), or with `community_id` that community's own. Sums only, by sector and community."""
    at = now or clock.now()
    month = month_of(at)
    goals = goals_for(session, month, community_id if community_id is not None else "all")
    if not goals:
        return []
    start, end = month_bounds(month)
    kinds = {g.kind for g in goals}
    achieved = {
        GoalKind.HOURS.value: month_hours(session, start, end) if GoalKind.HOURS in kinds else {},
        GoalKind.SLOTS.value: month_slots(session, start, end) if GoalKind.SLOTS in kinds else {},
    }
    ids = {g.community_id for g in goals if g.community_id is not None}
    places = {
        c.id: (c.slug, c.name)
        for c in session.execute(
            select(Community.id, Community.slug, Community.name).where(Community.id.in_(ids))
        )
    }
    found = []
    for goal in goals:
        by_community = achieved[goal.kind]
        if goal.community_id is None:
            value = sum(v for (sector, _), v in by_community.items() if sector == goal.sector)
            slug, name = None, REGION_NAME
        else:
            value = by_community.get((goal.sector, goal.community_id), 0.0)
            slug, name = places[goal.community_id]
        found.append(GoalProgress(goal.id, goal.sector, goal.kind, slug, name, goal.target, float(value)))
    return found


def month_hours(session: Session, start: datetime, end: datetime) -> dict[tuple[str, int], float]:
    """Hours accepted or given in [start, end) by (sector, community): a board slot's hours count in the
    task's community, a repair's in its site's, other work (routes) in the person's home community; done
    work counts its actual hours. Water and energy work counts as other, as in people's offers."""
    community = func.coalesce(BoardTask.community_id, Site.community_id, Member.community_id)
    given = case(
        (HoursEntry.state == HoursState.DONE, func.coalesce(HoursEntry.actual_hours, HoursEntry.hours)),
        else_=HoursEntry.hours,
    )
    rows = session.execute(
        select(HoursEntry.sector, community, func.sum(given))
        .select_from(HoursEntry)
        .join(Member, Member.id == HoursEntry.member_id)
        .outerjoin(SlotSignup, and_(HoursEntry.work == WorkKind.TASK, SlotSignup.id == HoursEntry.work_id))
        .outerjoin(TaskShift, TaskShift.id == SlotSignup.shift_id)
        .outerjoin(BoardTask, BoardTask.id == TaskShift.task_id)
        .outerjoin(RepairTask, and_(HoursEntry.work == WorkKind.REPAIR, RepairTask.id == HoursEntry.work_id))
        .outerjoin(Site, Site.id == RepairTask.site_id)
        .where(HoursEntry.state.in_(COUNTED_HOURS))
        .where(HoursEntry.starts_at >= start, HoursEntry.starts_at < end)
        .group_by(HoursEntry.sector, community)
    )
    totals: dict[tuple[str, int], float] = defaultdict(float)
    for sector, community_id, value in rows:
        totals[offer_sector(sector), community_id] += float(value or 0.0)
    return dict(totals)


def month_slots(session: Session, start: datetime, end: datetime) -> dict[tuple[str, int], float]:
    """Board places filled (signups taken or done) in shifts starting in [start, end), by (sector,
    community of the task)."""
    rows = session.execute(
        select(BoardTask.sector, BoardTask.community_id, func.count(SlotSignup.id))
        .select_from(SlotSignup)
        .join(TaskShift, TaskShift.id == SlotSignup.shift_id)
        .join(BoardTask, BoardTask.id == TaskShift.task_id)
        .where(SlotSignup.state.in_(FILLED))
        .where(TaskShift.starts_at >= start, TaskShift.starts_at < end)
        .group_by(BoardTask.sector, BoardTask.community_id)
    )
    return {(sector, community_id): float(count) for sector, community_id, count in rows}


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


__all__ = [
    "OK",
    "GoalProgress",
    "SectorProgress",
    "Shortage",
    "sector_progress",
    "shortages",
    "work_goals",
]
