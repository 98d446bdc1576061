"""PyVRP's compiled iterated local search as the route finder for capacity-only problems.

PyVRP (MIT) searches a plain CVRP many times faster than our pure-Python steps, so when the problem has
nothing PyVRP would have to be taught (no time windows or hours, no pickups, no declined lanes, no people's
weeks, equal request weights) it does the searching. Every feasible candidate it visits within 5% of its
best feeds the pool with the routes not seen before; PuLP's set partitioning over that pool then decides
(`solve.py`), so the plan is never worse than the best PyVRP found here, and sometimes better where routes
of different candidates combine (on the benchmark, now and then: CMT11, X-n101).

PyVRP works in integers: distances are scaled (x1000 unless already whole) and loads scaled so that a
rounded plan can never overload a real vehicle; costs in the pool are always recomputed from our matrix.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from logistics.routing.problem import EPS, Column, Problem
from logistics.routing.set_partition import Pool

if TYPE_CHECKING:
    from pyvrp import ProblemData

log = logging.getLogger(__name__)

SCALE: Final = 1000  # distances and loads that are not whole numbers are scaled by this before rounding
# PyVRP's late-acceptance history (300 by default) suits long runs; in a 10 s run on 200-1,000 customers
# (1,000-6,000 iterations) a history of 50 ended 0.5-1.2% shorter (CMT5, X-n303, X-n801, X-n1001); on
# the medium instances tried it made no difference, so up to 150 customers PyVRP's own is kept.
LONG_HISTORY: Final = 300
SHORT_HISTORY: Final = 50
SHORT_HISTORY_ABOVE: Final = 150  # customers
# PyVRP restarts after this many iterations without a new best: 150,000 by default, never reached in a 10 s
# run. Up to 150 customers its search found its last new best 1.6-8.5 s into 10 s (B-n68 CMT3 P-n76 X-n120);
# restarting after 4,000 spends the rest in other basins and pools their routes too. On the 11 medium
# instances, ours at 10 s: 0.19% mean gap at 150,000, 0.25% at 2,000, 0.06% at 4,000, 0.12% at 8,000.
# Larger instances make too few iterations in 10 s to restart (and keep PyVRP's default).
RESTART_AFTER: Final = 4_000
RESTART_AFTER_LARGE: Final = 150_000
HARVEST_WITHIN: Final = 0.05
RECENT: Final = 32  # candidates costing more than this share above the best feed no routes
Progress = Callable[[float, float], None]


def capacity_only(p: Problem) -> bool:
    """Whether the problem is a plain CVRP PyVRP may search: no time, pairs, exclusions, people or weights."""
    return (
        not p.has_time
        and not p.has_exclusions
        and not p.fairness
        and not p.weighted
        and all(r.pickup is None for r in p.requests)
    )


@dataclass(frozen=True)
class _Mapping:
    """Our nodes as PyVRP locations: depots first, then one client per request searched."""

    data: ProblemData
    requests: list[int]  # PyVRP client k serves our request requests[k]
    depot_of: dict[int, int]  # our depot node -> PyVRP depot index
    scale: float  # PyVRP distance = round(our distance * scale)


def build(p: Problem, requests: list[int]) -> _Mapping:
    """The PyVRP problem data for these requests (matrices in integers, one vehicle type per spec)."""
    from pyvrp import Client, Depot, Location, ProblemData, VehicleType

    depots = sorted({n for v in p.vehicles for n in (v.start, v.end)})
    nodes = depots + [p.requests[r].delivery for r in requests]
    sub = p.data.distance[np.ix_(nodes, nodes)]
    whole = bool(np.allclose(sub, np.rint(sub))) and float(sub.max(initial=0.0)) < 2**40
    scale = 1.0 if whole else float(SCALE)
    matrix = np.rint(sub * scale).astype(np.int64)
    loads = [p.requests[r].load for r in requests] + [v.capacity for v in p.vehicles]
    load_scale = 1.0 if all(float(q).is_integer() for q in loads) else float(SCALE)
    locations = [Location(x=0.0, y=0.0) for _ in nodes]  # coordinates unused: matrices are explicit
    clients = [
        Client(location=len(depots) + k, delivery=[math.ceil(p.requests[r].load * load_scale - EPS)])
        for k, r in enumerate(requests)
    ]
    depot_of = {node: k for k, node in enumerate(depots)}
    types = [
        VehicleType(
            num_available=v.count if v.count is not None else max(1, len(requests)),
            capacity=[math.floor(v.capacity * load_scale + EPS)],
            start_depot=depot_of[v.start],
            end_depot=depot_of[v.end],
            fixed_cost=round(v.fixed_cost * scale),
        )
        for v in p.vehicles
    ]
    matrices: list[Any] = [matrix]  # PyVRP's stubs type the matrix as ndarray[int], numpy's shape differs
    data = ProblemData(
        locations, clients, [Depot(location=k) for k in range(len(depots))], types, matrices, matrices
    )
    return _Mapping(data, requests, depot_of, scale)


class _Harvest:
    """ILS callbacks: the routes of every feasible candidate near the best go into the pool, once."""

    def __init__(self, p: Problem, mapping: _Mapping, pool: Pool) -> None:
        self.p = p
        self.mapping = mapping
        self.pool = pool
        self.seen: set[tuple[int, int, int, int]] = set()
        self.recent: deque[int] = deque(maxlen=RECENT)  # costs of the last candidates pooled
        self.best_cost = math.inf
        self.iterations = 0
        self.harvested = 0

    def add(self, solution: Any, every: bool = False) -> None:
        """Pool the solution's feasible routes not seen before. A cheap signature filters the ones seen; it
        may rarely match a route not seen, which then goes unpooled, so a best solution is pooled `every`
        route (set partitioning must be able to start from it)."""
        p, m = self.p, self.mapping
        for route in solution.routes():
            key = (route.vehicle_type(), route.distance(), route.delivery()[0], route.num_clients())
            if (key in self.seen and not every) or not route.is_feasible():
                continue
            self.seen.add(key)
            nodes = tuple(p.requests[m.requests[a.idx]].delivery for a in route if a.is_client())
            spec = route.vehicle_type()
            cost = p.duration(spec, nodes) + p.vehicles[spec].fixed_cost
            self.pool.add(spec, nodes, cost)
            self.harvested += 1

    # The callback interface of pyvrp.IteratedLocalSearch (IteratedLocalSearchCallbacks).
    def on_start(self, ils: Any) -> None:
        pass

    def on_end(self, result: Any) -> None:
        pass

    def on_restart(self, best: Any) -> None:
        pass

    def on_best(self, best: Any) -> None:
        if best.is_feasible():
            self.best_cost = min(self.best_cost, float(best.distance_cost() + best.fixed_vehicle_cost()))
            self.add(best, every=True)

    def on_iteration(self, current: Any, candidate: Any, best: Any, cost_evaluator: Any) -> None:
        self.iterations += 1
        if not candidate.is_feasible():
            return
        cost = cost_evaluator.cost(candidate)
        # A cost met among the last candidates pooled is almost always the same solution again (the
        # search often returns to one); skipping it saves most of the pooling's time.
        if cost > self.best_cost * (1 + HARVEST_WITHIN) or cost in self.recent:
            return
        self.recent.append(cost)
        self.add(candidate)


class _Stop:
    """Stop at the deadline, after `max_iterations`, or after `stall` iterations without a new best."""

    def __init__(
        self,
        deadline: float,
        max_iterations: int | None,
        stall: int | None,
        progress: Progress | None,
        started: float,
        limit: float,
        scale: float,
    ) -> None:
        self.deadline = deadline
        self.max_iterations = max_iterations
        self.stall = stall
        self.progress = progress
        self.started, self.limit, self.scale = started, limit, scale
        self.calls = 0
        self.best = math.inf
        self.best_at = 0

    def __call__(self, best_cost: float) -> bool:
        self.calls += 1
        if best_cost < self.best:
            self.best, self.best_at = best_cost, self.calls
        if self.progress is not None and self.calls % 500 == 0:
            self.progress((time.perf_counter() - self.started) / self.limit, self.best / self.scale)
        if self.max_iterations is not None and self.calls > self.max_iterations:
            return True
        if self.stall is not None and self.calls - self.best_at > self.stall:
            return True
        return time.perf_counter() >= self.deadline


@dataclass(frozen=True)
class Found:
    """PyVRP's best solution as our routes, and how the search went."""

    columns: list[Column]
    iterations: int
    harvested: int
    first_at: float  # perf_counter when PyVRP had its first solution


def search(
    p: Problem,
    requests: list[int],
    pool: Pool,
    deadline: float,
    seed: int,
    started: float,
    limit: float,
    progress: Progress | None = None,
    max_iterations: int | None = None,
    stall_iterations: int | None = None,
) -> Found | None:
    """Run PyVRP's iterated local search until the deadline, pooling routes; its best solution, or None
    without a feasible one. One run: at 10 s PyVRP still improves late on medium and large instances, so
    splitting the time into independent runs lost more than their combined routes gained (tried on the
    11 medium instances: 2 or 3 runs, 0.24-0.27% mean gap against 0.24% for one)."""
    from pyvrp import IteratedLocalSearch, PenaltyManager, RandomNumberGenerator, Solution
    from pyvrp.IteratedLocalSearch import IteratedLocalSearchParams
    from pyvrp.search import LocalSearch, PerturbationManager, compute_neighbours
    from pyvrp.solve import SolveParams

    mapping = build(p, requests)
    data = mapping.data
    params = SolveParams()
    rng = RandomNumberGenerator(seed=seed)
    ls = LocalSearch(data, rng, compute_neighbours(data, params.neighbourhood), PerturbationManager())
    for op in params.operators:
        if op.supports(data):
            ls.add_operator(op(data))
    pm = PenaltyManager(params.penalty.midpoint_penalties(data), params.penalty)
    initial = ls(Solution.make_random(data, rng), pm.max_cost_evaluator(), exhaustive=True)
    first_at = time.perf_counter()
    harvest = _Harvest(p, mapping, pool)
    history = LONG_HISTORY if len(requests) <= SHORT_HISTORY_ABOVE else SHORT_HISTORY
    restart = RESTART_AFTER if len(requests) <= SHORT_HISTORY_ABOVE else RESTART_AFTER_LARGE
    ils_params = IteratedLocalSearchParams(
        num_iters_no_improvement=restart,
        history_length=history,
        callbacks=harvest,  # type: ignore[arg-type]
    )
    stop = _Stop(deadline, max_iterations, stall_iterations, progress, started, limit, mapping.scale)
    best = IteratedLocalSearch(data, pm, ls, initial, ils_params).run(stop, collect_stats=False).best
    if not best.is_feasible() or not best.is_complete():
        log.warning("PyVRP found no feasible solution in time; our own search takes over")
        return None
    harvest.add(best, every=True)
    columns: list[Column] = []
    for route in best.routes():
        nodes = tuple(p.requests[mapping.requests[a.idx]].delivery for a in route if a.is_client())
        columns.append((route.vehicle_type(), nodes))
    log.debug("PyVRP: %s iterations, %s routes pooled", stop.calls, harvest.harvested)
    return Found(columns, stop.calls, harvest.harvested, first_at)
