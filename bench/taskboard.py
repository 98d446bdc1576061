"""The open task board at scale: a synthetic month of members and board tasks, matched by the PuLP matcher
and, side by side, by a first-come baseline.

    .venv/bin/python bench/taskboard.py                      # 5,000 members, seed 1, 10 s for the matcher
    .venv/bin/python bench/taskboard.py --members 10000 --seed 2 --time-limit 20
    .venv/bin/python bench/taskboard.py --demand 0.8      # a tighter month: the baseline leaves places open

The baseline takes the places in start order and gives each the nearest suited person with room (free,
within their week's pledge and the sector's yearly offer, no overlap, not declined). Both plans go through
`check`, and every figure is recomputed here from the plan and the input: nothing is taken on the matcher's
word. Prints a table and, as its last line, the figures as JSON (the matcher's, its baseline's under
"baseline"). Goals: slots_filled_share >= 0.95, members_over_pledge == 0, load_gini <= 0.3, replan_s < 10.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` is not installed: the repo root

from bench.synthetic.taskboard import synthetic_month
from logistics.common.geo import distance_matrix_km
from logistics.tasks import MatchInput, MatchPlan, Suggestion, Unmatched, check, gini, solve_match
from logistics.tasks.data import Span

TOL = 1e-6


def first_come(data: MatchInput) -> MatchPlan:
    """The baseline: places in start order, each to the nearest suited person with room."""
    started = time.perf_counter()
    vols = data.volunteers
    lat, lon = np.array([v.lat for v in vols]), np.array([v.lon for v in vols])
    week: dict[tuple[int, object], float] = defaultdict(float)
    sector: dict[tuple[int, str], float] = defaultdict(float)
    planned: dict[int, list[Span]] = defaultdict(list)
    nearest: dict[tuple[float, float], tuple[list[int], list[float]]] = {}
    suggestions, unmatched = [], []
    for p in sorted(data.places, key=lambda p: (p.starts_at, p.shift_id, p.slot_id)):
        if (p.lat, p.lon) not in nearest:
            km = distance_matrix_km([p.lat], [p.lon], lat, lon)[0]
            order = np.argsort(km, kind="stable")
            order = order[km[order] <= data.max_km]
            nearest[(p.lat, p.lon)] = (order.tolist(), km[order].tolist())
        for i, d in zip(*nearest[(p.lat, p.lon)], strict=True):
            v = vols[i]
            if v.id in p.excluded or not (p.skill is None or p.newcomer or p.skill in v.skills):
                continue
            if v.week_room(p.week) - week[(i, p.week)] < p.hours - TOL:
                continue
            if v.year_room(p.sector) - sector[(i, p.sector)] < p.hours - TOL:
                continue
            if not v.is_free(p.starts_at, p.ends_at):
                continue
            if any(s < p.ends_at and p.starts_at < e for s, e in planned[i]):
                continue
            week[(i, p.week)] += p.hours
            sector[(i, p.sector)] += p.hours
            bisect.insort(planned[i], (p.starts_at, p.ends_at))
            suggestions.append(
                Suggestion(p.shift_id, p.slot_id, v.id, round(d, 2), "nearest with room", p.hours)
            )
            break
        else:
            unmatched.append(Unmatched(p.shift_id, p.slot_id, "nobody suited with room"))
    return MatchPlan(tuple(suggestions), tuple(unmatched), solve_s=time.perf_counter() - started)


def figures(data: MatchInput, plan: MatchPlan) -> dict[str, object]:
    """The plan's figures, from the plan and the input alone."""
    places = {p.key: p for p in data.places}
    people = {v.id: v for v in data.volunteers}
    week: dict[tuple[int, object], float] = defaultdict(float)
    sector: dict[tuple[int, str], float] = defaultdict(float)
    hours: dict[int, float] = defaultdict(float)
    preferred = with_preference = 0
    for s in plan.suggestions:
        p, v = places[(s.shift_id, s.slot_id)], people[s.member_id]
        week[(v.id, p.week)] += p.hours
        sector[(v.id, p.sector)] += p.hours
        hours[v.id] += p.hours
        if v.preferred_sectors:
            with_preference += 1
            preferred += p.sector in v.preferred_sectors
    over = {mid for (mid, w), h in week.items() if h > people[mid].week_room(w) + TOL}  # type: ignore[arg-type]
    over |= {mid for (mid, sec), h in sector.items() if h > people[mid].year_room(sec) + TOL}
    ratios = [
        (data.period_load(v) + hours[v.id]) / data.period_offer(v)
        for v in data.volunteers
        if data.period_offer(v) > 0
    ]
    return {
        "slots_filled_share": round(len(plan.suggestions) / max(1, len(data.places)), 4),
        "members_over_pledge": len(over),
        "load_gini": round(gini(ratios), 4),
        "max_load_ratio": round(max(ratios, default=0.0), 3),
        "preferred_sector_share": round(preferred / max(1, with_preference), 4),
        "members_asked": len(hours),
        "mean_km": round(sum(s.distance_km for s in plan.suggestions) / max(1, len(plan.suggestions)), 2),
        "replan_s": round(plan.solve_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--demand", type=float, default=0.5, help="hours asked / hours offered this month")
    parser.add_argument("--time-limit", type=float, default=9.0, help="the matcher's whole run, seconds")
    args = parser.parse_args()
    month = synthetic_month(members=args.members, demand=args.demand, seed=args.seed)
    data = month.data
    by_sector = Counter(p.sector for p in data.places)
    print(
        f"{len(data.volunteers)} members, {len(data.places)} open places ({month.slots} slots of "
        f"{month.tasks} tasks) over {len(data.weeks)} weeks; asked {month.asked_h:,.0f} h of "
        f"{month.offered_h:,.0f} h offered this month ({month.asked_h / month.offered_h:.2f}); "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    cpu = time.process_time()
    matched = solve_match(data, time_limit_s=args.time_limit)
    cpu = time.process_time() - cpu
    check(data, matched)
    baseline = first_come(data)
    check(data, baseline)
    ours, theirs = figures(data, matched), figures(data, baseline)
    header = ("plan", "filled", "over", "gini", "max_ratio", "preferred", "asked", "mean_km", "replan_s")
    widths = (9, 7, 5, 6, 9, 9, 6, 7, 8)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for name, f in (("matcher", ours), ("baseline", theirs)):
        row = (
            name,
            f"{f['slots_filled_share']:.3f}",
            f["members_over_pledge"],
            f"{f['load_gini']:.3f}",
            f"{f['max_load_ratio']:.2f}",
            f"{f['preferred_sector_share']:.3f}",
            f["members_asked"],
            f"{f['mean_km']:.1f}",
            f"{f['replan_s']:.2f}",
        )
        print(" ".join(f"{v:>{w}}" for v, w in zip(row, widths, strict=True)))
    st = dict(matched.stats)
    print(
        f"matcher: {st['pairs']} pairs, {st['solver']}; {st['regions']} regions, {st['proven_regions']} "
        f"solved to the gap, {st['kept_regions']} kept their first fit; objective {st['cost']} (first fit "
        f"{st['first_fit_cost']}); candidates {st['candidates_s']} s, build {st['build_s']} s, solver "
        f"{st['solver_s']} s"
    )
    reasons = Counter(u.reason for u in matched.unmatched).most_common(3)
    if reasons:
        print("unmatched: " + "; ".join(f"{n} x {r}" for r, n in reasons))
    result = {
        "members": len(data.volunteers),
        "slots": len(data.places),
        "sectors": len(by_sector),
        "places_by_sector": dict(sorted(by_sector.items())),
        "demand_share": round(month.asked_h / month.offered_h, 3),
        "seed": args.seed,
        "time_limit_s": args.time_limit,
        **ours,
        "replan_cpu_s": round(cpu, 2),
        "load_average": round(os.getloadavg()[0], 2),
        "objective": st["cost"],
        "first_fit_objective": st["first_fit_cost"],
        "baseline": theirs,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
