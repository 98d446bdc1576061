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
from typing import Final

from logistics.common.errors import PlanningError
from logistics.routing.data import (
    PlannedRoute,
    Request,
    RoutingInput,
    RoutingPlan,
    Stop,
    Unassigned,
    VehicleSpec,
)
from logistics.routing.search import EPS, Column, Pool, Problem, Route, Search
from logistics.routing.set_partition import PoolColumn, solve_partition

__all__ = [
    "PlannedRoute",
    "Request",
    "RoutingInput",
    "RoutingPlan",
    "Stop",
    "Unassigned",
    "VehicleSpec",
    "check_plan",
    "solve_routing",
]

log = logging.getLogger(__name__)

COMPLETE: Final = "Complete"
INCOMPLETE: Final = "Incomplete"
SP_SHARE: Final = 0.12  # share of the time limit given to each set-partitioning round
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
        raise ValueError(f"time limit must be a positive number of seconds, got {time_limit_s}")
    started = time.perf_counter()
    deadline = started + time_limit_s
    problem = Problem(data)
    rng = random.Random(seed)
    search = Search(problem, rng)
    reasons = {i: why for i in range(len(data.requests)) if (why := _unservable(search, i)) is not None}
    servable = [i for i in range(len(data.requests)) if i not in reasons]
    search.scope = set(servable)
    search.recreate(sorted(servable, key=search.depot_distance, reverse=True), {})
    search.cost = search.total()
    if time.perf_counter() > deadline:
        raise PlanningError("routing", "TimeLimit", f"no first solution within {time_limit_s} s")
    if not servable:
        return _plan(search, reasons, 0, 0, (), started)

    pool = Pool({})
    best_cost = search.cost
    best = search.columns()
    best_unserved = set(search.unserved)

    def keep(routes: list[Route]) -> None:
        for route in routes:
            pool.add(route.spec, tuple(route.ext[1:-1]), route.cost)

    keep(search.routes)
    edges = sum(r.stops + 1 for r in search.routes) or 1
    mean_edge = max(sum(r.cost for r in search.routes) / edges, EPS)
    hot, cold = START_TEMPERATURE * mean_edge, END_TEMPERATURE * mean_edge
    sp_time = SP_SHARE * time_limit_s
    reserve = sp_time  # kept for the last set-partitioning round; shrinks to what earlier rounds needed
    # Annealing runs in cycles, each from the best solution so far and closed by set partitioning. Small
    # problems get several cycles (restarts); on big ones the time ends the first or second.
    cycle_steps = max(MIN_CYCLE_STEPS, CYCLE_STEPS_PER_REQUEST * len(servable))
    iterations = 0
    rounds: list[str] = []
    stalled = False
    while not stalled:
        cycle_start = time.perf_counter()
        # The first cycle ends by mid-time at the latest, so a first pool is partitioned early.
        first_end = started + 0.5 * time_limit_s - sp_time if not rounds else math.inf
        cycle_end = min(deadline - reserve, first_end)
        steps = cycle_steps
        if max_iterations is not None:
            steps = min(steps, max_iterations - iterations)
        if steps <= 0 or cycle_end <= cycle_start:
            break
        done = 0
        stall_at = math.inf if stall_iterations is None else stall_iterations
        while done < steps and (now := time.perf_counter()) < cycle_end:
            if done >= stall_at:
                stalled = True
                break
            fraction = done / steps
            if max_iterations is None:
                fraction = max(fraction, (now - cycle_start) / (cycle_end - cycle_start))
            search.step(hot * (cold / hot) ** fraction, keep)
            done += 1
            if search.cost < best_cost - EPS:
                best_cost = search.cost
                best = search.columns()
                best_unserved = set(search.unserved)
                if stall_iterations is not None:
                    stall_at = done + stall_iterations
            if progress is not None and (iterations + done) % 500 == 0:
                progress((now - started) / time_limit_s, best_cost)
        iterations += done
        if len(servable) > 1:
            sp_started = time.perf_counter()
            remaining = deadline - sp_started
            last = stalled or remaining <= reserve + 0.01 * time_limit_s
            limit = remaining if last else min(sp_time, remaining)
            result = _partition(problem, pool, best, servable, max(0.2, limit))
            # Later rounds get a little more than this one took (their pool is larger).
            reserve = min(sp_time, max(0.05 * time_limit_s, 3.0 * (time.perf_counter() - sp_started)))
            if result is not None:
                rounds.append(result[2])
                columns, cost = result[0], result[1]
                if cost < best_cost - EPS:
                    best_cost = cost
                    best = columns
                    best_unserved = set(servable) - {problem.req_of[n] for _, nodes in columns for n in nodes}
        search.load_columns(best)
        if time.perf_counter() >= deadline - 0.01 * time_limit_s:
            break
    search.load_columns(best)
    if best_unserved != search.unserved:  # the same set by construction; a mismatch is a bug, not a plan
        raise PlanningError("routing", "Inconsistent", "the best solution lost track of its requests")
    plan = _plan(search, reasons, iterations, len(pool), tuple(rounds), started)
    problems = check_plan(data, plan)
    if problems:
        raise PlanningError("routing", "Infeasible", "; ".join(problems[:3]))
    return plan


def _partition(
    problem: Problem, pool: Pool, best: list[Column], servable: list[int], limit: float
) -> tuple[list[Column], float, str] | None:
    """One set-partitioning round over the pool (the incumbent's routes always offered)."""
    incumbent = {(spec, frozenset(nodes)) for spec, nodes in best}
    entries = sorted(pool.routes.items(), key=lambda kv: kv[1][0] / len(kv[1][1]))
    columns: list[PoolColumn] = []
    start: set[int] = set()
    for (spec, key), (cost, nodes) in entries:
        if len(columns) < MAX_COLUMNS or (spec, key) in incumbent:
            if (spec, key) in incumbent:
                start.add(len(columns))
            columns.append(PoolColumn(spec, nodes, cost, frozenset(problem.req_of[n] for n in nodes)))
    fleet = {i: v.count for i, v in enumerate(problem.vehicles) if v.count is not None}
    try:
        result = solve_partition(
            columns, servable, fleet, problem.penalty, limit, frozenset(start), problem.weight
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
    log.debug("set partitioning over %s routes: %s, cost %.3f", len(columns), result.outcome, cost)
    return [(c.spec, c.nodes) for c in result.chosen], cost, result.outcome


def _unservable(search: Search, req: int) -> str | None:
    """Why no vehicle could serve the request even on a route of its own, or None if one could."""
    p = search.p
    r = p.requests[req]
    if all(r.load > v.capacity + EPS for v in p.vehicles):
        heaviest = max(v.capacity for v in p.vehicles)
        return f"load {r.load:g} exceeds every vehicle's capacity (largest {heaviest:g})"
    for spec, v in enumerate(p.vehicles):
        if r.load > v.capacity + EPS:
            continue
        route = Route(spec, [v.start, *r.nodes, v.end])
        search.refresh(route, index=False)
        if search.feasible(route):
            return None
    return "no vehicle can reach it within its time window and the driver's hours"


def _plan(
    search: Search,
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
    return RoutingPlan(
        routes=tuple(routes),
        unassigned=tuple(unassigned),
        cost=cost,
        status=INCOMPLETE if unassigned else COMPLETE,
        iterations=iterations,
        pool_size=pool_size,
        sp_rounds=rounds,
        solve_time_s=time.perf_counter() - started,
    )


def check_plan(data: RoutingInput, plan: RoutingPlan) -> list[str]:
    """Every broken rule of the plan, recomputed from the input alone (empty when the plan is valid)."""
    problems: list[str] = []
    owner = {node: i for i, r in enumerate(data.requests) for node in r.nodes}
    seen: dict[int, int] = {}
    used = [0] * len(data.vehicles)
    time_matrix = data.distance if data.duration is None else data.duration
    for k, route in enumerate(plan.routes):
        v = data.vehicles[route.vehicle]
        used[route.vehicle] += 1
        path = [v.start, *route.nodes, v.end]
        load = sum(
            data.requests[owner[n]].load for n in route.nodes if data.requests[owner[n]].pickup is None
        )
        peak = load
        clock = v.shift_start
        onboard: set[int] = set()
        for a, b in itertools.pairwise(path):
            clock += data.stop(a).service if a != v.start else 0.0
            clock += float(time_matrix[a, b])
            if b == v.end:
                break
            clock = max(clock, data.stop(b).earliest)
            if clock > data.stop(b).latest + 1e-6:
                problems.append(f"route {k}: node {b} served at {clock:.3f} after {data.stop(b).latest}")
            if b not in owner:
                problems.append(f"route {k}: node {b} is no request's stop")
                continue
            req = data.requests[owner[b]]
            if b == req.pickup:
                load += req.load
                onboard.add(owner[b])
            else:
                load -= req.load
                if req.pickup is not None and owner[b] not in onboard:
                    problems.append(f"route {k}: delivery {b} before its pickup on this route")
            peak = max(peak, load)
            seen[b] = seen.get(b, 0) + 1
        if peak > v.capacity + 1e-6:
            problems.append(f"route {k}: load {peak:g} over capacity {v.capacity:g}")
        if clock > v.deadline + 1e-6:
            problems.append(f"route {k}: back at {clock:.3f} after the deadline {v.deadline}")
        distance = sum(float(data.distance[a, b]) for a, b in itertools.pairwise(path))
        if abs(distance - route.distance) > 1e-6 * max(1.0, distance):
            problems.append(f"route {k}: distance {route.distance} but the path measures {distance}")
    for i, v in enumerate(data.vehicles):
        if v.count is not None and used[i] > v.count:
            problems.append(f"vehicle spec {i} used {used[i]} times, only {v.count} available")
    listed = {u.request for u in plan.unassigned}
    for i, r in enumerate(data.requests):
        visits = [seen.get(n, 0) for n in r.nodes]
        if i in listed:
            if any(visits):
                problems.append(f"request {i} is both routed and unassigned")
        elif visits != [1] * len(r.nodes):
            problems.append(f"request {i} visited {visits} times and not reported unassigned")
    return problems
