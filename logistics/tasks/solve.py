"""The board's matcher: who is asked for which open place. Week by week (the loads each week gives carried
into the next), a cost-aware first fit improved region by region in PuLP (HiGHS, else CBC: `week.py`);
the result re-checked against every hard rule.

Decomposing by ISO week is exact for the weekly pledge (a week's row holds only that week's places) and
conservative for the rest: the year's sector offers, the load ratios and the planned spans are carried
forward in a `Ledger`, so a later week sees what earlier ones took. The whole run keeps to a time limit:
each region's solver gets its share of what is left, and a region the clock leaves no time for keeps its
first fit, so the plan is complete (every place suggested or given a reason) whatever the time.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import date
from typing import Final

from gateway.contract.errors import InvalidInput
from logistics.common.errors import PlanningError
from logistics.common.geo import haversine_km
from logistics.tasks.candidates import Pair, candidates, suited
from logistics.tasks.data import (
    URGENCY_NAMES,
    MatchInput,
    MatchPlan,
    OpenPlace,
    Span,
    Suggestion,
    Unmatched,
    Volunteer,
    week_of,
)
from logistics.tasks.pool import Ledger, Pool
from logistics.tasks.week import Clock, Tally, plan_week

log = logging.getLogger(__name__)

TOL: Final = 1e-6
GAP: Final = 1e-3  # relative MIP gap each region stops at (of its cost: open places, load, preference, km)


def solve_match(data: MatchInput, time_limit_s: float = 10.0, gap: float = GAP) -> MatchPlan:
    """Match every open place to one suited person with room, or report why not, in about `time_limit_s`
    (past it, what is left keeps the first fit)."""
    if not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise InvalidInput(f"time limit must be a positive number of seconds, got {time_limit_s}")
    if not (math.isfinite(gap) and 0 <= gap < 1):
        raise InvalidInput(f"gap must be a number in [0, 1), got {gap}")
    started = time.perf_counter()
    clock = Clock(time_limit_s, len(data.places))
    pool = Pool(data)
    ledger = Ledger.start(pool)
    by_week: dict[date, list[OpenPlace]] = defaultdict(list)
    for p in data.places:
        by_week[p.week].append(p)
    chosen: list[Pair] = []
    tally = Tally(weeks=len(data.weeks))
    for week in data.weeks:
        began = time.perf_counter()
        batch = candidates(data, pool, by_week[week], ledger)
        took = time.perf_counter() - began
        tally.candidates_s += took
        tally.pairs += len(batch.pairs)
        clock.listed(len(by_week[week]), took)
        clock.skip(len(by_week[week]) - len({c.place.key for c in batch.pairs}))
        chosen += [batch.pairs[k] for k in plan_week(data, pool, ledger, batch, clock, gap, tally)]
    planned: dict[tuple[int, date], float] = defaultdict(float)
    for c in chosen:
        planned[(c.volunteer.id, c.place.week)] += c.place.hours
    suggestions = [_suggestion(c, planned[(c.volunteer.id, c.place.week)]) for c in chosen]
    taken = {c.place.key for c in chosen}
    unmatched = [
        Unmatched(p.shift_id, p.slot_id, why_not(data, p, pool)) for p in data.places if p.key not in taken
    ]
    stats = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(tally).items()}
    plan = MatchPlan(
        tuple(sorted(suggestions, key=lambda s: (s.shift_id, s.slot_id))),
        tuple(sorted(unmatched, key=lambda u: (u.shift_id, u.slot_id))),
        solve_s=time.perf_counter() - started,
        stats={**stats, "places": len(data.places), "suggested": len(suggestions)},
    )
    check(data, plan)
    log.debug("task board: %s", plan.stats)
    return plan


def check(data: MatchInput, plan: MatchPlan) -> None:
    """Raise PlanningError if the plan breaks any hard rule (a bug, never bad input): one person per place,
    weekly pledge, yearly sector offer, no overlap, free time, skill, distance, declines."""
    places = {p.key: p for p in data.places}
    people = {v.id: v for v in data.volunteers}
    week: dict[tuple[int, date], float] = defaultdict(float)
    sector: dict[tuple[int, str], float] = defaultdict(float)
    spans: dict[int, list[Span]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()

    def fail(rule: str, detail: str) -> None:
        raise PlanningError("check", rule, detail)

    for s in plan.suggestions:
        key = (s.shift_id, s.slot_id)
        if key in seen:
            fail("one_person", f"place {key} suggested twice")
        seen.add(key)
        p, v = places.get(key), people.get(s.member_id)
        if p is None or v is None:
            fail("unknown", f"place {key} or member {s.member_id} not in the input")
            return
        if not suited(p, v):
            fail("skill_or_declined", f"member {v.id} for place {key}")
        if not v.is_free(p.starts_at, p.ends_at):
            fail("free_time", f"member {v.id} is not free for place {key}")
        if haversine_km(p.lat, p.lon, v.lat, v.lon) > data.max_km + TOL:
            fail("distance", f"member {v.id} is over {data.max_km:g} km from place {key}")
        week[(v.id, p.week)] += p.hours
        sector[(v.id, p.sector)] += p.hours
        spans[v.id].append((p.starts_at, p.ends_at))
    for (mid, w), hours in week.items():
        if hours > people[mid].week_room(w) + TOL:
            fail("pledge", f"member {mid} over their weekly pledge in the week of {w}")
    for (mid, sec), hours in sector.items():
        if hours > people[mid].year_room(sec) + TOL:
            fail("offer", f"member {mid} over their yearly {sec} offer")
    for mid, mine in spans.items():
        mine.sort()
        for (_, end), (start, _) in itertools.pairwise(mine):
            if start < end:
                fail("overlap", f"member {mid} has two places at once")


def why_not(data: MatchInput, place: OpenPlace, pool: Pool | None = None) -> str:
    """The first rule that rules out everyone (before this plan took any room)."""
    if not data.volunteers:
        return "no volunteers"
    pool = pool or Pool(data)
    near, _ = pool.near(place)
    if near.size == 0:
        return f"nobody within {data.max_km:g} km"
    near = near[pool.can_do(place)[near]]
    if near.size == 0:
        return f"nobody within {data.max_km:g} km has the skill {place.skill}"
    skilled = int(near.size)
    near = near[[pool.volunteers[i].id not in place.excluded for i in near.tolist()]]
    if near.size == 0:
        return f"all {skilled} suited people nearby declined it"
    near = near[pool.week_room(place.week)[near] >= place.hours - TOL]
    if near.size == 0:
        return f"nobody suited nearby has {place.hours:g} h left of their weekly pledge that week"
    near = near[pool.year_room(place.sector)[near] >= place.hours - TOL]
    if near.size == 0:
        return f"nobody suited nearby has {place.hours:g} h left of their {place.sector} hours this year"
    start, end = place.starts_at.timestamp(), place.ends_at.timestamp()
    if not any(pool.is_free(i, start, end) for i in near.tolist()):
        return "nobody suited nearby is free at that time"
    return "everyone suited and free nearby is asked for other places in this plan"


def _suggestion(c: Pair, planned_h: float) -> Suggestion:
    p, v = c.place, c.volunteer
    return Suggestion(p.shift_id, p.slot_id, v.id, round(c.distance_km, 2), explain(c, planned_h), p.hours)


def explain(c: Pair, planned_h: float) -> str:
    """Why them, for the person asked: skill, distance, their week (`planned_h`: what this plan asks of
    them that week, this place included), their year in the sector."""
    p, v = c.place, c.volunteer
    if p.skill and not p.newcomer:
        parts = [f"you have the skill it needs ({p.skill})"]
    elif p.newcomer:
        parts = ["no experience needed"]
    else:
        parts = ["open to anyone"]
    parts.append(f"{c.distance_km:.1f} km from you")
    week_total = v.week_load.get(p.week, 0.0) + planned_h
    parts.append(
        f"you are free then; your week comes to {week_total:g} of the {v.hours_per_week:g} h you pledged"
    )
    given, offer = v.year_load.get(p.sector, 0.0), v.year_offer.get(p.sector, 0.0)
    sector = f"you have given {given:g} of the {offer:g} h you offered for {p.sector} this year"
    if p.sector in v.preferred_sectors:
        sector += " (a sector you prefer)"
    parts.append(sector)
    if p.urgency >= 2:
        parts.append(f"it is {URGENCY_NAMES[p.urgency]}")
    return "; ".join(parts)


def volunteers_after(data: MatchInput, plan: MatchPlan) -> Sequence[Volunteer]:
    """The volunteers with the plan's hours counted (week, sector) and its spans no longer free."""
    places = {p.key: p for p in data.places}
    mine: dict[int, list[OpenPlace]] = defaultdict(list)
    for s in plan.suggestions:
        mine[s.member_id].append(places[(s.shift_id, s.slot_id)])
    out = []
    for v in data.volunteers:
        got = mine.get(v.id)
        if not got:
            out.append(v)
            continue
        week, year = dict(v.week_load), dict(v.year_load)
        for p in got:
            week[week_of(p.starts_at)] = week.get(week_of(p.starts_at), 0.0) + p.hours
            year[p.sector] = year.get(p.sector, 0.0) + p.hours
        free = list(v.free)
        for p in got:
            free = [piece for s, e in free for piece in _cut((s, e), (p.starts_at, p.ends_at))]
        out.append(replace(v, week_load=week, year_load=year, free=tuple(free)))
    return out


def _cut(span: Span, cut: Span) -> list[Span]:
    s, e = span
    cs, ce = cut
    if ce <= s or cs >= e:
        return [span]
    return [piece for piece in ((s, cs), (ce, e)) if piece[1] > piece[0]]
