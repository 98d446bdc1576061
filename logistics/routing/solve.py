"""Delivery routing: requests -> routes, by ruin-and-recreate search and PuLP set partitioning in turns.

1. Requests that no vehicle could serve even alone are set aside with the reason.
2. Construction by cheapest insertion, then simulated annealing over SISR ruin-and-recreate moves. Every
   accepted route goes into a pool.
3. PuLP picks the cheapest set of pool routes serving every request once (HiGHS if installed, else CBC).
   The search restarts from that set and a last round of set partitioning ends the run.

The result is always complete: every request is on a route or listed as unassigned with its reason. The
routes are heuristic (no optimality is claimed); each set-partitioning round reports its real outcome.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from gateway.contract.errors import InvalidInput
from logistics.common.errors import PlanningError
from logistics.routing import pyvrp_search
from logistics.routing.check import check_plan
from logistics.routing.data import PlannedRoute, RoutingInput, RoutingPlan, Unassigned
from logistics.routing.fairness import figures
from logistics.routing.problem import EPS, Column, Problem
from logistics.routing.recreate import depot_distance, recreate
from logistics.routing.search import step
from logistics.routing.set_partition import Pool, PoolColumn, RatioTerm, solve_partition
from logistics.routing.solution import Route, Solution

log = logging.getLogger(__name__)

COMPLETE: Final = "Complete"
INCOMPLETE: Final = "Incomplete"
EXCLUDED: Final = "every vehicle that could carry it is excluded from it"  # the reason, when that is why
SP_SHARE: Final = 0.12  # share of the time limit given to each set-partitioning round
PYVRP_SP_SHARE: Final = 0.12  # share of the time limit left for the set partitioning after PyVRP
MAX_COLUMNS: Final = 20_000  # pool routes offered to one set-partitioning round
START_TEMPERATURE: Final = 0.3  # times the mean edge length of the first solution
END_TEMPERATURE: Final = 0.003
CYCLE_STEPS_PER_REQUEST: Final = 400  # annealing steps per request in one cycle
MIN_CYCLE_STEPS: Final = 5_000
Progress = Callable[[float, float], None]  # (fraction of the time used, best cost so far)


def solve_routing(
    data: RoutingInput,
    time_limit_s: float = 10.0,
    seed: int = 1,
    progress: Progress | None = None,
    max_iterations: int | None = None,
    stall_iterations: int | None = None,
) -> RoutingPlan:
    """Routes for every request some vehicle can serve, within about `time_limit_s` of wall clock.

    With `max_iterations` the search also stops after that many ruin-and-recreate steps, so a fixed seed
    gives the same plan on any machine (as long as the time limit is not reached first). With
    `stall_iterations` each search phase also ends after that many steps without a new best (the planner
    service uses this so small real problems do not hold the loop for the whole limit).
    """
    if not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise InvalidInput(f"time limit must be a positive number of seconds, got {time_limit_s}")
    started = time.perf_counter()
    search = Solution(Problem(data), random.Random(seed))
    reasons = {i: why for i in range(len(data.requests)) if (why := _unservable(search, i)) is not None}
    servable = [i for i in range(len(data.requests)) if i not in reasons]
    search.scope = set(servable)
    if len(servable) > 1 and pyvrp_search.capacity_only(search.p):
        found = _pyvrp_then_partition(
            search, servable, started, time_limit_s, seed, progress, max_iterations, stall_iterations
        )
        if found is not None:
            return _checked(data, _plan(search, reasons, *found, started))
    recreate(search, sorted(servable, key=lambda r: depot_distance(search, r), reverse=True), {})
    search.cost = search.total()
    if time.perf_counter() > started + time_limit_s:
        raise PlanningError("routing", "TimeLimit", f"no first solution within {time_limit_s} s")
    if not servable:
        return _plan(search, reasons, 0, 0, (), started)
    run = _Run(search, servable, started, time_limit_s, progress, max_iterations, stall_iterations)
    run.improve()
    search.load_columns(run.best)
    if run.best_unserved != search.unserved:  # the same set by construction; a mismatch is a bug, not a plan
        raise PlanningError("routing", "Inconsistent", "the best solution lost track of its requests")
    return _checked(data, _plan(search, reasons, run.iterations, len(run.pool), tuple(run.rounds), started))


def _checked(data: RoutingInput, plan: RoutingPlan) -> RoutingPlan:
    """The plan, once every rule is recomputed from the input; PlanningError if one is broken."""
    problems = check_plan(data, plan)
    if problems:
        raise PlanningError("routing", "Infeasible", "; ".join(problems[:3]))
    return plan


def _pyvrp_then_partition(
    search: Solution,
    servable: list[int],
    started: float,
    limit: float,
    seed: int,
    progress: Progress | None,
    max_iterations: int | None,
    stall_iterations: int | None,
) -> tuple[int, int, tuple[str, ...]] | None:
    """PyVRP searches until the last `PYVRP_SP_SHARE` of the time, pooling routes; set partitioning over
    the pool, started from PyVRP's best, decides. Loads the result into `search`; None if PyVRP found
    nothing feasible (our own search then runs)."""
    pool = Pool({})
    deadline = started + limit
    found = pyvrp_search.search(
        search.p,
        servable,
        pool,
        deadline - PYVRP_SP_SHARE * limit,
        seed,
        started,
        limit,
        progress,
        max_iterations,
        stall_iterations,
    )
    if found is None:
        return None
    if found.first_at > deadline:
        raise PlanningError("routing", "TimeLimit", f"no first solution within {limit} s")
    search.load_columns(found.columns)
    best, best_cost = found.columns, search.cost
    rounds: tuple[str, ...] = ()
    sp_started = time.perf_counter()
    result = None
    if sp_started < deadline:
        result = partition_pool(search.p, pool, best, servable, max(0.2, deadline - sp_started))
    log.debug(
        "PyVRP until %.2f s (best %.3f), set partitioning %.2f s",
        sp_started - started,
        best_cost,
        time.perf_counter() - sp_started,
    )
    if result is not None:
        columns, cost, outcome = result
        rounds = (outcome,)
        if cost < best_cost - EPS:
            search.load_columns(columns)
    return found.iterations, len(pool), rounds


@dataclass
class _Run:
    """One solve after the first solution: annealing cycles, each from the best solution so far and closed
    by a set-partitioning round. Small problems get several cycles (restarts); on big ones the time ends
    the first or second."""

    search: Solution
    servable: list[int]
    started: float
    limit: float  # the time limit, s
    progress: Progress | None
    max_iterations: int | None
    stall_iterations: int | None
    hot: float = field(init=False)  # start and end temperatures of each cycle
    cold: float = field(init=False)
    best_cost: float = field(init=False)
    best: list[Column] = field(init=False)
    best_unserved: set[int] = field(init=False)
    pool: Pool = field(init=False, default_factory=lambda: Pool({}))
    reserve: float = field(init=False)  # for the last set-partitioning round; shrinks to what rounds take
    iterations: int = field(init=False, default=0)
    rounds: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        search = self.search
        self.best_cost = search.cost
        self.best = search.columns()
        self.best_unserved = set(search.unserved)
        self.keep(search.routes)
        edges = sum(r.stops + 1 for r in search.routes) or 1
        mean_edge = max(sum(r.cost for r in search.routes) / edges, EPS)
        self.hot, self.cold = START_TEMPERATURE * mean_edge, END_TEMPERATURE * mean_edge
        self.reserve = self.sp_time

    @property
    def deadline(self) -> float:
        return self.started + self.limit

    @property
    def sp_time(self) -> float:
        """Time given to each set-partitioning round but the last."""
        return SP_SHARE * self.limit

    def keep(self, routes: list[Route]) -> None:
        """Add the routes to the pool (the search's callback on every accepted step)."""
        for route in routes:
            self.pool.add(route.spec, tuple(route.ext[1:-1]), route.cost)

    def improve(self) -> None:
        """Annealing cycles and set-partitioning rounds until the time, the iterations or a stall end."""
        cycle_steps = max(MIN_CYCLE_STEPS, CYCLE_STEPS_PER_REQUEST * len(self.servable))
        stalled = False
        while not stalled:
            cycle_start = time.perf_counter()
            # The first cycle ends by mid-time at the latest, so a first pool is partitioned early.
            first_end = self.started + 0.5 * self.limit - self.sp_time if not self.rounds else math.inf
            cycle_end = min(self.deadline - self.reserve, first_end)
            steps = cycle_steps
            if self.max_iterations is not None:
                steps = min(steps, self.max_iterations - self.iterations)
            if steps <= 0 or cycle_end <= cycle_start:
                break
            done, stalled = self.anneal(steps, cycle_start, cycle_end)
            self.iterations += done
            if len(self.servable) > 1:
                self.partition_round(last=stalled)
            self.search.load_columns(self.best)
            if time.perf_counter() >= self.deadline - 0.01 * self.limit:
                break

    def anneal(self, steps: int, cycle_start: float, cycle_end: float) -> tuple[int, bool]:
        """One cooling cycle from hot to cold; the steps done and whether the search stalled."""
        search = self.search
        done = 0
        stall_at = math.inf if self.stall_iterations is None else self.stall_iterations
        while done < steps and (now := time.perf_counter()) < cycle_end:
            if done >= stall_at:
                return done, True
            fraction = done / steps
            if self.max_iterations is None:
                fraction = max(fraction, (now - cycle_start) / (cycle_end - cycle_start))
            step(search, self.hot * (self.cold / self.hot) ** fraction, self.keep)
            done += 1
            if search.cost < self.best_cost - EPS:
                self.best_cost = search.cost
                self.best = search.columns()
                self.best_unserved = set(search.unserved)
                if self.stall_iterations is not None:
                    stall_at = done + self.stall_iterations
            if self.progress is not None and (self.iterations + done) % 500 == 0:
                self.progress((now - self.started) / self.limit, self.best_cost)
        return done, False

    def partition_round(self, last: bool) -> None:
        """Set partitioning over the pool; its routes become the best if cheaper. The `last` round (or one
        when little time is left) gets all the time that remains."""
        sp_started = time.perf_counter()
        remaining = self.deadline - sp_started
        last = last or remaining <= self.reserve + 0.01 * self.limit
        limit = remaining if last else min(self.sp_time, remaining)
        problem = self.search.p
        result = partition_pool(problem, self.pool, self.best, self.servable, max(0.2, limit))
        # Later rounds get a little more than this one took (their pool is larger).
        self.reserve = min(self.sp_time, max(0.05 * self.limit, 3.0 * (time.perf_counter() - sp_started)))
        if result is None:
            return
        columns, cost, outcome = result
        self.rounds.append(outcome)
        if cost < self.best_cost - EPS:
            self.best_cost = cost
            self.best = columns
            served = {problem.req_of[n] for _, nodes in columns for n in nodes}
            self.best_unserved = set(self.servable) - served


def partition_pool(
    problem: Problem, pool: Pool, best: list[Column], servable: list[int], limit: float
) -> tuple[list[Column], float, str] | None:
    """One set-partitioning round over the pool (the incumbent's routes always offered, so the round can
    start from it and never ends worse)."""
    for spec, nodes in best:
        if (spec, frozenset(nodes)) not in pool.routes:
            pool.add(spec, nodes, _route_cost(problem, spec, nodes))
    incumbent = {(spec, frozenset(nodes)) for spec, nodes in best}
    entries = sorted(pool.routes.items(), key=lambda kv: kv[1][0] / len(kv[1][1]))
    columns: list[PoolColumn] = []
    start: set[int] = set()
    for (spec, key), (cost, nodes) in entries:
        if len(columns) < MAX_COLUMNS or (spec, key) in incumbent:
            requests = frozenset(problem.req_of[n] for n in nodes)
            if problem.has_exclusions and any(spec in problem.excluded[r] for r in requests):
                continue  # never built by insertion; kept out of the model all the same
            if (spec, key) in incumbent:
                start.add(len(columns))
            columns.append(_column(problem, spec, nodes, cost, requests))
    fleet = {i: v.count for i, v in enumerate(problem.vehicles) if v.count is not None}
    ratio = RatioTerm(problem.fairness, problem.workloads, problem.ratio_floor) if problem.fairness else None
    try:
        result = solve_partition(
            columns, servable, fleet, problem.penalty, limit, frozenset(start), problem.weight, ratio
        )
    except PlanningError as exc:
        # The search's own best stays; a failed round is reported, not hidden.
        log.warning("set partitioning round failed: %s", exc)
        return None
    served = [r for c in result.chosen for r in c.requests]
    if len(served) != len(set(served)):
        log.warning("set partitioning returned overlapping routes; kept the search's solution")
        return None
    cost = sum(c.cost for c in result.chosen) + problem.unserved_cost(result.unserved)
    if ratio is not None:
        cost += ratio.value(result.chosen)
    log.debug("set partitioning over %s routes: %s, cost %.3f", len(columns), result.outcome, cost)
    return [(c.spec, c.nodes) for c in result.chosen], cost, result.outcome


def _route_cost(problem: Problem, spec: int, nodes: tuple[int, ...]) -> float:
    """A route's cost as the search prices it: its fixed cost and the distance from start to end."""
    v = problem.vehicles[spec]
    path = [v.start, *nodes, v.end]
    return v.fixed_cost + sum(problem.dist[a][b] for a, b in itertools.pairwise(path))


def _column(
    problem: Problem, spec: int, nodes: tuple[int, ...], cost: float, requests: frozenset[int]
) -> PoolColumn:
    """A pool route as a set-partitioning column; timed and tied to its person's week when fairness counts."""
    workload = problem.workload_of[spec] if problem.fairness else None
    took = problem.duration(spec, nodes) if workload is not None else 0.0
    return PoolColumn(spec, nodes, cost, requests, workload, took)


def _unservable(search: Solution, req: int) -> str | None:
    """Why no vehicle could serve the request even on a route of its own, or None if one could."""
    p = search.p
    r = p.requests[req]
    if all(r.load > v.capacity + EPS for v in p.vehicles):
        heaviest = max(v.capacity for v in p.vehicles)
        return f"load {r.load:g} exceeds every vehicle's capacity (largest {heaviest:g})"
    excluded_could = False
    for spec, v in enumerate(p.vehicles):
        if r.load > v.capacity + EPS:
            continue
        route = Route(spec, [v.start, *r.nodes, v.end])
        search.refresh(route, index=False)
        if search.feasible(route):
            if spec not in p.excluded[req]:
                return None
            excluded_could = True
    if excluded_could:
        return EXCLUDED
    return "no vehicle can reach it within its time window and the driver's hours"


def _plan(
    search: Solution,
    reasons: dict[int, str],
    iterations: int,
    pool_size: int,
    rounds: tuple[str, ...],
    started: float,
) -> RoutingPlan:
    p = search.p
    routes = []
    for route in sorted((r for r in search.routes if r.stops > 0), key=lambda r: (r.spec, r.ext[1])):
        spec = p.vehicles[route.spec]
        duration = route.arrive[-1] - spec.shift_start if p.has_time else route.cost - spec.fixed_cost
        routes.append(
            PlannedRoute(
                vehicle=route.spec,
                nodes=tuple(route.ext[1:-1]),
                distance=route.cost - spec.fixed_cost,
                duration=duration,
                peak_load=route.peak[-1],
            )
        )
    unassigned = [Unassigned(i, why) for i, why in sorted(reasons.items())]
    unassigned += [Unassigned(i, "no driver has room or hours left for it") for i in sorted(search.unserved)]
    unassigned.sort(key=lambda u: u.request)
    cost = sum(r.distance + p.vehicles[r.vehicle].fixed_cost for r in routes)
    added: dict[int, float] = {}
    for r in routes:
        if (k := p.vehicles[r.vehicle].workload) is not None:
            added[k] = added.get(k, 0.0) + r.duration
    max_ratio, spread = figures(p.workloads, added)
    return RoutingPlan(
        routes=tuple(routes),
        unassigned=tuple(unassigned),
        cost=cost,
        status=INCOMPLETE if unassigned else COMPLETE,
        iterations=iterations,
        pool_size=pool_size,
        sp_rounds=rounds,
        solve_time_s=time.perf_counter() - started,
        max_load_ratio=max_ratio,
        load_gini=spread,
    )
