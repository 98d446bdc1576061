"""The coordinator's members and workload list: each member's offer (yearly hours by sector, weekly pledge),
the hours they gave this year and those planned ahead, and who is near the limit of what they offered.

For coordinators only, to see who could use a lighter load: listed by name or by community, never by hours
(no ranking), and filtered by community, role or skill."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, selectinload

from gateway.contract import clock
from gateway.store import hours
from gateway.store.models import Community, HoursEntry, Member, MemberSkill
from gateway.store.models.vocab import HoursState
from gateway.store.offers import OFFER_SECTORS, offer_sector, sector_hours

PER_PAGE: Final = 100
NEAR_LIMIT: Final = 0.8  # given and planned at or above this share of the offer: near the limit
ROLES: Final = ("crew", "driver")
ORDERS: Final = ("name", "community")


class WorkloadFilterError(ValueError):
    """A filter the list cannot use; the message says why."""


@dataclass(frozen=True)
class WorkloadFilter:
    """Which members to list, and in which order (name or community: never by hours)."""

    community: str = ""  # a community slug, or everyone
    role: str = ""
    skill: str = ""
    order: str = "name"
    page: int = 1

    def args(self, **changes: object) -> dict[str, str]:
        """The query string of this filter (with `changes`), empty values and the defaults left out."""
        values = {"community": self.community, "role": self.role, "skill": self.skill, "order": self.order}
        values |= {"page": str(self.page)} | {k: str(v) for k, v in changes.items()}
        defaults = {"order": "name", "page": "1"}
        return {k: v for k, v in values.items() if v and defaults.get(k) != v}


def parse_filter(args: Mapping[str, str], communities: Mapping[str, str], skills: set[str]) -> WorkloadFilter:
    """The filter from the query string, checked against the known communities and skills."""
    raw_page = args.get("page", "1")
    if not (raw_page.isascii() and raw_page.isdigit() and len(raw_page) <= 9 and int(raw_page) >= 1):
        raise WorkloadFilterError("page must be a whole number from 1")
    wanted = WorkloadFilter(
        args.get("community", ""),
        args.get("role", ""),
        args.get("skill", ""),
        args.get("order") or "name",
        int(raw_page),
    )
    if wanted.community and wanted.community not in communities:
        raise WorkloadFilterError("community must be one of the communities' slugs")
    if wanted.role and wanted.role not in ROLES:
        raise WorkloadFilterError(f"role must be one of: {', '.join(ROLES)}")
    if wanted.skill and wanted.skill not in skills:
        raise WorkloadFilterError("skill must be one of the members' skills")
    if wanted.order not in ORDERS:
        raise WorkloadFilterError("order must be by name or by community (never by hours)")
    return wanted


@dataclass(frozen=True)
class SectorLoad:
    """One sector of a member's year: offered, given (done) and planned ahead (asked or accepted)."""

    sector: str
    offered: float
    given: float
    planned: float


@dataclass(frozen=True)
class Workload:
    """One member's offer and hours."""

    member_id: int
    name: str
    community: str
    roles: str
    skills: tuple[str, ...]
    hours_per_week: float
    hours_per_year: float
    week: float  # counted this week (given and planned)
    given: float  # done this year
    planned: float  # asked or accepted this year, not done yet
    sectors: tuple[SectorLoad, ...]

    @property
    def year_share(self) -> float:
        """Given and planned against the yearly offer (1.0: all of it)."""
        total = self.given + self.planned
        return total / self.hours_per_year if self.hours_per_year > 0 else (1.0 if total > 0 else 0.0)

    @property
    def near_limit(self) -> bool:
        """At or past NEAR_LIMIT of the yearly offer, or of the weekly pledge this week."""
        week = self.week / self.hours_per_week if self.hours_per_week > 0 else 0.0
        return self.year_share >= NEAR_LIMIT or week >= NEAR_LIMIT

    @property
    def full_sectors(self) -> list[str]:
        """Sectors whose offered hours are (nearly) used: planners ask no more there."""
        return [
            s.sector
            for s in self.sectors
            if s.offered > 0 and (s.given + s.planned) >= NEAR_LIMIT * s.offered
        ]


def community_choices(session: Session) -> dict[str, str]:
    """Slug -> name of every community, by name."""
    return dict(session.execute(select(Community.slug, Community.name).order_by(Community.name)).all())


def skill_choices(session: Session) -> list[str]:
    """Every skill some member has, sorted."""
    return list(session.scalars(select(MemberSkill.skill).distinct().order_by(MemberSkill.skill)))


@dataclass(frozen=True)
class WorkloadPage:
    """One page of the list and how many members the filter matches."""

    rows: list[Workload]
    total: int
    pages: int


def workloads(
    session: Session, wanted: WorkloadFilter, now: datetime | None = None, per_page: int = PER_PAGE
) -> WorkloadPage:
    """Active members matching the filter, by name or by community then name, with their year's hours, a
    page at a time; WorkloadFilterError for a page past the last."""
    now = now or clock.now()
    year_start = hours.year_start(now)
    week_start = hours.week_start(now)
    query = (
        select(Member, Community.name)
        .join(Community, Community.id == Member.community_id)
        .where(Member.active.is_(True))
        .options(selectinload(Member.skills))
    )
    if wanted.community:
        query = query.where(Community.slug == wanted.community)
    if wanted.role == "crew":
        query = query.where(Member.is_crew.is_(True))
    elif wanted.role == "driver":
        query = query.where(Member.is_driver.is_(True))
    if wanted.skill:
        query = query.where(Member.skills.any(MemberSkill.skill == wanted.skill))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    pages = max(1, -(-total // per_page))
    if wanted.page > pages:
        raise WorkloadFilterError(f"there {'is 1 page' if pages == 1 else f'are {pages} pages'}")
    order = (Member.name, Member.id) if wanted.order == "name" else (Community.name, Member.name, Member.id)
    query = query.order_by(*order).limit(per_page).offset((wanted.page - 1) * per_page)
    rows = session.execute(query).all()
    year = _year_hours(session, [m.id for m, _ in rows], year_start)
    week = hours.load(session, week_start, week_start + timedelta(days=7))
    found = [_workload(m, community, year.get(m.id, {}), week.get(m.id, 0.0)) for m, community in rows]
    return WorkloadPage(found, total, pages)


def _year_hours(
    session: Session, members: list[int], since: datetime
) -> dict[int, dict[str, dict[str, float]]]:
    """Member -> offer sector -> {"given": done hours, "planned": asked or accepted} for work this year."""
    found: dict[int, dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: {"given": 0.0, "planned": 0.0})
    )
    if not members:
        return found
    done = HoursEntry.state == HoursState.DONE
    counted = case((done, func.coalesce(HoursEntry.actual_hours, HoursEntry.hours)), else_=HoursEntry.hours)
    rows = session.execute(
        select(HoursEntry.member_id, HoursEntry.sector, done, func.sum(counted))
        .where(
            HoursEntry.member_id.in_(members),
            HoursEntry.state.in_((HoursState.OFFERED, HoursState.RESERVED, HoursState.DONE)),
            HoursEntry.starts_at >= since,
            HoursEntry.starts_at < since.replace(year=since.year + 1),
        )
        .group_by(HoursEntry.member_id, HoursEntry.sector, done)
    )
    for member_id, sector, is_done, total in rows:
        found[member_id][offer_sector(sector)]["given" if is_done else "planned"] += float(total or 0.0)
    return found


def _workload(member: Member, community: str, year: dict[str, dict[str, float]], week: float) -> Workload:
    offer = sector_hours(member.sector_hours, member.hours_per_year)
    sectors = tuple(
        SectorLoad(
            s, offer.get(s, 0.0), year.get(s, {}).get("given", 0.0), year.get(s, {}).get("planned", 0.0)
        )
        for s in OFFER_SECTORS
    )
    roles = ", ".join(r for r, on in (("crew", member.is_crew), ("driver", member.is_driver)) if on) or "-"
    return Workload(
        member.id,
        member.name,
        community,
        roles,
        tuple(sorted(s.skill for s in member.skills)),
        member.hours_per_week,
        member.hours_per_year,
        week,
        sum(s.given for s in sectors),
        sum(s.planned for s in sectors),
        sectors,
    )
