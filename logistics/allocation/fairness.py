"""Worst-off first: lexicographic max-min of weighted shares by progressive filling, one LP per round.

Each round minimises, per component, the worst weighted shortfall weight x (1 - share of the level) of its
free shortages. The shortages that hold it up (a row with a positive dual: tight in every optimum) are held
at the level they reached; the others keep rising in the next round. A shortage no lane reaches has no row
at all, so a hard-to-reach community caps only itself, never the floor of everyone else. Nothing in the
objective pays per unit of a share: a nearly full community never goes ahead of an empty one.

The PuLP model (model.py) of each part goes to HiGHS once, through PuLP's own adapter; between rounds only
bounds and a coefficient change in place, so each round re-solves from the last basis.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pulp

from logistics.allocation.model import AllocationVars, Key, Need
from logistics.common.errors import PlanningError

# Weights: a quarter more for each doubling of the people beyond PEOPLE_UNIT, a quarter more for each week
# short, up to MAX_SHORT_H. Kept mild on purpose: a community weighing w goes first until its share is
# 1 - 1/w, so a town of 3,000 (1.5) is lifted to a third of its minimum before a hamlet short since today
# (1) gets anything, and nobody weighs more than about 3.
PEOPLE_UNIT: Final = 1000.0
PEOPLE_STEP: Final = 0.25
WEEK_H: Final = 168.0
WEEK_STEP: Final = 0.25
MAX_SHORT_H: Final = 4 * WEEK_H
ZERO_SHORTFALL: Final = 1e-9  # a component whose worst shortfall is below this has reached its levels
BINDING_DUAL: Final = 1e-9  # a row's share of its component's dual sum above which it holds the level up
TIGHT: Final = 1e-7  # x its level: a row this close to its bound is tight (when the duals say nothing)


def need_weight(people: float, short_hours: float) -> float:
    """How much a shortage weighs in the max-min: more people and a longer time short weigh more (>= 1)."""
    people_part = PEOPLE_STEP * math.log2(1.0 + max(0.0, people) / PEOPLE_UNIT)
    time_part = WEEK_STEP * min(max(0.0, short_hours), MAX_SHORT_H) / WEEK_H
    return 1.0 + people_part + time_part


@dataclass
class Filling:
    """The pass's LP in HiGHS, what the filling held so far, and the rounds and time spent.

    Givers a bottleneck drew on give it everything in every optimum (their supply rows carry a dual at
    least as large as its own), so they are `exhausted`: the free shortages left split into the components
    of the lanes that remain, and each gets a shortfall column of its own and rises on its own level.
    """

    problem: pulp.LpProblem
    v: AllocationVars
    deadline: float
    held: dict[Key, float] = field(default_factory=dict)
    exhausted: set[Key] = field(default_factory=set)  # givers whose whole supply a held share needs
    column: dict[Key, int] = field(default_factory=dict)  # free shortage -> its shortfall column
    givers: dict[Key, list[Key]] = field(default_factory=dict)  # shortage -> givers with a lane to it
    takers: dict[Key, list[Key]] = field(default_factory=dict)  # giver -> shortages it has a lane to
    rounds: int = 0
    build_s: float = 0.0
    solve_s: float = 0.0

    @classmethod
    def start(cls, problem: pulp.LpProblem, v: AllocationVars, deadline: float) -> Filling:
        """Hand the model to HiGHS (the build's last step, timed with it)."""
        started = time.perf_counter()
        solver = pulp.HiGHS(msg=False, mip=False, threads=1)
        solver.createAndConfigureSolver(problem)
        solver.buildSolverModel(problem)
        # Primal simplex from the last basis: a round only relaxes rows and holds shares where they are
        # (the priced `give` takes the solver's last digits), so the last solution stays feasible;
        # presolve would throw the basis away.
        problem.solverModel.setOptionValue("presolve", "off")
        problem.solverModel.setOptionValue("solver", "simplex")
        problem.solverModel.setOptionValue("simplex_strategy", 4)
        filling = cls(problem, v, deadline)
        for lane in v.network.lanes:
            taker, giver = (lane.to_place, lane.good_id), (lane.from_place, lane.good_id)
            filling.givers.setdefault(taker, []).append(giver)
            filling.takers.setdefault(giver, []).append(taker)
        filling.build_s = time.perf_counter() - started
        return filling

    @property
    def highs(self) -> Any:
        return self.problem.solverModel

    def solve(self, stage: str) -> tuple[list[float], list[float]]:
        """Re-solve from the last basis; the columns' values and the rows' duals, or PlanningError."""
        import highspy

        remaining = self.deadline - time.perf_counter()
        if remaining <= 0:
            raise PlanningError(stage, "Stopped", f"out of time after {self.rounds} rounds")
        started = time.perf_counter()
        self.highs.setOptionValue("time_limit", remaining)
        self.highs.run()
        status = self.highs.getModelStatus()
        self.solve_s += time.perf_counter() - started
        self.rounds += 1
        if status != highspy.HighsModelStatus.kOptimal:
            raise PlanningError(stage, "NotOptimal", self.highs.modelStatusToString(status))
        solution = self.highs.getSolution()
        return list(solution.col_value), list(solution.row_dual)

    def set_need(self, key: Key, need: Need) -> None:
        """Free `key` to rise towards `need`'s level in the next rounds."""
        row = self.v.fair[key].index
        column = self.column.setdefault(key, self.v.shortfall[self.v.component[key]].index)
        self.highs.changeCoeff(row, column, need.level / need.weight)
        self.highs.changeRowBounds(row, need.gap, math.inf)

    def hold(self, key: Key, quantity: float) -> None:
        """Keep at least `quantity` flowing into `key` from now on; it no longer rises."""
        self.held[key] = max(self.held.get(key, 0.0), quantity)
        self.highs.changeRowBounds(self.v.fair[key].index, -math.inf, math.inf)
        self.highs.changeRowBounds(self.v.held[key].index, self.held[key], math.inf)
        self.column.pop(key, None)

    def split(self, free: Mapping[Key, Need]) -> dict[int, list[Key]]:
        """Give each component of the free shortages (over lanes from givers not exhausted) a shortfall
        column of its own; column -> its shortages."""
        parent = {key: key for key in free}

        def root(key: Key) -> Key:
            while parent[key] != key:
                parent[key] = parent[parent[key]]
                key = parent[key]
            return key

        for giver, takers in self.takers.items():
            if giver in self.exhausted:
                continue
            first: Key | None = None
            for taker in takers:
                if taker not in parent:
                    continue
                if first is None:
                    first = root(taker)
                elif (other := root(taker)) != first:
                    parent[other] = first
        groups: dict[Key, list[Key]] = defaultdict(list)
        for key in free:
            groups[root(key)].append(key)
        members: dict[int, list[Key]] = {}
        for keys in groups.values():
            column = self.column[keys[0]]
            if column in members:  # the group it was in has split: a new column for this part
                self.highs.addCol(1.0, 0.0, math.inf, 0, [], [])
                column = self.highs.getNumCol() - 1
            members[column] = keys
            for key in keys:
                if self.column[key] != column:
                    row = self.v.fair[key].index
                    self.highs.changeCoeff(row, self.column[key], 0.0)
                    self.highs.changeCoeff(row, column, free[key].level / free[key].weight)
                    self.column[key] = column
        return members


def fill(filling: Filling, needs: Mapping[Key, Need], stage: str) -> set[Key]:
    """Lift the reachable `needs`, worst weighted shortfall first, and hold each where it stops (never below
    what it held before). Returns those that reached their level."""
    v = filling.v
    free = {key: need for key, need in needs.items() if key in v.fair and need.gap > 0 and need.level > 0}
    for key, need in free.items():
        filling.set_need(key, need)
    full: set[Key] = set()
    while free:
        members = filling.split(free)
        values, duals = filling.solve(stage)
        for column, keys in members.items():
            worst = max(0.0, values[column])
            if worst <= ZERO_SHORTFALL:
                full.update(keys)
                stopped = keys
            else:
                stopped = _bottleneck(v, keys, free, duals, values, worst)
                filling.exhausted.update(g for key in stopped for g in filling.givers[key])
            for key in stopped:
                need = free.pop(key)
                share = need.gap - need.level / need.weight * worst if worst > ZERO_SHORTFALL else need.gap
                filling.hold(key, max(0.0, share))
    return full


def _bottleneck(
    v: AllocationVars,
    keys: list[Key],
    free: Mapping[Key, Need],
    duals: list[float],
    values: list[float],
    worst: float,
) -> list[Key]:
    """The free shortages of one component that hold its shortfall up: a positive dual (tight in every
    optimum, by complementary slackness); if the duals say nothing, every tight row."""
    # A component's fair-row duals, each times its shortfall coefficient, sum to 1 at an optimum.
    weight = {key: abs(duals[v.fair[key].index]) * free[key].level / free[key].weight for key in keys}
    total = sum(weight.values())
    binding = [key for key in keys if total > 0 and weight[key] > BINDING_DUAL * total]
    if binding:
        return binding
    tight = []
    for key in keys:
        need = free[key]
        inflow = sum(values[x.index] * a for x, a in v.inflow[key].items())
        if inflow + need.level / need.weight * worst <= need.gap + TIGHT * need.level:
            tight.append(key)
    return tight or keys


def hold_cost(filling: Filling) -> float:
    """The last solve: every share held, the cheapest lanes (units x road km) that deliver them; returns
    the units x km. A unit given back costs more than the longest lane, so none is saved on the road."""
    v = filling.v
    highs = filling.highs
    longest = max((lane.distance_km for lane in v.network.lanes), default=0.0)
    cost = np.zeros(highs.getNumCol())  # the shortfall columns: nothing
    for x, lane in zip(v.flows, v.network.lanes, strict=True):
        cost[x.index] = lane.distance_km
    for give in v.give.values():
        cost[give.index] = max(v.penalty, 1000.0 * (1.0 + longest))
    highs.changeColsCost(len(cost), np.arange(len(cost), dtype=np.int32), cost)
    values, _ = filling.solve("cost")
    for x in v.flows:
        x.varValue = values[x.index]
    return sum(values[x.index] * lane.distance_km for x, lane in zip(v.flows, v.network.lanes, strict=True))
