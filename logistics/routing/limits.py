"""A driver's time for new routes, from the hard limits of issue 13: when they are free and how long a route
may take then.

A person is free inside their weekly availability windows (None: unrestricted), not on the days they are
away and not during work they already hold (their busy intervals). Their free time is cut into slots of at
most a shift; each slot becomes one vehicle of the routing input, whose route starts at the slot's start,
ends by its end and lasts at most `Slot.hours`: what is left of the week's pledge and of the year's offer in
every sector the slot may carry. Those bounds are the vehicle's `shift_end` and `max_duration`, which the
search never exceeds (they are constraints of every insertion), so no plan can break a limit; checking the
routes afterwards would only find nothing.

Time is UTC datetimes here; the loader turns slots into minutes from the planning clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from gateway.contract.errors import InvalidInput
from logistics.common.intervals import subtract

Interval = tuple[datetime, datetime]
MIN_ROUTE_H: Final = 0.25  # a slot shorter than this carries no useful route
EPS_H: Final = 1e-6


def week_of(at: datetime) -> datetime:
    """Monday 00:00 of the week `at` falls in (the ledger's weeks)."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def _clock(text: Any) -> timedelta:
    """An "HH:MM" time of day (24:00 ends a day) as the time since midnight."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        raise InvalidInput(f"{text!r} is not a time of day HH:MM")
    try:
        hours, minutes = int(text[:2]), int(text[3:])
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not a time of day HH:MM") from exc
    if not (0 <= minutes < 60 and 0 <= hours * 60 + minutes <= 24 * 60):
        raise InvalidInput(f"{text!r} is not a time of day HH:MM")
    return timedelta(hours=hours, minutes=minutes)


def available(
    windows: Sequence[Mapping[str, Any]] | None,
    away: Sequence[Mapping[str, Any]] | None,
    start: datetime,
    end: datetime,
) -> list[Interval]:
    """When the person may work in [start, end): their weekly windows (UTC clock; None: all the time) less
    the days they are away (both days of a period included)."""
    if windows is None:
        weekly = [(start, end)]
    else:
        weekly = []
        first = week_of(start) - timedelta(days=7)
        for window in windows:
            try:
                day = int(window["day"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(f"availability window {window!r} has no day 0-6") from exc
            opens, closes = _clock(window.get("start")), _clock(window.get("end"))
            if not 0 <= day <= 6 or closes <= opens:
                raise InvalidInput(f"availability window {window!r} is not a day 0-6 from start to end")
            monday = first
            while monday < end:
                at = monday + timedelta(days=day)
                weekly.append((max(start, at + opens), min(end, at + closes)))
                monday += timedelta(days=7)
    return subtract(weekly, _away(away or (), start.tzinfo))


def _away(periods: Sequence[Mapping[str, Any]], tz: Any) -> list[Interval]:
    """Away periods as intervals: from the first day's 00:00 to the day after the last."""
    cut = []
    for period in periods:
        try:
            first = date.fromisoformat(str(period["from"]))
            last = date.fromisoformat(str(period["to"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"away period {period!r} is not from/to YYYY-MM-DD") from exc
        begins = datetime(first.year, first.month, first.day, tzinfo=tz or UTC)
        ends = datetime(last.year, last.month, last.day, tzinfo=tz or UTC) + timedelta(days=1)
        cut.append((begins, ends))
    return cut


def free(
    windows: Sequence[Mapping[str, Any]] | None,
    away: Sequence[Mapping[str, Any]] | None,
    busy: Iterable[Interval],
    start: datetime,
    end: datetime,
) -> list[Interval]:
    """The person's available time in [start, end) outside the work they hold."""
    return subtract(available(windows, away, start, end), busy)


def covers(free_time: Sequence[Interval], start: datetime, end: datetime) -> bool:
    """Whether one free interval holds all of [start, end]."""
    return any(a <= start and end <= b for a, b in free_time)


@dataclass
class Budget:
    """What is left of a person's offer: the weekly pledge and the year's hours by sector, less the hours
    counted (all their work, whatever the role) and those this run has set aside for earlier slots."""

    pledge: float  # hours a week: the hard limit in any week
    offer: Mapping[str, float]  # sector -> hours a year
    week_load: dict[datetime, float] = field(default_factory=dict)  # week start -> hours counted
    year_load: dict[int, dict[str, float]] = field(default_factory=dict)  # year -> sector -> hours

    def week_left(self, at: datetime) -> float:
        return self.pledge - self.week_load.get(week_of(at), 0.0)

    def year_left(self, at: datetime, sector: str) -> float:
        return self.offer.get(sector, 0.0) - self.year_load.get(at.year, {}).get(sector, 0.0)

    def allows(self, at: datetime, hours: float, sector: str) -> bool:
        """Whether `hours` of work in `sector` starting at `at` stay within the week and the year."""
        return hours <= self.week_left(at) + EPS_H and hours <= self.year_left(at, sector) + EPS_H

    def take(self, at: datetime, hours: float, sectors: Iterable[str]) -> None:
        """Count `hours` starting at `at` against the week and against each of `sectors` (a slot that may
        carry several sectors sets its hours aside in each, so whichever its route counts in, it fits)."""
        week = week_of(at)
        self.week_load[week] = self.week_load.get(week, 0.0) + hours
        year = self.year_load.setdefault(at.year, {})
        for sector in sectors:
            year[sector] = year.get(sector, 0.0) + hours


@dataclass(frozen=True)
class Slot:
    """Free time for one route: it starts at `start`, is back by `end`, takes at most `hours` and carries
    only goods counting in `sectors`."""

    start: datetime
    end: datetime
    hours: float
    sectors: frozenset[str]


def slots(
    free_time: Sequence[Interval],
    budget: Budget,
    sectors: Iterable[str],
    shift_h: float,
    most: int,
) -> list[Slot]:
    """Up to `most` slots in the free time, in order, each at most a shift long and within the budget.

    The budget is shared: each slot sets its hours aside (`Budget.take`) before the next is sized, so the
    routes of all slots together stay within the week and the year. A sector with less than half the
    slot's hours left of its yearly offer is left out of the slot (its goods ride with others) rather than
    shortening the route for every sector.
    """
    wanted = sorted(set(sectors))
    found: list[Slot] = []
    step = timedelta(hours=shift_h)
    for a, b in free_time:
        t = a
        while t < b and len(found) < most:
            end = min(b, t + step)
            slot = _sized(budget, wanted, t, end, shift_h)
            if slot is not None:
                budget.take(t, slot.hours, slot.sectors)
                found.append(slot)
            t = end
    return found


def _sized(
    budget: Budget, wanted: Sequence[str], start: datetime, end: datetime, shift_h: float
) -> Slot | None:
    """The slot [start, end] within the budget, or None when too little is left for a route."""
    hours = min(shift_h, (end - start).total_seconds() / 3600, budget.week_left(start))
    if hours < MIN_ROUTE_H:
        return None
    threshold = max(MIN_ROUTE_H, hours / 2)
    left = {s: budget.year_left(start, s) for s in wanted}
    allowed = frozenset(s for s, h in left.items() if h >= threshold)
    if not allowed:
        return None
    return Slot(start, end, min(hours, *(left[s] for s in allowed)), allowed)
