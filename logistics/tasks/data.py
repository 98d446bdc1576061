"""Data and result of the task board's matcher: frozen values that validate themselves, no ORM, no solver.

A place is one slot of one shift (an occurrence of a board task); a volunteer is a member who may be asked.
Times are aware datetimes on the work clock (UTC). Weeks are ISO weeks keyed by their Monday (a date); a
place's hours count in the week it starts.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Final, TypeVar

from gateway.contract.errors import InvalidInput
from logistics.common.intervals import merge

SECTORS: Final = ("food", "education", "health", "maintenance", "governance", "other")
URGENCY_NAMES: Final = ("low", "normal", "high", "urgent")
DEFAULT_MAX_KM: Final = 25.0
DEFAULT_CANDIDATES: Final = 6  # per place: enough choice, a model HiGHS solves in seconds
DEFAULT_HORIZON_DAYS: Final = 35

Span = tuple[datetime, datetime]
K = TypeVar("K")


def week_of(at: datetime) -> date:
    """The Monday of the ISO week `at` falls in (the key of `Volunteer.week_load`)."""
    day = at.date()
    return day - timedelta(days=day.weekday())


def _finite_nonnegative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{name} must be a finite number >= 0, got {value!r}")


def _coordinates(what: str, lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput(f"{what}: coordinates ({lat}, {lon}) out of range")


def _aware(what: str, at: datetime) -> None:
    if at.tzinfo is None:
        raise InvalidInput(f"{what}: {at!r} has no time zone (the work clock is UTC)")


def _hours_map(what: str, value: Mapping[K, float]) -> Mapping[K, float]:
    for key, hours in value.items():
        _finite_nonnegative(f"{what}[{key}]", hours)
    return MappingProxyType(dict(value))


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted, non-empty, pairwise disjoint spans covering the same time."""
    return tuple(merge(spans))


@dataclass(frozen=True)
class OpenPlace:
    """One open place: a slot of a shift nobody is signed up for, with where, when, what it needs."""

    shift_id: int
    slot_id: int
    task_id: int
    community_id: int
    sector: str
    skill: str | None
    newcomer: bool
    lat: float
    lon: float
    starts_at: datetime
    ends_at: datetime
    hours: float
    urgency: int = 1
    excluded: frozenset[int] = frozenset()  # members who declined the task
    title: str = ""

    def __post_init__(self) -> None:
        what = f"place {self.shift_id}/{self.slot_id}"
        _coordinates(what, self.lat, self.lon)
        if self.sector not in SECTORS:
            raise InvalidInput(f"{what}: unknown sector {self.sector!r}")
        _aware(what, self.starts_at)
        _aware(what, self.ends_at)
        if self.ends_at <= self.starts_at:
            raise InvalidInput(f"{what}: ends before it starts")
        if not (math.isfinite(self.hours) and self.hours > 0):
            raise InvalidInput(f"{what}: hours must be a finite number > 0, got {self.hours!r}")
        if self.urgency not in range(4):
            raise InvalidInput(f"{what}: urgency must be 0..3, got {self.urgency!r}")
        object.__setattr__(self, "excluded", frozenset(self.excluded))

    @cached_property
    def key(self) -> tuple[int, int]:
        return (self.shift_id, self.slot_id)

    @cached_property
    def week(self) -> date:
        """The Monday of the ISO week the place starts in (its hours count there)."""
        return week_of(self.starts_at)


@dataclass(frozen=True)
class Volunteer:
    """A member who may be asked: where, what they can do, what they promised and what they already gave.

    `hours_per_week` is the hard limit of every ISO week (`week_load`: hours already counted in it, every
    role); `year_offer` / `year_load` the same per sector over the year. `free` is when they can work:
    availability windows minus away days minus work already planned.
    """

    id: int
    community_id: int
    lat: float
    lon: float
    skills: frozenset[str] = frozenset()
    hours_per_week: float = 0.0
    week_load: Mapping[date, float] = field(default_factory=dict)
    year_offer: Mapping[str, float] = field(default_factory=dict)
    year_load: Mapping[str, float] = field(default_factory=dict)
    preferred_sectors: frozenset[str] = frozenset()
    free: tuple[Span, ...] = ()

    def __post_init__(self) -> None:
        what = f"member {self.id}"
        _coordinates(what, self.lat, self.lon)
        _finite_nonnegative(f"{what} hours_per_week", self.hours_per_week)
        object.__setattr__(self, "skills", frozenset(self.skills))
        object.__setattr__(self, "preferred_sectors", frozenset(self.preferred_sectors))
        object.__setattr__(self, "week_load", _hours_map(f"{what} week_load", self.week_load))
        object.__setattr__(self, "year_offer", _hours_map(f"{what} year_offer", self.year_offer))
        object.__setattr__(self, "year_load", _hours_map(f"{what} year_load", self.year_load))
        for start, end in self.free:
            _aware(f"{what} free", start)
            _aware(f"{what} free", end)
        object.__setattr__(self, "free", merge_spans(self.free))

    def week_room(self, week: date) -> float:
        """Hours left of the weekly pledge in `week` (negative when already over it)."""
        return self.hours_per_week - self.week_load.get(week, 0.0)

    def year_room(self, sector: str) -> float:
        """Hours left of the year's offer in `sector` (a sector not offered has none)."""
        return self.year_offer.get(sector, 0.0) - self.year_load.get(sector, 0.0)

    def is_free(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end] lies inside one of the free spans (sorted and disjoint: one bisection)."""
        i = bisect.bisect_right(self.free, start, key=lambda span: span[0]) - 1
        return i >= 0 and end <= self.free[i][1]

    def sector_gap(self, sector: str) -> float:
        """How far the year's share given in `sector` lags its share of the offer (positive: behind)."""
        offered = sum(self.year_offer.values())
        if offered <= 0 or self.year_offer.get(sector, 0.0) <= 0:
            return -1.0
        given = sum(self.year_load.values())
        offer_share = self.year_offer[sector] / offered
        given_share = self.year_load.get(sector, 0.0) / given if given > 0 else 0.0
        return offer_share - given_share


@dataclass(frozen=True)
class MatchInput:
    """A whole matching problem; rejects duplicate ids at construction.

    `period_days` is the span the load ratio is taken over: a person's hours in it / that span's share of
    their yearly offer. `candidates`: how many people the model may choose from for each place (the
    least loaded and nearest suited ones with room; more is a slower model for little gain).
    """

    places: Sequence[OpenPlace]
    volunteers: Sequence[Volunteer]
    now: datetime
    max_km: float = DEFAULT_MAX_KM
    candidates: int = DEFAULT_CANDIDATES
    period_days: int = DEFAULT_HORIZON_DAYS

    def __post_init__(self) -> None:
        object.__setattr__(self, "places", tuple(self.places))
        object.__setattr__(self, "volunteers", tuple(self.volunteers))
        _aware("now", self.now)
        if len({p.key for p in self.places}) != len(self.places):
            raise InvalidInput("duplicate place (shift, slot)")
        if len({v.id for v in self.volunteers}) != len(self.volunteers):
            raise InvalidInput("duplicate member id")
        if not (math.isfinite(self.max_km) and self.max_km > 0):
            raise InvalidInput(f"max_km must be a finite number > 0, got {self.max_km!r}")
        if self.candidates < 1:
            raise InvalidInput(f"candidates must be at least 1, got {self.candidates}")
        if self.period_days < 1:
            raise InvalidInput(f"period_days must be at least 1, got {self.period_days}")

    def period_offer(self, v: Volunteer) -> float:
        """The period's share of a volunteer's yearly offer, in hours."""
        return sum(v.year_offer.values()) * self.period_days / 365.0

    @cached_property
    def weeks(self) -> tuple[date, ...]:
        """The ISO weeks (Mondays) the places start in, in order."""
        return tuple(sorted({p.week for p in self.places}))

    def period_load(self, v: Volunteer) -> float:
        """Hours already counted for a volunteer in the weeks the period's places fall in."""
        weeks = set(self.weeks)
        return sum(h for week, h in v.week_load.items() if week in weeks)


@dataclass(frozen=True)
class Suggestion:
    """Who is asked for a place, and why them, in words they and the poster can read."""

    shift_id: int
    slot_id: int
    member_id: int
    distance_km: float
    explanation: str
    hours: float = 0.0


@dataclass(frozen=True)
class Unmatched:
    """A place nobody is suggested for, and the reason."""

    shift_id: int
    slot_id: int
    reason: str


@dataclass(frozen=True)
class MatchPlan:
    """A complete match: every place suggested or reported unmatched; never a partial one."""

    suggestions: tuple[Suggestion, ...]
    unmatched: tuple[Unmatched, ...]
    solve_s: float = field(default=0.0, compare=False)
    stats: Mapping[str, object] = field(default_factory=dict, compare=False)


def gini(values: Sequence[float]) -> float:
    """The Gini coefficient of non-negative values (0: all equal, or fewer than two, or all zero)."""
    ordered = sorted(values)
    n, total = len(ordered), sum(ordered)
    if n < 2 or total <= 0:
        return 0.0
    weighted = sum((2 * (i + 1) - n - 1) * x for i, x in enumerate(ordered))
    return weighted / (n * total)
