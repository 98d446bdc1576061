"""The repair assignment model: every qualified (task, member, free window) triple with its cost, and the
binary program over them. `solve.py` runs its lexicographic stages.

Rows (all named): `task_{id}` at most one member and window; `pledge_{member}` the week's load plus the
hours planned stay within the weekly pledge; `offer_{member}_{sector}` the same for the year's offer in a
sector; `window_{member}_{k}` the hours planned into a free window fit in it (they are then scheduled
back to back inside it, so a person's work never overlaps); `load_{member}` ties the continuous `L_{g}`
of the member's group to their load ratio, (week load + planned) / pledge <= L_{g}.

A group is a connected component of the candidate graph (tasks and members, joined by a candidate pair).
Only the urgency counts (`keep_{level}` in solve.py) sum over groups, and with every count at its
lexicographic maximum each group must be at its own (a group short at some level could not be made up by
another). So with the counts kept the groups are independent: minimising the sum of the L_{g} minimises
every one of them, hence also the largest over all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pulp

from logistics.common.geo import haversine_km
from logistics.repairs.data import CrewMember, Interval, RepairInput, RepairJob


@dataclass(frozen=True)
class Candidate:
    """One (task, member, window) triple the model may choose, with its cost and the figures behind it."""

    task: RepairJob
    member: CrewMember
    window: int  # index into the member's free intervals of this pass
    start_h: float  # when that window opens (hours from now)
    distance_km: float
    cost: float

    @property
    def alone_ratio(self) -> float:
        """The member's load ratio if this were the only task they got."""
        return self.member.load_ratio(self.task.hours)


@dataclass(frozen=True)
class RepairVars:
    """The model's variables, its per-level count expressions, the load bound and the cost objective."""

    pairs: tuple[Candidate, ...]
    chosen: tuple[pulp.LpVariable, ...]
    counts: dict[int, pulp.LpAffineExpression]  # urgency level -> tasks of that level assigned
    load: dict[int, pulp.LpVariable]  # group -> L_{g}: at least each of its members' load ratio
    group: dict[int, int]  # member id -> group
    cost: pulp.LpAffineExpression


def groups(pairs: Sequence[Candidate]) -> dict[int, int]:
    """Member id -> the connected component of the candidate graph it is in (numbered from 0)."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def root(node: tuple[str, int]) -> tuple[str, int]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for c in pairs:
        parent[root(("t", c.task.id))] = root(("m", c.member.id))
    numbers: dict[tuple[str, int], int] = {}
    return {
        c.member.id: numbers.setdefault(root(("m", c.member.id)), len(numbers))
        for c in sorted(pairs, key=lambda c: c.member.id)
    }


def qualifies(task: RepairJob, m: CrewMember) -> bool:
    """Skills covered, no active decline, and room for the task's hours in the week and the year's offer.

    These mirror the `pledge_` and `offer_` rows (a pair failing them could never be chosen), so filtering
    changes no optimum; it keeps members without room out of the load bound.
    """
    return (
        m.id not in task.declined_by
        and task.required_skills <= m.skills
        and m.week_room_h >= task.hours
        and m.year_room_h(task.sector) >= task.hours
    )


def candidates(data: RepairInput, tasks: Sequence[RepairJob], scope: dict[int, set[int]]) -> list[Candidate]:
    """Every qualified triple in scope: one per free window long enough for the task."""
    pairs = []
    free = {m.id: m.free_intervals(data.horizon_h) for m in data.crew}
    for task in tasks:
        allowed = scope[task.id]
        for m in data.crew:
            if m.community_id not in allowed or not qualifies(task, m):
                continue
            km = haversine_km(task.lat, task.lon, m.lat, m.lon) * data.detour_factor
            rotation = data.fairness_weight * m.rotation(task.sector)
            if task.sector in m.preferred_sectors:
                rotation *= data.preferred_weight
            for k, (start, end) in enumerate(free[m.id]):
                if end - start >= task.hours:
                    cost = km / data.speed_kmh + rotation + data.wait_weight * start
                    pairs.append(Candidate(task, m, k, start, km, cost))
    return pairs


def build_repair_model(
    pairs: Sequence[Candidate], free: dict[int, tuple[Interval, ...]]
) -> tuple[pulp.LpProblem, RepairVars]:
    """Binary choice per triple with the task, pledge, offer, window and load rows (module docstring)."""
    problem = pulp.LpProblem("repairs", pulp.LpMaximize)
    chosen = tuple(
        problem.add_variable(
            f"y_{c.task.id}_{c.member.id}_{c.window}", lowBound=0, upBound=1, cat=pulp.LpBinary
        )
        for c in pairs
    )
    group = groups(pairs)
    load = {g: problem.add_variable(f"L_{g}", lowBound=0) for g in sorted(set(group.values()))}
    by_task: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_member: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_sector: dict[tuple[int, str], list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_window: dict[tuple[int, int], list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_level: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    members: dict[int, CrewMember] = {}
    for var, c in zip(chosen, pairs, strict=True):
        hours = c.task.hours
        members[c.member.id] = c.member
        by_task[c.task.id].append((var, 1.0))
        by_member[c.member.id].append((var, hours))
        by_sector[(c.member.id, c.task.sector)].append((var, hours))
        by_window[(c.member.id, c.window)].append((var, hours))
        by_level[c.task.urgency].append((var, 1.0))
    for task_id, terms in sorted(by_task.items()):
        _row(problem, terms, 1.0, f"task_{task_id}")
    for member_id, terms in sorted(by_member.items()):
        m = members[member_id]
        _row(problem, terms, m.week_room_h, f"pledge_{member_id}")
        # week load + planned <= L x pledge (every candidate member has a pledge > 0: see `qualifies`)
        expr = pulp.LpAffineExpression([*terms, (load[group[member_id]], -m.week_pledge_h)])
        problem.addConstraint(
            pulp.LpConstraint(expr, pulp.LpConstraintLE, rhs=-m.week_load_h), f"load_{member_id}"
        )
    for (member_id, sector), terms in sorted(by_sector.items()):
        _row(problem, terms, members[member_id].year_room_h(sector), f"offer_{member_id}_{sector}")
    for (member_id, k), terms in sorted(by_window.items()):
        start, end = free[member_id][k]
        _row(problem, terms, end - start, f"window_{member_id}_{k}")
    counts = {level: pulp.LpAffineExpression(terms) for level, terms in by_level.items()}
    cost = pulp.LpAffineExpression([(var, c.cost) for var, c in zip(chosen, pairs, strict=True)])
    return problem, RepairVars(tuple(pairs), chosen, counts, load, group, cost)


def _row(problem: pulp.LpProblem, terms: list[tuple[pulp.LpVariable, float]], rhs: float, name: str) -> None:
    problem.addConstraint(
        pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintLE, rhs=rhs), name
    )
