"""Set partitioning over a pool of routes: PuLP picks the cheapest set that serves every request once.

Columns are routes the search found (its pool); rows are requests (`serve_{request}`) and, for a limited
fleet, vehicle specs (`fleet_{spec}`). A request may stay unserved only through its own slack variable, priced
above any set of routes, so the model is always feasible and an unserved request is never silent.

With people (`RatioTerm`), one more variable is the largest load ratio: a row per person's week
(`ratio_{week}`: held / pledge + the time of its chosen routes / pledge <= largest) and the objective pays
`price` per unit of it, so of two sets of routes of equal length the one sparing the busiest person wins.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulp

from logistics.common.errors import PlanningError
from logistics.common.solver import make_mip_solver, mip_gap
from logistics.routing.data import Workload
from logistics.routing.fairness import largest
from logistics.routing.problem import EPS

log = logging.getLogger(__name__)

HIGHS_NO_PROBING: Final = 1 << 15  # HiGHS's presolve_rule_off bit for probing


@dataclass
class Pool:
    """Distinct routes seen in good solutions, keyed by vehicle spec and node set, cheapest order kept."""

    routes: dict[tuple[int, frozenset[int]], tuple[float, tuple[int, ...]]]

    def add(self, spec: int, nodes: tuple[int, ...], cost: float) -> None:
        key = (spec, frozenset(nodes))
        known = self.routes.get(key)
        if known is None or cost < known[0] - EPS:
            self.routes[key] = (cost, nodes)

    def __len__(self) -> int:
        return len(self.routes)


@dataclass(frozen=True)
class PoolColumn:
    """One candidate route: its vehicle spec, nodes in order, cost and the requests it serves."""

    spec: int
    nodes: tuple[int, ...]
    cost: float
    requests: frozenset[int]
    workload: int | None = None  # whose week the route adds to (None: nobody's)
    time: float = 0.0  # how long it takes, in the input's time unit


@dataclass(frozen=True)
class PartitionResult:
    """The chosen routes and how the solver ended: proven optimal, or stopped with a known gap."""

    chosen: tuple[PoolColumn, ...]
    unserved: tuple[int, ...]
    objective: float
    solver: str
    proven: bool
    gap: float | None
    seconds: float

    @property
    def outcome(self) -> str:
        """A short description for logs and plan summaries."""
        if self.proven:
            return f"{self.solver} optimal"
        gap = "unknown gap" if self.gap is None else f"gap {self.gap:.2%}"
        return f"{self.solver} stopped ({gap})"


@dataclass(frozen=True)
class RatioTerm:
    """The price of the largest load ratio, the people's weeks, and the largest ratio before any route."""

    price: float
    workloads: Sequence[Workload]
    floor: float

    def value(self, chosen: Sequence[PoolColumn]) -> float:
        """What the term costs for these routes (as `Solution.total` prices it)."""
        added: dict[int, float] = {}
        for c in chosen:
            if c.workload is not None:
                added[c.workload] = added.get(c.workload, 0.0) + c.time
        return self.price * largest(self.workloads, added, self.floor)


def build_partition_model(
    columns: Sequence[PoolColumn],
    requests: Sequence[int],
    fleet: dict[int, int],
    penalty: float,
    weights: Sequence[float] | None = None,
    ratio: RatioTerm | None = None,
) -> tuple[pulp.LpProblem, list[pulp.LpVariable], dict[int, pulp.LpVariable]]:
    """The set-partitioning MIP: binary x per column, slack per request (costing `penalty` times the
    request's weight, 1 by default), named rows; with `ratio`, the largest load ratio and its rows."""
    problem = pulp.LpProblem("routes", pulp.LpMinimize)
    x = [
        problem.add_variable(f"x_{k}", lowBound=0, upBound=1, cat=pulp.LpBinary) for k in range(len(columns))
    ]
    slack = {r: problem.add_variable(f"unserved_{r}", lowBound=0.0, upBound=1.0) for r in requests}
    rows: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    by_spec: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    for var, column in zip(x, columns, strict=True):
        for r in column.requests:
            rows[r].append((var, 1.0))
        by_spec[column.spec].append((var, 1.0))
    for r in requests:
        terms = [*rows.get(r, []), (slack[r], 1.0)]
        problem.addConstraint(
            pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintEQ, rhs=1.0), f"serve_{r}"
        )
    for spec, count in sorted(fleet.items()):
        if by_spec.get(spec):
            expr = pulp.LpAffineExpression(by_spec[spec])
            problem.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, rhs=count), f"fleet_{spec}")
    objective = [(var, c.cost) for var, c in zip(x, columns, strict=True)]
    objective += [(s, penalty * (weights[r] if weights else 1.0)) for r, s in slack.items()]
    if ratio is not None and ratio.price > 0:
        objective.append((_ratio_rows(problem, x, columns, ratio), ratio.price))
    problem.setObjective(pulp.LpAffineExpression(objective))
    return problem, x, slack


def _ratio_rows(
    problem: pulp.LpProblem, x: Sequence[pulp.LpVariable], columns: Sequence[PoolColumn], ratio: RatioTerm
) -> pulp.LpVariable:
    """The largest load ratio as a variable bounded below by every week the columns add to."""
    high = problem.add_variable("largest_ratio", lowBound=ratio.floor)
    weeks: dict[int, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    for var, c in zip(x, columns, strict=True):
        if c.workload is not None and c.time > 0:
            weeks[c.workload].append((var, -c.time / ratio.workloads[c.workload].pledge))
    for k, terms in sorted(weeks.items()):
        w = ratio.workloads[k]
        expr = pulp.LpAffineExpression([(high, 1.0), *terms])
        problem.addConstraint(
            pulp.LpConstraint(expr, pulp.LpConstraintGE, rhs=w.held / w.pledge), f"ratio_{k}"
        )
    return high


def solve_partition(
    columns: Sequence[PoolColumn],
    requests: Sequence[int],
    fleet: dict[int, int],
    penalty: float,
    time_limit_s: float,
    start: frozenset[int] = frozenset(),
    weights: Sequence[float] | None = None,
    ratio: RatioTerm | None = None,
) -> PartitionResult:
    """Pick routes, starting from the columns numbered in `start` (the incumbent; the rest of its
    requests unserved); raises PlanningError when the solver ends without any integer solution."""
    started = time.perf_counter()
    problem, x, slack = build_partition_model(columns, requests, fleet, penalty, weights, ratio)
    if start and ratio is not None and ratio.price > 0:
        high = problem.variablesDict()["largest_ratio"]
        # The incumbent's ratio, never below the floor: recomputed, it may differ from it in the last bit,
        # and PuLP refuses a start value under a variable's bound (a planner run died on 1e-16).
        at_start = ratio.value([columns[k] for k in start]) / ratio.price
        high.setInitialValue(max(at_start, high.lowBound) if high.lowBound is not None else at_start)
    if start:
        covered: set[int] = set()
        for k, var in enumerate(x):
            var.setInitialValue(1.0 if k in start else 0.0)
            if k in start:
                covered |= columns[k].requests
        for r, s in slack.items():
            s.setInitialValue(0.0 if r in covered else 1.0)
    limit = max(0.2, time_limit_s - (time.perf_counter() - started))
    solver, name = make_mip_solver(limit, warm_start=bool(start))
    if name == "HiGHS":
        # HiGHS's probing can spend the whole limit in presolve on a pool of thousands of routes (seen on
        # X-n120: 0.9 of 1.2 s, no LP solved), and a restart after the root presolves again, overrunning
        # the limit (5.9 s of 1.2); without both the root LP and its heuristics get the time.
        solver.optionsDict["presolve_rule_off"] = HIGHS_NO_PROBING
        solver.optionsDict["mip_allow_restart"] = False
    try:
        problem.solve(solver)
    except pulp.PulpSolverError as exc:
        raise PlanningError("routes", "SolverError", str(exc)) from exc
    has_solution = problem.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    if problem.status != pulp.LpStatusOptimal or not has_solution:
        raise PlanningError("routes", pulp.LpStatus.get(problem.status, str(problem.status)), "no solution")
    chosen = tuple(c for var, c in zip(x, columns, strict=True) if (var.value() or 0.0) > 0.5)
    unserved = tuple(r for r, s in slack.items() if (s.value() or 0.0) > 0.5)
    proven = problem.sol_status == pulp.LpSolutionOptimal
    value = pulp.value(problem.objective)
    return PartitionResult(
        chosen=chosen,
        unserved=unserved,
        objective=float(value) if value is not None else 0.0,
        solver=name,
        proven=proven,
        gap=0.0 if proven else mip_gap(problem),
        seconds=time.perf_counter() - started,
    )
