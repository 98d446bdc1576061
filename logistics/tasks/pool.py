"""The volunteers as arrays, and the room each has left as a plan grows: what the matcher filters and
counts with, thousands of people at a time."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
from numpy.typing import NDArray

from logistics.common.geo import distance_matrix_km
from logistics.tasks.costs import ROOM_EPS
from logistics.tasks.data import SECTORS, MatchInput, OpenPlace, Span

KM_TO_DEG = 1.0 / 110.0  # degrees of latitude per km, rounded up (a degree is 110.6 to 111.7 km)

Near = tuple[NDArray[np.intp], NDArray[np.float64]]


class Pool:
    """The volunteers as arrays (where, what skills, the period's share of their offer), so one numpy pass
    per place filters thousands of people; `index` maps a member id to its position."""

    def __init__(self, data: MatchInput) -> None:
        vols = data.volunteers
        self.data = data
        self.volunteers = vols
        self.index = {v.id: i for i, v in enumerate(vols)}
        self.lat = np.array([v.lat for v in vols], dtype=float)
        self.lon = np.array([v.lon for v in vols], dtype=float)
        self.offer = np.array([data.period_offer(v) for v in vols], dtype=float)
        self.base = np.array([data.period_load(v) for v in vols], dtype=float)
        self.pledge = np.array([v.hours_per_week for v in vols], dtype=float)
        self.preferred = {s: np.array([s in v.preferred_sectors for v in vols], dtype=bool) for s in SECTORS}
        # Per sector, by pool index: plain lists, read one person at a time (cheaper than numpy there).
        self.prefers = {s: [s in v.preferred_sectors for v in vols] for s in SECTORS}
        self.gap = {s: [v.sector_gap(s) for v in vols] for s in SECTORS}
        every_skill = sorted({s for v in vols for s in v.skills})
        self.skilled = {s: np.array([s in v.skills for v in vols], dtype=bool) for s in every_skill}
        self.everyone = np.ones(len(vols), dtype=bool)
        self.nobody = np.zeros(len(vols), dtype=bool)
        self._near: dict[tuple[float, float], Near] = {}
        self._week_room: dict[date, NDArray[np.float64]] = {}
        self._year_room: dict[str, NDArray[np.float64]] = {}
        # Free spans as POSIX seconds (exact to well under a microsecond here): bisect without datetimes.
        self.free_starts = [[s.timestamp() for s, _ in v.free] for v in vols]
        self.free_ends = [[e.timestamp() for _, e in v.free] for v in vols]

    def week_room(self, week: date) -> NDArray[np.float64]:
        """Hours left of each one's pledge in `week` before this plan (`Volunteer.week_room`)."""
        if week not in self._week_room:
            loads = np.array([v.week_load.get(week, 0.0) for v in self.volunteers], dtype=float)
            self._week_room[week] = self.pledge - loads
        return self._week_room[week]

    def year_room(self, sector: str) -> NDArray[np.float64]:
        """Hours left of each one's yearly offer in `sector` before this plan (`Volunteer.year_room`)."""
        if sector not in self._year_room:
            self._year_room[sector] = np.array([v.year_room(sector) for v in self.volunteers], dtype=float)
        return self._year_room[sector]

    def is_free(self, i: int, start: float, end: float) -> bool:
        """`Volunteer.is_free` of volunteer `i` for [start, end] in POSIX seconds."""
        k = bisect.bisect_right(self.free_starts[i], start) - 1
        return k >= 0 and end <= self.free_ends[i][k]

    def can_do(self, place: OpenPlace) -> NDArray[np.bool_]:
        """Who has the skill the place needs (everyone for a place that needs none or takes newcomers)."""
        if place.skill is None or place.newcomer:
            return self.everyone
        return self.skilled.get(place.skill, self.nobody)

    def near(self, place: OpenPlace) -> Near:
        """The volunteers within `max_km` of a place (pool indices) and their great-circle km; cached by
        location, since a recurring task's shifts all share one. A bounding box (a degree of latitude is
        over 110 km) keeps the exact distance to the people near enough to matter."""
        at = (place.lat, place.lon)
        hit = self._near.get(at)
        if hit is None:
            reach = self.data.max_km * KM_TO_DEG
            box = np.flatnonzero(np.abs(self.lat - place.lat) <= reach)
            cos = max(float(np.cos(np.radians(min(abs(place.lat) + reach, 90.0)))), 1e-6)
            box = box[np.abs((self.lon[box] - place.lon + 180.0) % 360.0 - 180.0) <= reach / cos]
            km = distance_matrix_km([place.lat], [place.lon], self.lat[box], self.lon[box])[0]
            inside = km <= self.data.max_km
            hit = (box[inside], km[inside])
            self._near[at] = hit
        return hit


@dataclass
class Ledger:
    """Room left per person as the plan grows, by pool index: each week's pledge, each sector's yearly offer,
    the period's hours (for load ratios), and the spans planned (new work must not overlap them)."""

    week_room: dict[date, NDArray[np.float64]]
    sector_room: dict[str, NDArray[np.float64]]
    hours: NDArray[np.float64]
    planned: dict[int, list[Span]] = field(default_factory=dict)

    @classmethod
    def start(cls, pool: Pool) -> Ledger:
        """Nothing planned yet: the room each volunteer brings."""
        weeks = {w: pool.week_room(w).copy() for w in pool.data.weeks}
        sectors = {s: pool.year_room(s).copy() for s in SECTORS}
        return cls(weeks, sectors, pool.base.copy())

    def copy(self) -> Ledger:
        return Ledger(
            {w: a.copy() for w, a in self.week_room.items()},
            {s: a.copy() for s, a in self.sector_room.items()},
            self.hours.copy(),
            {i: list(spans) for i, spans in self.planned.items()},
        )

    def take(self, place: OpenPlace, i: int) -> None:
        self.week_room[place.week][i] -= place.hours
        self.sector_room[place.sector][i] -= place.hours
        self.hours[i] += place.hours
        bisect.insort(self.planned.setdefault(i, []), (place.starts_at, place.ends_at))

    def give_back(self, place: OpenPlace, i: int) -> None:
        """Undo `take` (the search frees a region's places before it solves them again)."""
        self.week_room[place.week][i] += place.hours
        self.sector_room[place.sector][i] += place.hours
        self.hours[i] -= place.hours
        self.planned[i].remove((place.starts_at, place.ends_at))

    def overlaps(self, i: int, start: datetime, end: datetime) -> bool:
        spans = self.planned.get(i)
        if not spans:
            return False
        # Planned spans never overlap, so of those starting before `end` the last one ends latest.
        k = bisect.bisect_left(spans, end, key=lambda span: span[0])
        return k > 0 and spans[k - 1][1] > start

    def fits(self, place: OpenPlace, i: int) -> bool:
        """Room in the week's pledge and the sector's offer, and nothing planned at that time."""
        return bool(
            self.week_room[place.week][i] >= place.hours - ROOM_EPS
            and self.sector_room[place.sector][i] >= place.hours - ROOM_EPS
            and not self.overlaps(i, place.starts_at, place.ends_at)
        )

    def ratio(self, pool: Pool, i: int) -> float:
        """A person's load ratio (hours / the period's offer; inf for hours without an offer)."""
        offer, hours = float(pool.offer[i]), float(self.hours[i])
        if offer > 0:
            return hours / offer
        return float("inf") if hours > 0 else 0.0
