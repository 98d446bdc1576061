"""Repair assignment: who fixes what. Tasks x crew in PuLP, most urgent first, work rotated fairly.

A member qualifies for a task when they hold every required skill, have a free slot (concurrency cap),
are available within the horizon and have not declined it. The model is solved in lexicographic stages:

1. For each urgency level, highest first: maximise the number of tasks of that level assigned, keeping the
   counts of the levels above (`keep_{level}`). So a critical task goes to a qualified free member before
   any lesser task can take them.
2. With all counts fixed: minimise travel hours + fairness_weight x (recent hours in the task's sector /
   the community's baseline for it) + wait_weight x hours until the member's availability.

Tasks first look within their own community. Tasks left over are escalated: their scope widens to the
nearest neighbouring communities and the model runs again with the capacity left; with `region_fallback`
(the store's loader turns it on) tasks still left go to anyone qualified in the region, travel and fairness
deciding who. A task nobody can take is reported with the reason. Every stage must end proven optimal
(else PlanningError).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import numpy as np
import pulp

from gateway.contract.errors import InvalidInput
from logistics.common.geo import distance_matrix_km
from logistics.common.solver import make_cbc, solve_optimal
from logistics.repairs.data import Assignment, RepairInput, RepairJob, RepairPlan, Unassignable
from logistics.repairs.model import Candidate, build_repair_model, candidates

log = logging.getLogger(__name__)


def _assign(
    pairs: list[Candidate], slots: dict[int, int], time_limit_s: float, started: float
) -> tuple[list[Candidate], float]:
    """Solve the lexicographic stages over these pairs; the chosen pairs and the final cost."""
    if not pairs:
        return [], 0.0
    uncontested = _each_its_cheapest(pairs, slots)
    if uncontested is not None:
        return uncontested, sum(c.cost for c in uncontested)
    problem, v = build_repair_model(pairs, slots)
    for level in sorted(v.counts, reverse=True):
        problem.sense = pulp.LpMaximize
        problem.setObjective(v.counts[level])
        remaining = max(1.0, time_limit_s - (time.perf_counter() - started))
        best = solve_optimal(problem, make_cbc(remaining), f"urgency {level}")
        # A count is a sum of binaries: keep it with an integer right-hand side. CBC 2.10's preprocessing
        # called `y1 + y2 >= 0.999999` (with the slots rows) infeasible on a feasible model, which failed
        # whole assignment runs in the region week.
        floor = round(best)
        problem.addConstraint(
            pulp.LpConstraint(v.counts[level], pulp.LpConstraintGE, rhs=floor), f"keep_{level}"
        )
    problem.sense = pulp.LpMinimize
    problem.setObjective(v.cost)
    remaining = max(1.0, time_limit_s - (time.perf_counter() - started))
    objective = solve_optimal(problem, make_cbc(remaining), "fairness and travel")
    return [c for var, c in zip(v.chosen, v.pairs, strict=True) if (var.value() or 0.0) > 0.5], objective


def _each_its_cheapest(pairs: list[Candidate], slots: dict[int, int]) -> list[Candidate] | None:
    """Every task with its cheapest candidate, if that overfills nobody's slots; else None.

    Then the staged model's optimum is known without a solver: every task that can be assigned is (each
    urgency count at its maximum), and no assignment of them all costs less than the sum of each task's own
    cheapest pair. A new fault with free crew around is this case; it skips the solver processes (several
    per run, seconds on a busy machine) between the fault and the alert."""
    cheapest: dict[int, Candidate] = {}
    for c in pairs:
        best = cheapest.get(c.task.id)
        if best is None or (c.cost, c.member.id) < (best.cost, best.member.id):
            cheapest[c.task.id] = c
    load: dict[int, int] = defaultdict(int)
    for c in cheapest.values():
        load[c.member.id] += 1
    if any(n > slots[member_id] for member_id, n in load.items()):
        return None
    return [cheapest[task_id] for task_id in sorted(cheapest)]


def solve_repairs(data: RepairInput, time_limit_s: float = 30.0) -> RepairPlan:
    """Assign open tasks: own community first, then escalated to neighbours (then, with `region_fallback`,
    to anyone qualified in the region); the plan or PlanningError."""
    if not time_limit_s > 0:
        raise InvalidInput(f"time limit must be a positive number of seconds, got {time_limit_s}")
    started = time.perf_counter()
    slots = {m.id: m.free_slots for m in data.crew}
    local = {t.id: {t.community_id} for t in data.tasks}
    first, cost_local = _assign(candidates(data, data.tasks, local), slots, time_limit_s, started)
    for c in first:
        slots[c.member.id] -= 1
    done = {c.task.id for c in first}
    left = [t for t in data.tasks if t.id not in done]
    widened = {t.id: _neighbours(data, t.community_id) for t in left}
    wide_scope = {t.id: {t.community_id, *widened[t.id]} for t in left}
    second, cost_wide = _assign(candidates(data, left, wide_scope), slots, time_limit_s, started)
    for c in second:
        slots[c.member.id] -= 1
    assigned = {c.task.id for c in second}
    third: list[Candidate] = []
    cost_region = 0.0
    if data.region_fallback:  # a critical pump should not wait for a coordinator when a mechanic exists
        rest = [t for t in left if t.id not in assigned]
        everywhere = set(data.communities)
        wide_scope.update({t.id: everywhere for t in rest})
        third, cost_region = _assign(candidates(data, rest, wide_scope), slots, time_limit_s, started)
        assigned |= {c.task.id for c in third}
    assignments = [_assignment(data, c, escalated=False) for c in first]
    assignments += [_assignment(data, c, escalated=True) for c in second]
    assignments += [_assignment(data, c, escalated=True, far=True) for c in third]
    unassigned = [
        Unassignable(t.id, _why_not(data, t, wide_scope[t.id]), tuple(widened[t.id]))
        for t in left
        if t.id not in assigned
    ]
    plan = RepairPlan(
        assignments=tuple(sorted(assignments, key=lambda a: a.task_id)),
        unassigned=tuple(sorted(unassigned, key=lambda u: u.task_id)),
        status="Optimal" if data.tasks else "NoTasks",
        objective=round(cost_local + cost_wide + cost_region, 9),
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
    """The first rule that rules out everyone in the widened scope."""
    around = [m for m in data.crew if m.community_id in scope]
    skilled = [m for m in around if task.required_skills <= m.skills]
    needs = ", ".join(sorted(task.required_skills)) or "no particular skill"
    region = data.region_fallback and scope >= set(data.communities)
    if not around:
        return (
            "no crew member in the region" if region else "no crew member in the community or its neighbours"
        )
    if not skilled:
        return f"nobody {'in the region' if region else 'nearby'} has every skill needed ({needs})"
    willing = [m for m in skilled if m.id not in task.declined_by]
    if not willing:
        return f"all {len(skilled)} qualified members nearby declined it"
    if all(m.available_in_h is None for m in willing):
        return "no qualified member is available soon"
    return "every qualified member nearby is busy with other tasks (concurrency cap)"


def _assignment(data: RepairInput, c: Candidate, escalated: bool, far: bool = False) -> Assignment:
    return Assignment(
        c.task.id, c.member.id, _explain(data, c, escalated, far), round(c.distance_km, 3), escalated
    )


def _explain(data: RepairInput, c: Candidate, escalated: bool, far: bool = False) -> str:
    """One line for the dashboard: skills, distance, recent hours against the community baseline."""
    task, m = c.task, c.member
    skills = ", ".join(sorted(task.required_skills)) or "no special skill needed"
    minutes = c.distance_km / data.speed_kmh * 60
    hours = m.recent_hours.get(task.sector, 0.0)
    baseline = data.baseline(m.community_id, task.sector)
    parts = [
        f"{m.name}: has {skills}",
        f"{c.distance_km:.1f} km away (~{minutes:.0f} min)",
        f"{hours:g} h in {task.sector} lately (baseline {baseline:g} h/yr)",
    ]
    if m.available_in_h:
        parts.append(f"available in {m.available_in_h:.1f} h")
    if far:
        parts.append("from elsewhere in the region (no one qualified and free nearby)")
    elif escalated:
        parts.append("from a neighbouring community (no one free locally)")
    return "; ".join(parts)
