"""The coordinator's list of routes: filtered by driver, state and day, a page at a time, soonest first.

Filters come in as the query string's text and are checked here, so a bad one is a 400 with its message
(RouteFilterError), never a query that fails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from gateway.store.models import Community, Member, Route, RouteStop
from gateway.store.models.vocab import ROUTE_STATUSES, RouteStatus

PER_PAGE: Final = 50
CURRENT: Final = (RouteStatus.PROPOSED, RouteStatus.ACCEPTED, RouteStatus.IN_PROGRESS)
# The state filter: "" (current routes), "all", "held" (waiting for approval) or one route status.
STATES: Final = ("", "all", "held", *ROUTE_STATUSES)
STATE_LABELS: Final = {
    "": "current (proposed, accepted, under way)",
    "all": "any",
    "held": "waiting for approval",
}


class RouteFilterError(ValueError):
    """A filter value the list cannot use; the message says which and why."""


@dataclass(frozen=True)
class RouteFilter:
    """What the coordinator asked for."""

    driver: int | None = None
    state: str = ""
    day: date | None = None
    page: int = 1

    def args(self, **changes: object) -> dict[str, str]:
        """The query string of this filter (with `changes`), empty values left out."""
        values = {
            "driver": "" if self.driver is None else str(self.driver),
            "state": self.state,
            "date": "" if self.day is None else self.day.isoformat(),
            "page": "" if self.page == 1 else str(self.page),
        } | {k: str(v) for k, v in changes.items()}
        return {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}


def parse_filter(args: Mapping[str, str]) -> RouteFilter:
    """The filter from the query string; RouteFilterError for a value it cannot be."""
    driver = _whole(args.get("driver", ""), "driver must be a member id (a positive whole number)")
    state = args.get("state", "")
    if state not in STATES:
        raise RouteFilterError(f"state must be one of: {', '.join(s for s in STATES if s)} (or empty)")
    raw_day = args.get("date", "").strip()
    day = None
    if raw_day:
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            raise RouteFilterError(f"date must be a day as YYYY-MM-DD, not {raw_day[:20]!r}") from None
    page = _whole(args.get("page", ""), "page must be a whole number from 1") or 1
    return RouteFilter(driver, state, day, page)


def _whole(raw: str, message: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and int(raw) >= 1):
        raise RouteFilterError(message)
    return int(raw)


@dataclass(frozen=True)
class RouteRow:
    """One route in the list."""

    id: int
    status: str
    held: bool
    starts_at: datetime | None
    ends_at: datetime | None
    distance_km: float
    driver: str | None
    community: str | None
    stops: int
    failed_stops: int

    @property
    def day(self) -> date | None:
        """The UTC day it starts (the list groups by it)."""
        return self.starts_at.astimezone(UTC).date() if self.starts_at is not None else None


@dataclass(frozen=True)
class RoutePage:
    """One page of the list, with the total the filter matches."""

    rows: list[RouteRow]
    total: int
    page: int
    pages: int


def _filtered(query: Select[tuple[int]], wanted: RouteFilter) -> Select[tuple[int]]:
    if wanted.driver is not None:
        query = query.where(Route.member_id == wanted.driver)
    if wanted.state == "":
        query = query.where(Route.status.in_(CURRENT))
    elif wanted.state == "held":
        query = query.where(Route.status == RouteStatus.PROPOSED, Route.held_notice.is_not(None))
    elif wanted.state != "all":
        query = query.where(Route.status == wanted.state)
    if wanted.day is not None:
        start = datetime(wanted.day.year, wanted.day.month, wanted.day.day, tzinfo=UTC)
        query = query.where(Route.starts_at >= start, Route.starts_at < start + timedelta(days=1))
    return query


def route_page(session: Session, wanted: RouteFilter, per_page: int = PER_PAGE) -> RoutePage:
    """The routes the filter matches, soonest first (no time yet last), routes with failed stops first
    within a day; RouteFilterError for a page past the last."""
    total = int(session.scalar(_filtered(select(func.count(Route.id)), wanted)) or 0)
    pages = max(1, -(-total // per_page))
    if wanted.page > pages:
        raise RouteFilterError(f"there {'is' if pages == 1 else 'are'} {pages} page{'s' * (pages != 1)}")
    failed = (
        select(func.count())
        .where(RouteStop.route_id == Route.id, RouteStop.status == "failed")
        .correlate(Route)
        .scalar_subquery()
    )
    stops = select(func.count()).where(RouteStop.route_id == Route.id).correlate(Route).scalar_subquery()
    ids = _filtered(select(Route.id), wanted)
    query = (
        select(Route, Member.name, Community.name, stops, failed)
        .outerjoin(Member, Route.member_id == Member.id)
        .outerjoin(Community, Member.community_id == Community.id)
        .where(Route.id.in_(ids))
        .order_by(
            Route.starts_at.is_(None), func.date(Route.starts_at), failed.desc(), Route.starts_at, Route.id
        )
        .limit(per_page)
        .offset((wanted.page - 1) * per_page)
    )
    rows = [
        RouteRow(
            r.id,
            r.status,
            r.held_notice is not None and r.status == RouteStatus.PROPOSED,
            r.starts_at,
            r.ends_at,
            r.distance_km,
            driver,
            community,
            int(n or 0),
            int(f or 0),
        )
        for r, driver, community, n, f in session.execute(query)
    ]
    return RoutePage(rows, total, wanted.page, pages)


def driver_choices(session: Session) -> list[tuple[int, str]]:
    """Drivers, and members who have a route, by name: the driver filter's options."""
    with_routes = select(Route.member_id).where(Route.member_id.is_not(None))
    rows = session.execute(
        select(Member.id, Member.name, Community.name)
        .join(Community, Member.community_id == Community.id)
        .where((Member.is_driver.is_(True)) | Member.id.in_(with_routes))
        .order_by(Member.name, Member.id)
    )
    return [(i, f"{name} ({community})") for i, name, community in rows]
