"""Repair assignment: who fixes what. Tasks x crew x free windows in PuLP, most urgent first, load spread
fairly, work rotated.

A member qualifies for a task when they hold every required skill, have not declined it in the last 7 days,
have room for its hours in this week's pledge and in the year's offer for its sector, and have a free
window (availability minus existing commitments, within the horizon) long enough for it. Hard rows keep
every plan within the pledge, the offer and the windows (see `model.py`). The model is solved in
lexicographic stages:

1. For each urgency level, highest first: maximise the number of tasks of that level assigned, keeping the
   counts of the levels above (`keep_{level}`). So a critical task goes to a qualified free member before
   any lesser task can take them.
2. With the counts fixed: minimise L, the largest load ratio (week load + planned) / weekly pledge over the
   members who could take some task; then fix L <= L* + EPS (`fair_{g}`). This is done per group of
   tasks and members that share candidates (`model.groups`): one town's forced overload does not let
   every other town's load drift up to it.
3. Minimise travel hours + rotation (fairness_weight x hours given this year in the task's sector / the
   member's offer there, x preferred_weight in a sector they prefer) + wait_weight x hours until the window.

Chosen tasks are scheduled back to back from the start of their window (the `window_` rows make them fit),
so no two assignments of a person overlap, nor overlap what they had already committed to.

Tasks first look within their own community. Tasks left over are escalated: their scope widens to the
nearest neighbouring communities and the model runs again with the room left; with `region_fallback`
(the store's loader turns it on) tasks still left go to anyone qualified in the region. A task nobody can
take is reported with the reason. Every stage must end proven optimal (else PlanningError).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pulp

from gateway.contract.errors import InvalidInput
from logistics.common.geo import distance_matrix_km
from logistics.common.solver import make_cbc, solve_optimal
from logistics.repairs.data import (
    Assignment,
    CrewMember,
    Interval,
    RepairInput,
    RepairJob,
    RepairPlan,
    Unassignable,
    gini,
)
from logistics.repairs.model import Candidate, build_repair_model, candidates, groups, qualifies

log = logging.getLogger(__name__)

EPS = 1e-6  # slack on the optimal load bound L* in the cost stage (solver tolerances are ~1e-7 to 1e-9)
TOL = 1e-9  # float noise allowed when checking a ratio against a bound

Scheduled = tuple[Candidate, float, float]  # the pair and its (start, end) in hours from now


def _assign(
    data: RepairInput, pairs: list[Candidate], time_limit_s: float, started: float
) -> tuple[list[Candidate], float]:
    """Solve the lexicographic stages over these pairs; the chosen pairs and the final cost."""
    if not pairs:
        return [], 0.0
    free = {m.id: m.free_intervals(data.horizon_h) for m in data.crew}
    uncontested = _each_its_cheapest(pairs, free)
    if uncontested is not None:
        return uncontested, sum(c.cost for c in uncontested)
    problem, v = build_repair_model(pairs, free)

    def solve(objective: pulp.LpAffineExpression | pulp.LpVariable, sense: int, stage: str) -> float:
        problem.sense = sense
        problem.setObjective(objective)
        remaining = max(1.0, time_limit_s - (time.perf_counter() - started))
        return solve_optimal(problem, make_cbc(remaining), stage)

    for level in sorted(v.counts, reverse=True):
        best = solve(v.counts[level], pulp.LpMaximize, f"urgency {level}")
        # A count is a sum of binaries: keep it with an integer right-hand side. CBC 2.10's preprocessing
        # called `y1 + y2 >= 0.999999` (with the slots rows) infeasible on a feasible model, which failed
        # whole assignment runs in the region week.
        problem.addConstraint(
            pulp.LpConstraint(v.counts[level], pulp.LpConstraintGE, rhs=round(best)), f"keep_{level}"
        )
    solve(pulp.lpSum(v.load.values()), pulp.LpMinimize, "fair load")
    # L* from the chosen tasks themselves, so the bound the cost stage keeps is met by this very solution.
    chosen = _chosen(v.chosen, v.pairs)
    for g, members in _by_group(pairs, v.group).items():
        bound = max_ratio(chosen, members)
        problem.addConstraint(pulp.LpConstraint(v.load[g], pulp.LpConstraintLE, rhs=bound + EPS), f"fair_{g}")
    objective = solve(v.cost, pulp.LpMinimize, "rotation and travel")
    return _chosen(v.chosen, v.pairs), objective


def _chosen(chosen: Sequence[pulp.LpVariable], pairs: Sequence[Candidate]) -> list[Candidate]:
    return [c for var, c in zip(chosen, pairs, strict=True) if (var.value() or 0.0) > 0.5]


def _members(pairs: Iterable[Candidate]) -> dict[int, CrewMember]:
    return {c.member.id: c.member for c in pairs}


def _by_group(pairs: Iterable[Candidate], group: Mapping[int, int]) -> dict[int, dict[int, CrewMember]]:
    """Group -> its members by id."""
    members: dict[int, dict[int, CrewMember]] = defaultdict(dict)
    for c in pairs:
        members[group[c.member.id]][c.member.id] = c.member
    return dict(members)


def max_ratio(chosen: Iterable[Candidate], members: Mapping[int, CrewMember]) -> float:
    """The largest (week load + planned) / pledge over `members` with `chosen` planned."""
    planned: dict[int, float] = defaultdict(float)
    for c in chosen:
        planned[c.member.id] += c.task.hours
    return max((m.load_ratio(planned[m.id]) for m in members.values()), default=0.0)


def load_lower_bound(pairs: Sequence[Candidate]) -> float:
    """A lower bound on L for any plan that assigns every task with a candidate: no candidate member's
    ratio drops below their current one, and each task raises its taker's to at least its own least
    `alone_ratio`."""
    members = _members(pairs)
    least: dict[int, float] = {}
    for c in pairs:
        least[c.task.id] = min(least.get(c.task.id, c.alone_ratio), c.alone_ratio)
    return max(max(m.load_ratio() for m in members.values()), max(least.values()))


def _each_its_cheapest(
    pairs: list[Candidate], free: Mapping[int, tuple[Interval, ...]]
) -> list[Candidate] | None:
    """Every task with its cheapest candidate among those that keep its group's L at its lower bound, if
    that plan is feasible and keeps every L there; else None.

    Then the staged model's optimum is known without a solver. Groups are independent (`model.py`), so
    it is enough that each group's part is its optimum; in a group, let B = `load_lower_bound` of its
    pairs. The plan assigns every task that has a candidate, so every urgency count is at its maximum and
    B bounds L* from below; its own ratio r <= B + TOL gives L* <= r, so L* is within TOL of B. The cost
    stage allows only plans with L <= L* + EPS, where every chosen pair has `alone_ratio` <= B + TOL +
    EPS: the least cost of each task over those pairs, summed, bounds its objective from below, and this
    plan (with r <= L* + EPS, as TOL < EPS) attains it. A new fault with free crew around is this case:
    it skips the solver processes (several per run, seconds on a busy machine) before the alert."""
    group = groups(pairs)
    in_group: dict[int, list[Candidate]] = defaultdict(list)
    for c in pairs:
        in_group[group[c.member.id]].append(c)
    picks = []
    for part in in_group.values():
        bound = load_lower_bound(part)
        by_task: dict[int, list[Candidate]] = defaultdict(list)
        for c in part:
            if c.alone_ratio <= bound + TOL + EPS:
                by_task[c.task.id].append(c)
        mine = [min(by_task[t], key=lambda c: (c.cost, c.member.id, c.window)) for t in sorted(by_task)]
        if max_ratio(mine, _members(part)) > bound + TOL:
            return None
        picks += mine
    # Every task keeps a pair (its least `alone_ratio` is at most B), so only the rows are left to check.
    if not fits(picks, free):
        return None
    return sorted(picks, key=lambda c: c.task.id)


def fits(chosen: Sequence[Candidate], free: Mapping[int, tuple[Interval, ...]]) -> bool:
    """Whether `chosen` meets every row of the model: one member per task, the pledge, the offer per
    sector and each window's length."""
    if len({c.task.id for c in chosen}) != len(chosen):
        return False
    week: dict[int, float] = defaultdict(float)
    year: dict[tuple[int, str], float] = defaultdict(float)
    window: dict[tuple[int, int], float] = defaultdict(float)
    members = _members(chosen)
    for c in chosen:
        week[c.member.id] += c.task.hours
        year[(c.member.id, c.task.sector)] += c.task.hours
        window[(c.member.id, c.window)] += c.task.hours
    return (
        all(h <= members[m].week_room_h + TOL for m, h in week.items())
        and all(h <= members[m].year_room_h(s) + TOL for (m, s), h in year.items())
        and all(h <= free[m][k][1] - free[m][k][0] + TOL for (m, k), h in window.items())
    )


def schedule(chosen: Iterable[Candidate]) -> list[Scheduled]:
    """Each member's tasks back to back from the start of their window, most urgent first."""
    by_window: dict[tuple[int, int], list[Candidate]] = defaultdict(list)
    for c in chosen:
        by_window[(c.member.id, c.window)].append(c)
    timed = []
    for group in by_window.values():
        at = group[0].start_h
        for c in sorted(group, key=lambda c: (-c.task.urgency, c.task.id)):
            timed.append((c, at, at + c.task.hours))
            at += c.task.hours
    return timed


def _after(data: RepairInput, timed: Sequence[Scheduled]) -> RepairInput:
    """The input with the room this pass used taken: week and year loads up, the planned time busy."""
    used: dict[int, list[Scheduled]] = defaultdict(list)
    for item in timed:
        used[item[0].member.id].append(item)
    crew = []
    for m in data.crew:
        mine = used.get(m.id, [])
        if not mine:
            crew.append(m)
            continue
        year = dict(m.year_load_h)
        for c, _, _ in mine:
            year[c.task.sector] = year.get(c.task.sector, 0.0) + c.task.hours
        crew.append(
            replace(
                m,
                week_load_h=m.week_load_h + sum(c.task.hours for c, _, _ in mine),
                year_load_h=year,
                busy=(*m.busy, *((s, e) for _, s, e in mine)),
            )
        )
    return replace(data, crew=tuple(crew))


def solve_repairs(data: RepairInput, time_limit_s: float = 30.0) -> RepairPlan:
    """Assign open tasks: own community first, then escalated to neighbours (then, with `region_fallback`,
    to anyone qualified in the region); the plan or PlanningError."""
    if not time_limit_s > 0:
        raise InvalidInput(f"time limit must be a positive number of seconds, got {time_limit_s}")
    started = time.perf_counter()
    state = data
    considered: set[int] = set()
    timed: list[tuple[Scheduled, int]] = []  # with the pass: 0 local, 1 neighbours, 2 region
    cost = 0.0

    def run(tasks: Sequence[RepairJob], scope: dict[int, set[int]], stage: int) -> set[int]:
        nonlocal state, cost
        pairs = candidates(state, tasks, scope)
        considered.update(c.member.id for c in pairs)
        chosen, objective = _assign(state, pairs, time_limit_s, started)
        done = schedule(chosen)
        timed.extend((item, stage) for item in done)
        state = _after(state, done)
        cost += objective
        return {c.task.id for c in chosen}

    done = run(data.tasks, {t.id: {t.community_id} for t in data.tasks}, 0)
    left = [t for t in data.tasks if t.id not in done]
    widened = {t.id: _neighbours(data, t.community_id) for t in left}
    wide_scope = {t.id: {t.community_id, *widened[t.id]} for t in left}
    assigned = run(left, wide_scope, 1)
    if data.region_fallback:  # a critical pump should not wait for a coordinator when a mechanic exists
        rest = [t for t in left if t.id not in assigned]
        wide_scope.update({t.id: set(data.communities) for t in rest})
        assigned |= run(rest, wide_scope, 2)
    final = {m.id: m for m in state.crew}
    assignments = [_assignment(data, final, item, stage) for item, stage in timed]
    unassigned = [
        Unassignable(t.id, _why_not(data, t, wide_scope[t.id]), tuple(widened[t.id]))
        for t in left
        if t.id not in assigned
    ]
    ratios = [final[m].load_ratio() for m in sorted(considered)]
    plan = RepairPlan(
        assignments=tuple(sorted(assignments, key=lambda a: a.task_id)),
        unassigned=tuple(sorted(unassigned, key=lambda u: u.task_id)),
        status="Optimal" if data.tasks else "NoTasks",
        objective=round(cost, 9),
        max_load_ratio=max(ratios, default=0.0),
        load_gini=gini(ratios),
        now=data.now,
        solve_time_s=time.perf_counter() - started,
    )
    log.debug("repairs: %s", plan.summary())
    return plan


def _neighbours(data: RepairInput, community_id: int) -> list[int]:
    """The task community's nearest other communities, nearest first."""
    others = [c for c in data.communities if c != community_id]
    if not others or data.escalation_neighbours == 0:
        return []
    here = data.communities[community_id]
    lats = [data.communities[c][0] for c in others]
    lons = [data.communities[c][1] for c in others]
    km = distance_matrix_km([here[0]], [here[1]], lats, lons)[0]
    order = np.argsort(km, kind="stable")[: data.escalation_neighbours]
    return [others[i] for i in order]


def _why_not(data: RepairInput, task: RepairJob, scope: set[int]) -> str:
    """The first rule that rules out everyone in the widened scope (before this plan took any room)."""
    around = [m for m in data.crew if m.community_id in scope]
    skilled = [m for m in around if task.required_skills <= m.skills]
    needs = ", ".join(sorted(task.required_skills)) or "no particular skill"
    region = data.region_fallback and scope >= set(data.communities)
    where = "in the region" if region else "nearby"
    if not around:
        return (
            "no crew member in the region" if region else "no crew member in the community or its neighbours"
        )
    if not skilled:
        return f"nobody {where} has every skill needed ({needs})"
    willing = [m for m in skilled if m.id not in task.declined_by]
    if not willing:
        return f"all {len(skilled)} qualified members {where} declined it"
    pledged = [m for m in willing if m.week_room_h >= task.hours]
    if not pledged:
        return f"no qualified member {where} has {task.hours:g} h left of their weekly pledge"
    offered = [m for m in pledged if qualifies(task, m)]
    if not offered:
        return f"no qualified member {where} has {task.hours:g} h left of their {task.sector} hours this year"
    free = [m.free_intervals(data.horizon_h) for m in offered]
    if not any(free):
        return "no qualified member is available soon"
    if not any(e - s >= task.hours for windows in free for s, e in windows):
        return (
            f"no qualified member has {task.hours:g} h free in one stretch in the next {data.horizon_h:g} h"
        )
    return "every qualified member nearby is busy with other tasks in this plan"


def _assignment(
    data: RepairInput, final: Mapping[int, CrewMember], item: Scheduled, stage: int
) -> Assignment:
    c, start, end = item
    return Assignment(
        c.task.id,
        c.member.id,
        _explain(data, final[c.member.id], item, stage),
        round(c.distance_km, 3),
        escalated=stage > 0,
        hours=c.task.hours,
        starts_at_h=start,
        ends_at_h=end,
    )


def _explain(data: RepairInput, after: CrewMember, item: Scheduled, stage: int) -> str:
    """One line for the dashboard: skills, distance, the person's week and their year in the sector."""
    c, start, _ = item
    task = c.task
    before = next(m for m in data.crew if m.id == c.member.id)
    skills = ", ".join(sorted(task.required_skills)) or "no special skill needed"
    minutes = c.distance_km / data.speed_kmh * 60
    given = before.year_load_h.get(task.sector, 0.0)
    offer = before.year_offer_h.get(task.sector, 0.0)
    parts = [
        f"{before.name}: has {skills}",
        f"{c.distance_km:.1f} km away (~{minutes:.0f} min)",
        f"{after.week_load_h:.1f} of {after.week_pledge_h:g} h this week",
        f"{given:g} of {offer:g} h in {task.sector} this year"
        + (" (a preferred sector)" if task.sector in before.preferred_sectors else ""),
    ]
    if start > 0:
        when = f"{data.now + timedelta(hours=start):%a %H:%M} UTC" if data.now else f"in {start:.1f} h"
        parts.append(f"from {when}")
    if stage == 2:
        parts.append("from elsewhere in the region (no one qualified and free nearby)")
    elif stage == 1:
        parts.append("from a neighbouring community (no one free locally)")
    return "; ".join(parts)
