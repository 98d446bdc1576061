"""The route pool and its set partitioning: never worse than the best pooled solution, better when routes of
different solutions combine; and PyVRP as the search on capacity-only problems."""

from __future__ import annotations

import random

import numpy as np
import pytest

from logistics.routing import Request, RoutingInput, VehicleSpec, check_plan, pyvrp_search, solve_routing
from logistics.routing.problem import Column, Problem
from logistics.routing.set_partition import Pool
from logistics.routing.solve import partition_pool


def euclid(points: list[tuple[float, float]]) -> np.ndarray:
    xy = np.array(points, dtype=float)
    return np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))


def cvrp(points: list[tuple[float, float]], loads: list[float], capacity: float) -> RoutingInput:
    """Depot at points[0], one delivery request per other point."""
    return RoutingInput(
        euclid(points),
        [Request(delivery=i, load=q) for i, q in enumerate(loads, 1)],
        [VehicleSpec(start=0, end=0, capacity=capacity, count=None)],
    )


def pooled(problem: Problem, solutions: list[list[Column]]) -> Pool:
    """A pool holding every route of the solutions, each priced from the problem's distances."""
    pool = Pool({})
    for columns in solutions:
        for spec, nodes in columns:
            pool.add(spec, nodes, problem.duration(spec, nodes) + problem.vehicles[spec].fixed_cost)
    return pool


def cost(problem: Problem, columns: list[Column]) -> float:
    return sum(problem.duration(spec, nodes) for spec, nodes in columns)


def test_routes_of_two_solutions_combine_into_one_better_than_both() -> None:
    """Two clusters: the first solution serves the west well and the east badly, the second the reverse;
    set partitioning takes the west of one and the east of the other."""
    data = cvrp([(0, 0), (-10, 0), (-10, 1), (10, 0), (10, 1)], [1, 1, 1, 1], capacity=2)
    problem = Problem(data)
    west_good: list[Column] = [(0, (1, 2)), (0, (3,)), (0, (4,))]
    east_good: list[Column] = [(0, (1,)), (0, (2,)), (0, (3, 4))]
    found = partition_pool(problem, pooled(problem, [west_good, east_good]), west_good, [0, 1, 2, 3], 5.0)
    assert found is not None
    columns, total, outcome = found
    assert sorted(nodes for _, nodes in columns) == [(1, 2), (3, 4)]
    assert total == pytest.approx(cost(problem, columns))
    assert total < min(cost(problem, west_good), cost(problem, east_good)) - 15.0
    assert "optimal" in outcome


@pytest.mark.parametrize("seed", range(12))
def test_set_partitioning_is_never_worse_than_the_best_pooled_solution(seed: int) -> None:
    """Random instances, a pool of random feasible solutions: the chosen cover costs at most the cheapest
    of them, serves every request once and keeps the capacity (check_plan on the loaded plan)."""
    rng = random.Random(seed)
    n = rng.randint(5, 9)
    points = [(rng.uniform(-50, 50), rng.uniform(-50, 50)) for _ in range(n + 1)]
    loads = [float(rng.randint(1, 4)) for _ in range(n)]
    data = cvrp(points, loads, capacity=6)
    problem = Problem(data)
    solutions = []
    for _ in range(4):
        order = rng.sample(range(1, n + 1), n)
        routes: list[Column] = []
        current: list[int] = []
        for node in order:
            if sum(loads[c - 1] for c in current) + loads[node - 1] > 6:
                routes.append((0, tuple(current)))
                current = []
            current.append(node)
        routes.append((0, tuple(current)))
        solutions.append(routes)
    best = min(solutions, key=lambda s: cost(problem, s))
    found = partition_pool(problem, pooled(problem, solutions), best, list(range(n)), 5.0)
    assert found is not None
    columns, total, _ = found
    assert total <= cost(problem, best) + 1e-9
    served = sorted(node for _, nodes in columns for node in nodes)
    assert served == list(range(1, n + 1))
    assert all(sum(loads[c - 1] for c in nodes) <= 6 for _, nodes in columns)


def test_capacity_only_problems_go_to_pyvrp_and_others_do_not() -> None:
    plain = cvrp([(0, 0), (1, 0), (0, 1)], [1, 1], capacity=2)
    assert pyvrp_search.capacity_only(Problem(plain))
    paired = RoutingInput(
        euclid([(0, 0), (1, 0), (0, 1)]),
        [Request(delivery=2, load=1, pickup=1)],
        [VehicleSpec(start=0, end=0, capacity=2, count=None)],
    )
    assert not pyvrp_search.capacity_only(Problem(paired))
    declined = RoutingInput(
        plain.distance,
        [Request(delivery=1, load=1, excluded=frozenset({0})), Request(delivery=2, load=1)],
        [VehicleSpec(start=0, end=0, capacity=2, count=None), VehicleSpec(start=0, end=0, capacity=2)],
    )
    assert not pyvrp_search.capacity_only(Problem(declined))


def test_pyvrp_plan_on_fractional_loads_and_distances_keeps_every_rule() -> None:
    """Loads and distances that are not whole numbers are scaled for PyVRP; the plan it gives is checked
    against the real (unscaled) input and its cost recomputed from the real distances."""
    rng = random.Random(3)
    points = [(rng.uniform(0, 9), rng.uniform(0, 9)) for _ in range(16)]
    loads = [rng.choice([0.35, 0.7, 1.25]) for _ in range(15)]
    data = cvrp(points, loads, capacity=2.1)
    plan = solve_routing(data, time_limit_s=3.0, seed=1, max_iterations=300)
    assert plan.status == "Complete"
    assert check_plan(data, plan) == []
    assert plan.iterations > 0 and plan.sp_rounds
    problem = Problem(data)
    assert plan.cost == pytest.approx(cost(problem, [(r.vehicle, r.nodes) for r in plan.routes]))
