"""The repair assignment model: every qualified (task, member) pair with its cost, and the binary program
over them (`task_{id}`: at most one member; `slots_{member}`: at most their free slots). `solve.py` runs
its lexicographic stages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pulp

from logistics.common.geo import haversine_km
from logistics.repairs.data import CrewMember, RepairInput, RepairJob


@dataclass(frozen=True)
class Candidate:
    """One (task, member) pair the model may choose, with its cost and the figures behind it."""

    task: RepairJob
    member: CrewMember
    distance_km: float
    cost: float


@dataclass(frozen=True)
class RepairVars:
    """The model's variables, its per-level count expressions and the cost objective."""

    pairs: tuple[Candidate, ...]
    chosen: tuple[pulp.LpVariable, ...]
    counts: dict[int, pulp.LpAffineExpression]  # urgency level -> tasks of that level assigned
    cost: pulp.LpAffineExpression


def candidates(data: RepairInput, tasks: Sequence[RepairJob], scope: dict[int, set[int]]) -> list[Candidate]:
    """Every qualified pair: skills covered, a free slot, available soon, not declined, in scope."""
    pairs = []
    for task in tasks:
        allowed = scope[task.id]
        for m in data.crew:
            if (
                m.community_id not in allowed
                or m.free_slots < 1
                or m.available_in_h is None
                or m.id in task.declined_by
                or not task.required_skills <= m.skills
            ):
                continue
            km = haversine_km(task.lat, task.lon, m.lat, m.lon) * data.detour_factor
            share = m.recent_hours.get(task.sector, 0.0) / data.baseline(m.community_id, task.sector)
            cost = km / data.speed_kmh + data.fairness_weight * share + data.wait_weight * m.available_in_h
            pairs.append(Candidate(task, m, km, cost))
    return pairs


def build_repair_model(
    pairs: Sequence[Candidate], slots: dict[int, int]
) -> tuple[pulp.LpProblem, RepairVars]:
    """Binary choice per pair; `task_{id}`: at most one member; `slots_{member}`: at most their free slots."""
    problem = pulp.LpProblem("repairs", pulp.LpMaximize)
    chosen = tuple(
        problem.add_variable(f"y_{c.task.id}_{c.member.id}", lowBound=0, upBound=1, cat=pulp.LpBinary)
        for c in pairs
    )
    by_task: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_member: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_level: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    for var, c in zip(chosen, pairs, strict=True):
        by_task[c.task.id].append((var, 1.0))
        by_member[c.member.id].append((var, 1.0))
        by_level[c.task.urgency].append((var, 1.0))
    for task_id, terms in sorted(by_task.items()):
        expr = pulp.LpAffineExpression(terms)
        problem.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, rhs=1), f"task_{task_id}")
    for member_id, terms in sorted(by_member.items()):
        expr = pulp.LpAffineExpression(terms)
        cap = slots[member_id]
        problem.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, rhs=cap), f"slots_{member_id}")
    counts = {level: pulp.LpAffineExpression(terms) for level, terms in by_level.items()}
    cost = pulp.LpAffineExpression([(var, c.cost) for var, c in zip(chosen, pairs, strict=True)])
    return problem, RepairVars(tuple(pairs), chosen, counts, cost)
