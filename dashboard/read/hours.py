"""People's hours as pages show them: a member's own week, month and year by sector against their offer and
the declines they may take back; each person's load for coordinators (by name, never ranked); and the
network's hours by sector for everyone, with no names.

The counting is the ledger's (gateway.store.hours): offered, reserved and done entries count, done ones
with their actual hours, released ones not at all; a piece of work counts in the period it starts in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from dashboard.read.progress import month_start
from gateway.contract import clock
from gateway.store import declines, hours
from gateway.store.members import lent_vehicle
from gateway.store.models import (
    BoardTask,
    Community,
    Decline,
    Good,
    HoursEntry,
    Member,
    RepairTask,
    Route,
    Site,
)
from gateway.store.models.vocab import HoursState, RouteStatus, WorkKind
from gateway.store.offers import OFFER_SECTORS, offer_sector, sector_hours


def next_month(start: datetime) -> datetime:
    """The first of the month after `start` (a month start)."""
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def counted(entry: HoursEntry) -> float:
    """The hours an entry counts: actual once done, planned before, none once released."""
    if entry.state == HoursState.RELEASED:
        return 0.0
    if entry.state == HoursState.DONE and entry.actual_hours is not None:
        return entry.actual_hours
    return entry.hours


@dataclass(frozen=True)
class Periods:
    """This week (Monday-based), month and year, UTC, each as [start, end)."""

    week: tuple[datetime, datetime]
    month: tuple[datetime, datetime]
    year: tuple[datetime, datetime]

    @classmethod
    def at(cls, now: datetime) -> Periods:
        week, month, year = hours.week_start(now), month_start(now), hours.year_start(now)
        return cls(
            (week, week + timedelta(days=7)),
            (month, next_month(month)),
            (year, year.replace(year=year.year + 1)),
        )


@dataclass(frozen=True)
class SectorRow:
    """One sector of a person's hours: counted this week, month and year, and their year's offer of it."""

    sector: str
    week: float
    month: float
    year: float
    offered: float


@dataclass(frozen=True)
class WorkRow:
    """One piece of a person's work this week."""

    work: str  # repair or route
    work_id: int
    sector: str
    state: str
    hours: float
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class HoursSummary:
    """A person's own hours against their offer."""

    member_id: int
    name: str
    periods: Periods
    hours_per_week: float
    hours_per_year: float
    rows: tuple[SectorRow, ...]
    week_work: tuple[WorkRow, ...]

    @property
    def week(self) -> float:
        return sum(r.week for r in self.rows)

    @property
    def month(self) -> float:
        return sum(r.month for r in self.rows)

    @property
    def year(self) -> float:
        return sum(r.year for r in self.rows)

    @property
    def offered(self) -> float:
        return sum(r.offered for r in self.rows)


def _within(at: datetime, period: tuple[datetime, datetime]) -> bool:
    return period[0] <= at < period[1]


def member_hours(session: Session, member: Member, now: datetime | None = None) -> HoursSummary:
    """`member`'s hours this week, month and year by the offer's sectors, against what they offer."""
    periods = Periods.at(now or clock.now())
    since = min(periods.week[0], periods.year[0])  # a week may begin in December
    held = set(
        session.scalars(  # routes waiting for a coordinator's approval: not offered to the person yet
            select(Route.id).where(
                Route.member_id == member.id,
                Route.held_notice.is_not(None),
                Route.status == RouteStatus.PROPOSED,
            )
        )
    )
    entries = [
        e
        for e in hours.entries_of(session, member.id, since)
        if not (e.work == WorkKind.ROUTE and e.work_id in held)
    ]
    totals: dict[str, dict[str, float]] = {name: defaultdict(float) for name in ("week", "month", "year")}
    for entry in entries:
        sector = offer_sector(entry.sector)
        for name in totals:
            if _within(entry.starts_at, getattr(periods, name)):
                totals[name][sector] += counted(entry)
    offer = sector_hours(member.sector_hours, member.hours_per_year)
    rows = tuple(
        SectorRow(s, totals["week"][s], totals["month"][s], totals["year"][s], offer.get(s, 0.0))
        for s in OFFER_SECTORS
    )
    week = tuple(
        WorkRow(e.work, e.work_id, offer_sector(e.sector), e.state, counted(e), e.starts_at, e.ends_at)
        for e in entries
        if _within(e.starts_at, periods.week) and e.state != HoursState.RELEASED
    )
    return HoursSummary(
        member.id, member.name, periods, member.hours_per_week, member.hours_per_year, rows, week
    )


@dataclass(frozen=True)
class DeclineRow:
    """A decline that still holds: what was declined, when, why, until when."""

    id: int
    what: str
    reason: str
    at: datetime
    until: datetime


def member_declines(session: Session, member_id: int, now: datetime | None = None) -> list[DeclineRow]:
    """The member's declines still holding, newest first, each said in words (a task by its title, a
    route's shipment by its good and lane)."""
    held = declines.of_member(session, member_id, now)
    return sorted(
        (DeclineRow(d.id, _declined(session, d), d.reason, d.at, d.until) for d in held),
        key=lambda r: (r.at, r.id),
        reverse=True,
    )


def _declined(session: Session, row: Decline) -> str:
    if row.task_id is not None:
        title = session.scalar(select(RepairTask.title).where(RepairTask.id == row.task_id))
        return f"repair: {title}" if title else f"repair task {row.task_id}"
    if row.board_task_id is not None:
        title = session.scalar(select(BoardTask.title).where(BoardTask.id == row.board_task_id))
        return f"task board: {title}" if title else f"board task {row.board_task_id}"
    source, dest = aliased(Site), aliased(Site)
    source_of, dest_of = aliased(Community), aliased(Community)
    found = session.execute(
        select(Good.name, source.name, source_of.name, dest.name, dest_of.name)
        .select_from(Good)
        .join(source, source.id == row.from_site_id)
        .join(source_of, source_of.id == source.community_id)
        .join(dest, dest.id == row.to_site_id)
        .join(dest_of, dest_of.id == dest.community_id)
        .where(Good.id == row.good_id)
    ).first()
    if found is None:
        return f"route {row.route_id}" if row.route_id is not None else "a delivery"
    good, from_site, from_community, to_site, to_community = found
    return f"carrying {good} from {from_site} ({from_community}) to {to_site} ({to_community})"


@dataclass(frozen=True)
class MemberLoad:
    """One person's load against their offer, for coordinators (listed by name, never ranked)."""

    member_id: int
    name: str
    community_name: str
    roles: str
    week: float
    hours_per_week: float
    year: float
    hours_per_year: float


def member_loads(session: Session, now: datetime | None = None) -> list[MemberLoad]:
    """Every active member's hours this week against their weekly pledge and this year against their yearly
    offer, ordered by name (then id): a list to look people up in, not a ranking."""
    periods = Periods.at(now or clock.now())
    week = hours.load(session, *periods.week)
    year = hours.load(session, *periods.year)
    rows = session.execute(
        select(Member, Community.name)
        .join(Community, Community.id == Member.community_id)
        .where(Member.active.is_(True))
        .order_by(Member.name, Member.id)
    )
    return [
        MemberLoad(
            m.id,
            m.name,
            community,
            _roles(m),
            week.get(m.id, 0.0),
            m.hours_per_week,
            year.get(m.id, 0.0),
            m.hours_per_year,
        )
        for m, community in rows
    ]


def _roles(member: Member) -> str:
    roles = [name for name, on in (("crew", member.is_crew), ("driver", member.is_driver)) if on]
    return ", ".join(roles) or "-"


@dataclass(frozen=True)
class SectorHours:
    """A sector's hours across the network this year: given (done), reserved (accepted, still ahead), asked
    (proposed, awaiting a yes), and what people offer to it."""

    sector: str
    given: float
    reserved: float
    asked: float
    offered: float

    @property
    def percent(self) -> int | None:
        """Given and reserved as a share of the hours offered, rounded down (None when none are offered)."""
        return int(100 * (self.given + self.reserved) // self.offered) if self.offered > 0 else None


@dataclass(frozen=True)
class NetworkHours:
    """The year's hours by sector for the whole network: sums only, no person in them."""

    year: int
    people: int
    rows: tuple[SectorHours, ...]

    @property
    def total(self) -> SectorHours:
        return SectorHours(
            "all",
            sum(r.given for r in self.rows),
            sum(r.reserved for r in self.rows),
            sum(r.asked for r in self.rows),
            sum(r.offered for r in self.rows),
        )


def network_hours(session: Session, now: datetime | None = None) -> NetworkHours:
    """The hours given, reserved and asked this year by sector, against the hours the active members offer."""
    start, end = Periods.at(now or clock.now()).year
    by_state: dict[tuple[str, str], float] = defaultdict(float)
    for sector, state, planned, actual in session.execute(
        select(
            HoursEntry.sector,
            HoursEntry.state,
            func.sum(HoursEntry.hours),
            func.sum(func.coalesce(HoursEntry.actual_hours, HoursEntry.hours)),
        )
        .where(HoursEntry.starts_at >= start, HoursEntry.starts_at < end)
        .where(HoursEntry.state != HoursState.RELEASED)
        .group_by(HoursEntry.sector, HoursEntry.state)
    ):
        value = actual if state == HoursState.DONE else planned
        by_state[offer_sector(sector), state] += float(value or 0.0)
    offers = session.execute(
        select(Member.sector_hours, Member.hours_per_year).where(Member.active.is_(True))
    )
    offered, people = _offered((stored, year) for stored, year in offers)
    rows = tuple(
        SectorHours(
            s,
            by_state[s, HoursState.DONE.value],
            by_state[s, HoursState.RESERVED.value],
            by_state[s, HoursState.OFFERED.value],
            offered[s],
        )
        for s in OFFER_SECTORS
    )
    return NetworkHours(start.year, people, rows)


def _offered(members: Iterable[tuple[dict[str, float] | None, float]]) -> tuple[dict[str, float], int]:
    """The offers summed by sector, and how many people make one."""
    total: dict[str, float] = defaultdict(float)
    people = 0
    for stored, year in members:
        split = sector_hours(stored, year)
        people += sum(split.values()) > 0
        for sector, value in split.items():
            total[sector] += value
    return total, people


@dataclass(frozen=True)
class Offer:
    """A member's offer as the form shows it: the split by sector filled in (the baseline scaled to their
    year when they set none)."""

    member_id: int
    name: str
    hours_per_week: float
    hours_per_year: float
    sector_hours: dict[str, float]
    baseline_split: bool
    preferred_sectors: tuple[str, ...]
    availability: tuple[dict[str, object], ...]
    away: tuple[dict[str, str], ...]
    skills: tuple[str, ...]
    lat: float
    lon: float
    vehicle_kind: str | None
    vehicle_capacity_kg: float | None


def offer_of(session: Session, member_id: int) -> Offer | None:
    """The member's offer, or None if there is no such member."""
    member = session.get(Member, member_id)
    if member is None:
        return None
    vehicle = lent_vehicle(session, member.id)
    return Offer(
        member.id,
        member.name,
        member.hours_per_week,
        member.hours_per_year,
        sector_hours(member.sector_hours, member.hours_per_year),
        not member.sector_hours,
        tuple(str(s) for s in member.preferred_sectors or ()),
        tuple(w for w in member.availability or () if isinstance(w, dict)),
        tuple(p for p in member.away or () if isinstance(p, dict)),
        tuple(sorted(s.skill for s in member.skills)),
        member.lat,
        member.lon,
        vehicle.kind if vehicle else None,
        vehicle.capacity_kg if vehicle else None,
    )
