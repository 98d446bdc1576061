"""Data and result of repair assignment: frozen values that validate themselves, no ORM, no solver.

Time is in hours relative to the planning clock (`RepairInput.now`, 0 = now): a member's availability
windows and existing commitments are intervals `(start_h, end_h)`, and so is every planned assignment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Final

from gateway.contract.errors import InvalidInput
from logistics.common.intervals import merge as intervals_merge
from logistics.common.intervals import subtract as intervals_subtract

# Hours a year a person gives by default (about 150): 20 in each essential sector, 50 in other work.
ESSENTIAL_SECTORS: Final = ("food", "health", "education", "maintenance", "governance")
DEFAULT_BASELINE: Final[Mapping[str, float]] = MappingProxyType(
    {**dict.fromkeys(ESSENTIAL_SECTORS, 20.0), "other": 50.0}
)
REPAIR_SECTOR: Final = "maintenance"
DEFAULT_TASK_HOURS: Final = 2.0

Interval = tuple[float, float]


def _finite_nonnegative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{name} must be a finite number >= 0, got {value!r}")


def _coordinates(what: str, lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput(f"{what}: coordinates ({lat}, {lon}) out of range")


def _intervals(what: str, value: Iterable[Interval]) -> tuple[Interval, ...]:
    """The intervals as a tuple of float pairs, each finite with end >= start."""
    checked = []
    for start, end in value:
        if not (math.isfinite(start) and math.isfinite(end) and end >= start):
            raise InvalidInput(f"{what}: interval ({start}, {end}) is not a finite span")
        checked.append((float(start), float(end)))
    return tuple(checked)


def merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted, non-empty, pairwise disjoint intervals covering the same time."""
    return tuple(intervals_merge(intervals))


def subtract(intervals: Iterable[Interval], taken: Iterable[Interval]) -> tuple[Interval, ...]:
    """The parts of `intervals` outside every interval of `taken` (sorted and disjoint)."""
    return tuple(intervals_subtract(intervals, taken))


@dataclass(frozen=True)
class CrewMember:
    """A crew member who may be asked: where they are, what they can do, what they offer and what they
    already gave.

    `week_pledge_h` is the hard limit of any week (`week_load_h`: hours already offered, reserved or done
    this week in every role); `year_offer_h` / `year_load_h` are the same per sector over the year.
    `windows` are when they are available (None: any time within the horizon), `busy` what they already
    committed to (routes, tasks); new work goes only into windows outside `busy`.
    """

    id: int
    name: str
    community_id: int
    lat: float
    lon: float
    skills: frozenset[str]
    week_pledge_h: float = 0.0
    week_load_h: float = 0.0
    year_offer_h: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_BASELINE))
    year_load_h: Mapping[str, float] = field(default_factory=dict)
    preferred_sectors: frozenset[str] = frozenset()
    windows: tuple[Interval, ...] | None = None
    busy: tuple[Interval, ...] = ()

    def __post_init__(self) -> None:
        what = f"member {self.id}"
        _coordinates(what, self.lat, self.lon)
        object.__setattr__(self, "skills", frozenset(self.skills))
        object.__setattr__(self, "preferred_sectors", frozenset(self.preferred_sectors))
        _finite_nonnegative(f"{what} week_pledge_h", self.week_pledge_h)
        _finite_nonnegative(f"{what} week_load_h", self.week_load_h)
        for name in ("year_offer_h", "year_load_h"):
            for sector, hours in getattr(self, name).items():
                _finite_nonnegative(f"{what} {name}[{sector}]", hours)
        if self.windows is not None:
            object.__setattr__(self, "windows", _intervals(f"{what} windows", self.windows))
        object.__setattr__(self, "busy", _intervals(f"{what} busy", self.busy))

    @property
    def week_room_h(self) -> float:
        """Hours left of this week's pledge (negative when already over it)."""
        return self.week_pledge_h - self.week_load_h

    def year_room_h(self, sector: str) -> float:
        """Hours left of the year's offer in `sector` (a sector not offered has none)."""
        return self.year_offer_h.get(sector, 0.0) - self.year_load_h.get(sector, 0.0)

    def load_ratio(self, extra_h: float = 0.0) -> float:
        """(This week's load + `extra_h`) / the weekly pledge; 0 without a pledge and load."""
        if self.week_pledge_h <= 0:
            return 0.0 if self.week_load_h + extra_h <= 0 else math.inf
        return (self.week_load_h + extra_h) / self.week_pledge_h

    def rotation(self, sector: str) -> float:
        """Share of the year's offer in `sector` already given (1 when nothing is offered there)."""
        offer = self.year_offer_h.get(sector, 0.0)
        return self.year_load_h.get(sector, 0.0) / offer if offer > 0 else 1.0

    def free_intervals(self, horizon_h: float) -> tuple[Interval, ...]:
        """Available time from now to the horizon outside existing commitments: sorted, disjoint."""
        windows = ((0.0, horizon_h),) if self.windows is None else self.windows
        clipped = [(max(0.0, s), min(horizon_h, e)) for s, e in windows]
        return subtract(clipped, self.busy)


@dataclass(frozen=True)
class RepairJob:
    """An open repair task: where, which skills it needs, how long, how urgent, who declined it lately."""

    id: int
    title: str
    community_id: int
    lat: float
    lon: float
    required_skills: frozenset[str]
    urgency: int = 0
    sector: str = REPAIR_SECTOR
    declined_by: frozenset[int] = frozenset()  # members with an active decline (the last 7 days)
    hours: float = DEFAULT_TASK_HOURS

    def __post_init__(self) -> None:
        _coordinates(f"task {self.id}", self.lat, self.lon)
        object.__setattr__(self, "required_skills", frozenset(self.required_skills))
        object.__setattr__(self, "declined_by", frozenset(self.declined_by))
        if self.urgency < 0:
            raise InvalidInput(f"task {self.id}: urgency must be >= 0, got {self.urgency}")
        if not (math.isfinite(self.hours) and self.hours > 0):
            raise InvalidInput(f"task {self.id}: hours must be a finite number > 0, got {self.hours!r}")


@dataclass(frozen=True)
class RepairInput:
    """A whole assignment problem; rejects duplicate ids and unknown communities at construction."""

    tasks: Sequence[RepairJob]
    crew: Sequence[CrewMember]
    communities: Mapping[int, tuple[float, float]]  # id -> (lat, lon) centre, for escalation
    escalation_neighbours: int = 3  # how many nearest communities an escalated task reaches
    region_fallback: bool = False  # then anyone qualified in the region, nearest and fairest first
    detour_factor: float = 1.3
    speed_kmh: float = 40.0
    fairness_weight: float = 1.0  # cost of a sector's whole yearly offer already given, in travel hours
    preferred_weight: float = 0.5  # the rotation term is multiplied by this in a member's preferred sector
    wait_weight: float = 0.25  # cost of an hour waiting for someone's free window
    horizon_h: float = 24.0  # work is planned to start and end within this many hours from now
    now: datetime | None = None  # the clock the relative hours count from (for whoever writes the plan)

    def __post_init__(self) -> None:
        for name in ("tasks", "crew"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len({t.id for t in self.tasks}) != len(self.tasks):
            raise InvalidInput("duplicate task id")
        if len({m.id for m in self.crew}) != len(self.crew):
            raise InvalidInput("duplicate member id")
        everyone: tuple[RepairJob | CrewMember, ...] = (*self.tasks, *self.crew)
        for who in everyone:
            if who.community_id not in self.communities:
                raise InvalidInput(f"{type(who).__name__} {who.id}: unknown community {who.community_id}")
        if self.escalation_neighbours < 0:
            raise InvalidInput("escalation_neighbours must be >= 0")
        for name in ("detour_factor", "speed_kmh", "fairness_weight", "preferred_weight", "wait_weight"):
            _finite_nonnegative(name, getattr(self, name))
        if self.detour_factor < 1 or self.speed_kmh <= 0:
            raise InvalidInput("detour_factor must be >= 1 and speed_kmh > 0")
        if not (math.isfinite(self.horizon_h) and self.horizon_h > 0):
            raise InvalidInput(f"horizon_h must be a finite number > 0, got {self.horizon_h!r}")


@dataclass(frozen=True)
class Assignment:
    """Who is asked to do a task, why (shown on the dashboard), whether it left its community, and when:
    `starts_at_h` .. `ends_at_h` (hours from the plan's clock) inside one of the member's free windows."""

    task_id: int
    member_id: int
    explanation: str
    distance_km: float
    escalated: bool = False
    hours: float = DEFAULT_TASK_HOURS
    starts_at_h: float = 0.0
    ends_at_h: float = DEFAULT_TASK_HOURS


@dataclass(frozen=True)
class Unassignable:
    """A task nobody can take now, the reason, and the communities it was widened to."""

    task_id: int
    reason: str
    widened_to: tuple[int, ...] = ()


@dataclass(frozen=True)
class RepairPlan:
    """A complete assignment (every open task assigned or reported); never a partial one.

    `max_load_ratio` and `load_gini` are over the members who could have taken some task: their week's
    load after the plan / their weekly pledge.
    """

    assignments: tuple[Assignment, ...]
    unassigned: tuple[Unassignable, ...]
    status: str
    objective: float = 0.0
    max_load_ratio: float = 0.0
    load_gini: float = 0.0
    now: datetime | None = None
    solve_time_s: float = field(default=0.0, compare=False)

    def summary(self) -> dict[str, object]:
        """Counts worth logging or printing."""
        return {
            "assigned": len(self.assignments),
            "escalated_assigned": sum(a.escalated for a in self.assignments),
            "unassigned": len(self.unassigned),
            "max_load_ratio": round(self.max_load_ratio, 3),
            "load_gini": round(self.load_gini, 3),
            "status": self.status,
            "solve_time_s": round(self.solve_time_s, 3),
        }


def gini(values: Sequence[float]) -> float:
    """The Gini coefficient of non-negative values: 0 when all are equal (or there are none)."""
    total = sum(values)
    if len(values) < 2 or total <= 0:
        return 0.0
    spread = sum(abs(a - b) for a in values for b in values)
    return spread / (2 * len(values) * total)


def availability_intervals(
    windows: Sequence[Mapping[str, object]] | None,
    away: Sequence[Mapping[str, object]] | None,
    now: datetime,
    horizon_h: float,
) -> tuple[Interval, ...]:
    """A member's available time from `now` to the horizon, in hours from `now`: sorted and disjoint.

    `windows` are weekly `{"day": 0-6 (Monday 0), "start": "HH:MM", "end": "HH:MM"}` on the store's clock
    (UTC); None means the member has not restricted their time (available throughout). `away` periods
    `{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}` (both days included) are cut out.
    """
    if windows is None:
        weekly: list[Interval] = [(0.0, horizon_h)]
    else:
        weekly = [iv for window in windows for iv in _weekly_window(window, now, horizon_h)]
    return subtract([(max(0.0, s), min(horizon_h, e)) for s, e in weekly], _away(away or (), now))


def _weekly_window(window: Mapping[str, object], now: datetime, horizon_h: float) -> list[Interval]:
    """Every occurrence of one weekly window that may reach into [now, now + horizon]."""
    try:
        day = int(window["day"])  # type: ignore[call-overload]
        start = _clock(str(window["start"]))
        end = _clock(str(window["end"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"availability window {window!r} is malformed") from exc
    if not 0 <= day <= 6 or end <= start:
        raise InvalidInput(f"availability window {window!r} is malformed")
    week_start = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    weeks = range(0, int(horizon_h // (7 * 24)) + 2)
    found = []
    for week in weeks:
        opens = week_start + timedelta(days=day + 7 * week, hours=start)
        found.append((_hours(now, opens), _hours(now, opens) + end - start))
    return found


def _away(periods: Sequence[Mapping[str, object]], now: datetime) -> list[Interval]:
    """Away periods as intervals from `now`: from the first day's 00:00 to the day after the last."""
    cut = []
    for period in periods:
        try:
            first = date.fromisoformat(str(period["from"]))
            last = date.fromisoformat(str(period["to"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"away period {period!r} is malformed") from exc
        if last < first:
            raise InvalidInput(f"away period {period!r} ends before it starts")
        begins = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
        ends = datetime(last.year, last.month, last.day, tzinfo=now.tzinfo) + timedelta(days=1)
        cut.append((_hours(now, begins), _hours(now, ends)))
    return cut


def _hours(now: datetime, at: datetime) -> float:
    return (at - now).total_seconds() / 3600


def _clock(text: str) -> float:
    hours, minutes = text.split(":")
    value = int(hours) + int(minutes) / 60
    if not 0 <= value <= 24:
        raise InvalidInput(text)
    return value
