"""Data and result of repair assignment: frozen values that validate themselves, no ORM, no solver."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from gateway.contract.errors import InvalidInput

# Hours a year a person gives by default (about 150): 20 in each essential sector, 50 in other work.
ESSENTIAL_SECTORS: Final = ("food", "health", "education", "maintenance", "governance")
DEFAULT_BASELINE: Final[Mapping[str, float]] = MappingProxyType(
    {**dict.fromkeys(ESSENTIAL_SECTORS, 20.0), "other": 50.0}
)
REPAIR_SECTOR: Final = "maintenance"


def _finite_nonnegative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{name} must be a finite number >= 0, got {value!r}")


def _coordinates(what: str, lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput(f"{what}: coordinates ({lat}, {lon}) out of range")


@dataclass(frozen=True)
class CrewMember:
    """A crew member who may be asked: where they are, what they can do, their room and recent hours."""

    id: int
    name: str
    community_id: int
    lat: float
    lon: float
    skills: frozenset[str]
    free_slots: int  # concurrent tasks they may still take (cap minus tasks already theirs)
    available_in_h: float | None = 0.0  # hours until their next availability window; None: not soon
    recent_hours: Mapping[str, float] = field(default_factory=dict)  # sector -> hours in the period

    def __post_init__(self) -> None:
        _coordinates(f"member {self.id}", self.lat, self.lon)
        object.__setattr__(self, "skills", frozenset(self.skills))
        if self.free_slots < 0:
            raise InvalidInput(f"member {self.id}: free_slots must be >= 0, got {self.free_slots}")
        if self.available_in_h is not None:
            _finite_nonnegative(f"member {self.id} available_in_h", self.available_in_h)
        for sector, hours in self.recent_hours.items():
            _finite_nonnegative(f"member {self.id} hours in {sector}", hours)


@dataclass(frozen=True)
class RepairJob:
    """An open repair task: where, which skills it needs, how urgent, who already declined it."""

    id: int
    title: str
    community_id: int
    lat: float
    lon: float
    required_skills: frozenset[str]
    urgency: int = 0
    sector: str = REPAIR_SECTOR
    declined_by: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        _coordinates(f"task {self.id}", self.lat, self.lon)
        object.__setattr__(self, "required_skills", frozenset(self.required_skills))
        object.__setattr__(self, "declined_by", frozenset(self.declined_by))
        if self.urgency < 0:
            raise InvalidInput(f"task {self.id}: urgency must be >= 0, got {self.urgency}")


@dataclass(frozen=True)
class RepairInput:
    """A whole assignment problem; rejects duplicate ids and unknown communities at construction."""

    tasks: Sequence[RepairJob]
    crew: Sequence[CrewMember]
    communities: Mapping[int, tuple[float, float]]  # id -> (lat, lon) centre, for escalation
    baselines: Mapping[int, Mapping[str, float]] = field(default_factory=dict)  # per community
    escalation_neighbours: int = 3  # how many nearest communities an escalated task reaches
    region_fallback: bool = False  # then anyone qualified in the region, nearest and fairest first
    detour_factor: float = 1.3
    speed_kmh: float = 40.0
    fairness_weight: float = 1.0  # cost of a full baseline of recent hours, in travel hours
    wait_weight: float = 0.25  # cost of an hour waiting for someone's availability window

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
        for community, baseline in self.baselines.items():
            for sector, hours in baseline.items():
                if not (math.isfinite(hours) and hours > 0):
                    raise InvalidInput(f"community {community}: baseline for {sector} must be > 0")
        if self.escalation_neighbours < 0:
            raise InvalidInput("escalation_neighbours must be >= 0")
        for name in ("detour_factor", "speed_kmh", "fairness_weight", "wait_weight"):
            _finite_nonnegative(name, getattr(self, name))
        if self.detour_factor < 1 or self.speed_kmh <= 0:
            raise InvalidInput("detour_factor must be >= 1 and speed_kmh > 0")

    def baseline(self, community_id: int, sector: str) -> float:
        """Yearly hours a person of the community is expected to give to the sector."""
        own = self.baselines.get(community_id, {})
        if sector in own:
            return own[sector]
        return DEFAULT_BASELINE.get(sector, DEFAULT_BASELINE["other"])


@dataclass(frozen=True)
class Assignment:
    """Who is asked to do a task, why (shown on the dashboard), and whether it left its community."""

    task_id: int
    member_id: int
    explanation: str
    distance_km: float
    escalated: bool = False


@dataclass(frozen=True)
class Unassignable:
    """A task nobody can take now, the reason, and the communities it was widened to."""

    task_id: int
    reason: str
    widened_to: tuple[int, ...] = ()


@dataclass(frozen=True)
class RepairPlan:
    """A complete assignment (every open task assigned or reported); never a partial one."""

    assignments: tuple[Assignment, ...]
    unassigned: tuple[Unassignable, ...]
    status: str
    objective: float = 0.0
    solve_time_s: float = field(default=0.0, compare=False)

    def summary(self) -> dict[str, object]:
        """Counts worth logging or printing."""
        return {
            "assigned": len(self.assignments),
            "escalated_assigned": sum(a.escalated for a in self.assignments),
            "unassigned": len(self.unassigned),
            "status": self.status,
            "solve_time_s": round(self.solve_time_s, 3),
        }


def hours_until_available(
    windows: Sequence[Mapping[str, object]] | None, now: datetime, horizon_h: float
) -> float | None:
    """Hours from `now` to the next weekly window (0 inside one); None if none starts within the horizon.

    Windows are `{"day": 0-6 (Monday 0), "start": "HH:MM", "end": "HH:MM"}` on the store's clock. No windows
    at all (None) means the member has not restricted their time: available now.
    """
    if windows is None:
        return 0.0
    week_start = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    best: float | None = None
    for window in windows:
        try:
            day = int(window["day"])  # type: ignore[call-overload]
            start = _clock(str(window["start"]))
            end = _clock(str(window["end"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"availability window {window!r} is malformed") from exc
        if not 0 <= day <= 6 or end <= start:
            raise InvalidInput(f"availability window {window!r} is malformed")
        for week in (0, 7):  # this week's window and next week's
            opens = week_start + timedelta(days=day + week, hours=start)
            closes = week_start + timedelta(days=day + week, hours=end)
            if closes <= now:
                continue
            wait = max(0.0, (opens - now).total_seconds() / 3600)
            if wait <= horizon_h and (best is None or wait < best):
                best = wait
    return best


def _clock(text: str) -> float:
    hours, minutes = text.split(":")
    value = int(hours) + int(minutes) / 60
    if not 0 <= value <= 24:
        raise InvalidInput(text)
    return value
