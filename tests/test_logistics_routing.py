"""Delivery routing on tiny named instances with known optima (fixed seeds, iteration caps)."""

from __future__ import annotations

import itertools
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.contract.errors import InvalidInput, RhizomeError
from gateway.process.cli import main
from logistics.common.errors import PlanningError
from logistics.routing import (
    PlannedRoute,
    Request,
    RoutingInput,
    RoutingPlan,
    Stop,
    VehicleSpec,
    check_plan,
    limits,
    read_instance,
    solve_routing,
)
from logistics.routing.data import Workload
from logistics.routing.fairness import gini
from logistics.routing.set_partition import PoolColumn, RatioTerm, build_partition_model, solve_partition
from logistics.routing.vrpfile import parse_cvrplib, parse_lilim

FAST: dict[str, Any] = {"time_limit_s": 5.0, "seed": 1, "max_iterations": 3000}


def line(points: list[float]) -> np.ndarray:
    """Distances between points on a line."""
    xs = np.array(points)
    return np.abs(xs[:, None] - xs[None, :])


def euclid(points: list[tuple[float, float]]) -> np.ndarray:
    xy = np.array(points, dtype=float)
    return np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))


def brute_force_cvrp(dist: np.ndarray, demand: list[float], capacity: float) -> float:
    """Optimal CVRP cost by enumerating set partitions of the customers and every order of each part."""
    customers = list(range(1, len(demand) + 1))

    def best_route(part: tuple[int, ...]) -> float:
        if sum(demand[c - 1] for c in part) > capacity:
            return math.inf
        return min(
            dist[0, p[0]] + sum(dist[a, b] for a, b in itertools.pairwise(p)) + dist[p[-1], 0]
            for p in itertools.permutations(part)
        )

    def partitions(items: list[int]) -> list[list[tuple[int, ...]]]:
        if not items:
            return [[]]
        first, rest = items[0], items[1:]
        result = []
        for size in range(len(rest) + 1):
            for others in itertools.combinations(rest, size):
                remaining = [x for x in rest if x not in others]
                for tail in partitions(remaining):
                    result.append([(first, *others), *tail])
        return result

    return min(sum(best_route(part) for part in parts) for parts in partitions(customers))


# --- CVRP -------------------------------------------------------------------------------------------------


def test_two_sided_line_needs_two_routes() -> None:
    """Depot at 0, customers at -2, -1, 1, 2 with capacity 2: optimum is two out-and-back routes, cost 8."""
    dist = line([0, -2, -1, 1, 2])
    data = RoutingInput(
        dist,
        [Request(delivery=i, load=1) for i in range(1, 5)],
        [VehicleSpec(start=0, end=0, capacity=2, count=None)],
    )
    plan = solve_routing(data, **FAST)
    assert plan.status == "Complete"
    assert plan.cost == pytest.approx(8.0)
    assert sorted(sorted(r.nodes) for r in plan.routes) == [[1, 2], [3, 4]]
    assert check_plan(data, plan) == []


@pytest.mark.parametrize("seed", [3, 11])
def test_random_seven_customer_cvrp_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    points = [(50.0, 50.0)] + [(rng.uniform(0, 100), rng.uniform(0, 100)) for _ in range(7)]
    demand = [float(rng.randint(1, 5)) for _ in range(7)]
    dist = euclid(points)
    data = RoutingInput(
        dist,
        [Request(delivery=i + 1, load=q) for i, q in enumerate(demand)],
        [VehicleSpec(start=0, end=0, capacity=10, count=None)],
    )
    plan = solve_routing(data, **FAST)
    assert plan.cost == pytest.approx(brute_force_cvrp(dist, demand, 10), rel=1e-9)
    assert check_plan(data, plan) == []


# --- pickup and delivery ----------------------------------------------------------------------------------


def test_pickup_before_delivery_on_one_route() -> None:
    """Two shipments along a line 0 -> 1 -> 2 -> 3 -> 4: one sweep out and back, cost 8."""
    dist = line([0, 1, 2, 3, 4])
    data = RoutingInput(
        dist,
        [Request(pickup=1, delivery=3, load=5), Request(pickup=2, delivery=4, load=5)],
        [VehicleSpec(start=0, end=0, capacity=10)],
    )
    plan = solve_routing(data, **FAST)
    assert plan.cost == pytest.approx(8.0)
    order = plan.routes[0].nodes
    assert order[:2] == (1, 2) and set(order[2:]) == {3, 4}  # both picked up before either is dropped
    assert plan.routes[0].peak_load == pytest.approx(10.0)
    assert check_plan(data, plan) == []


def test_capacity_forces_deliver_before_next_pickup() -> None:
    """Same line, capacity 5: the first load must be dropped before the second is picked up."""
    dist = line([0, 1, 2, 3, 4])
    data = RoutingInput(
        dist,
        [Request(pickup=1, delivery=2, load=5), Request(pickup=3, delivery=4, load=5)],
        [VehicleSpec(start=0, end=0, capacity=5)],
    )
    plan = solve_routing(data, **FAST)
    assert plan.routes[0].nodes == (1, 2, 3, 4)
    assert plan.cost == pytest.approx(8.0)


def test_time_windows_order_the_stops_and_driver_start_end_differ() -> None:
    """Driver from node 0 to node 5; node 3 must be served early, so the route visits it first."""
    dist = line([0, 2, 4, 1, 3, 6])
    stops = [Stop(), Stop(), Stop(), Stop(0, 1.5), Stop(), Stop()]
    data = RoutingInput(
        dist,
        [Request(pickup=3, delivery=2, load=1), Request(pickup=1, delivery=4, load=1)],
        [VehicleSpec(start=0, end=5, capacity=10, shift_end=100)],
        stops=stops,
    )
    plan = solve_routing(data, **FAST)
    assert plan.routes[0].nodes[0] == 3
    assert plan.cost == pytest.approx(6.0)  # 0 -> 1 (node 3) -> 2 (node 1) -> 3 (node 4) -> 4 (node 2) -> 6
    assert check_plan(data, plan) == []


# --- unassignable shipments are reported, never dropped ---------------------------------------------------


def test_unassignable_requests_come_with_their_reason() -> None:
    """One driver with 60 time units: too heavy, too far, and two trips of 50 that cannot both fit."""
    dist = line([0, 1, 2, 50, 3, 20, 25, -20, -25])
    data = RoutingInput(
        dist,
        [
            Request(pickup=1, delivery=2, load=500, label="too heavy"),
            Request(pickup=3, delivery=4, load=1, label="too far"),
            Request(pickup=5, delivery=6, load=1, label="east"),
            Request(pickup=7, delivery=8, load=1, label="west"),
        ],
        [VehicleSpec(start=0, end=0, capacity=10, count=1, max_duration=60)],
    )
    plan = solve_routing(data, **FAST)
    reasons = {u.request: u.reason for u in plan.unassigned}
    assert plan.status == "Incomplete"
    assert "exceeds every vehicle's capacity" in reasons[0]
    assert "driver's hours" in reasons[1]
    assert len(plan.routes) == 1 and plan.cost == pytest.approx(50.0)
    assert len(reasons) == 3 and "no driver has room" in reasons[({2, 3} & reasons.keys()).pop()]
    assert check_plan(data, plan) == []


def test_check_plan_catches_a_broken_plan() -> None:
    dist = line([0, 1, 2])
    data = RoutingInput(dist, [Request(pickup=1, delivery=2, load=5)], [VehicleSpec(0, 0, capacity=4)])
    broken = RoutingPlan(
        routes=(PlannedRoute(vehicle=0, nodes=(2, 1), distance=3.0, duration=0, peak_load=5),),
        unassigned=(),
        cost=3.0,
        status="Complete",
    )
    problems = check_plan(data, broken)
    assert any("before its pickup" in p for p in problems)
    assert any("distance" in p for p in problems)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distance": np.ones((2, 3))}, "square"),
        ({"distance": -line([0, 1, 2])}, ">= 0"),
        ({"requests": [Request(delivery=0, load=1)]}, "depot"),
        ({"requests": [Request(delivery=1, load=1), Request(delivery=1, load=1)]}, "more than one"),
        ({"requests": [Request(delivery=9, load=1)]}, "outside"),
        ({"vehicles": []}, "no vehicles"),
        ({"stops": [Stop()]}, "stops given"),
    ],
)
def test_bad_routing_input_is_rejected(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "distance": line([0, 1, 2]),
        "requests": [Request(delivery=1, load=1)],
        "vehicles": [VehicleSpec(0, 0, capacity=1)],
    }
    with pytest.raises(ValueError, match=message):
        RoutingInput(**(base | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Stop(earliest=5, latest=1),
        lambda: VehicleSpec(0, 0, capacity=0),
        lambda: VehicleSpec(0, 0, capacity=1, count=0),
        lambda: Request(delivery=1, load=-1),
        lambda: Request(delivery=1, pickup=1, load=1),
    ],
)
def test_bad_parts_are_rejected(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


# --- set partitioning -------------------------------------------------------------------------------------


def test_set_partitioning_picks_the_cheapest_exact_cover() -> None:
    columns = [
        PoolColumn(0, (1, 2), 10.0, frozenset({0, 1})),
        PoolColumn(0, (3,), 4.0, frozenset({2})),
        PoolColumn(0, (1,), 3.0, frozenset({0})),
        PoolColumn(0, (2, 3), 5.0, frozenset({1, 2})),
    ]
    problem, _, _ = build_partition_model(columns, [0, 1, 2], {0: 2}, penalty=100.0)
    assert {c.name for c in problem.constraints()} == {"serve_0", "serve_1", "serve_2", "fleet_0"}
    result = solve_partition(columns, [0, 1, 2], {0: 2}, penalty=100.0, time_limit_s=5)
    assert {c.nodes for c in result.chosen} == {(1,), (2, 3)}
    assert result.proven and result.objective == pytest.approx(8.0)
    # One vehicle only: no pair of routes is allowed, so two requests stay unserved at the penalty.
    single = solve_partition(columns, [0, 1, 2], {0: 1}, penalty=100.0, time_limit_s=5)
    assert len(single.chosen) == 1 and len(single.unserved) == 1


def test_set_partitioning_prices_the_largest_load_ratio() -> None:
    """Two routes of equal cost serve request 0, one per person: the ratio row picks the emptier week."""
    workloads = [Workload(1, held=30.0, pledge=60.0), Workload(2, held=0.0, pledge=60.0)]
    columns = [
        PoolColumn(0, (1,), 5.0, frozenset({0}), workload=0, time=20.0),
        PoolColumn(1, (1,), 5.0, frozenset({0}), workload=1, time=20.0),
    ]
    ratio = RatioTerm(price=10.0, workloads=workloads, floor=0.5)
    problem, _, _ = build_partition_model(columns, [0], {0: 1, 1: 1}, penalty=100.0, ratio=ratio)
    assert {c.name for c in problem.constraints()} >= {"ratio_0", "ratio_1"}
    result = solve_partition(columns, [0], {0: 1, 1: 1}, penalty=100.0, time_limit_s=5, ratio=ratio)
    assert [c.workload for c in result.chosen] == [1]
    assert result.objective == pytest.approx(5.0 + 10.0 * 0.5)  # the floor: 30 of 60 held before
    assert ratio.value(result.chosen) == pytest.approx(5.0)


# --- people: exclusions and fairness -------------------------------------------------------------------


def two_drivers(**kw: object) -> RoutingInput:
    """Two vehicles at one depot (node 0) and one request 1 -> 2 on a line."""
    defaults: dict[str, object] = {"requests": [Request(pickup=1, delivery=2, load=1)]}
    defaults |= kw
    return RoutingInput(
        line([0, 1, 2]),
        vehicles=[
            VehicleSpec(0, 0, capacity=5, max_duration=100),
            VehicleSpec(0, 0, capacity=5, max_duration=100),
        ],
        **defaults,  # type: ignore[arg-type]
    )


def test_an_excluded_vehicle_never_carries_the_request() -> None:
    data = two_drivers(requests=[Request(pickup=1, delivery=2, load=1, excluded=frozenset({0}))])
    plan = solve_routing(data, **FAST)
    assert [r.vehicle for r in plan.routes] == [1] and not check_plan(data, plan)
    cheat = RoutingPlan((PlannedRoute(0, (1, 2), 4.0, 4.0, 1.0),), (), 4.0, "Complete")
    assert any("excludes" in problem for problem in check_plan(data, cheat))


def test_a_request_every_able_vehicle_excludes_is_unassigned_with_the_reason() -> None:
    data = two_drivers(requests=[Request(pickup=1, delivery=2, load=1, excluded=frozenset({0, 1}))])
    plan = solve_routing(data, **FAST)
    assert (
        not plan.routes
        and plan.unassigned[0].reason == "every vehicle that could carry it is excluded from it"
    )
    with pytest.raises(InvalidInput, match="excludes vehicles that do not exist"):
        two_drivers(requests=[Request(pickup=1, delivery=2, load=1, excluded=frozenset({7}))])


def test_the_route_goes_to_the_person_with_the_emptier_week() -> None:
    """Same vehicles, same distances: the fixed cost grows with each person's week so far (as the store's
    loader sets it), and the largest load ratio is priced; the emptier week gets the route."""
    workloads = [Workload(1, held=50.0, pledge=100.0), Workload(2, held=10.0, pledge=100.0)]
    vehicles = [
        VehicleSpec(0, 0, capacity=5, max_duration=100, workload=k, fixed_cost=3.0 * w.held / w.pledge)
        for k, w in enumerate(workloads)
    ]
    data = RoutingInput(
        line([0, 1, 2]), [Request(pickup=1, delivery=2, load=1)], vehicles, workloads=workloads, fairness=10.0
    )
    plan = solve_routing(data, **FAST)
    assert [r.vehicle for r in plan.routes] == [1]
    assert plan.max_load_ratio == pytest.approx(0.5)  # person 1's 50 of 100 stay the fullest week
    assert plan.load_gini == pytest.approx(gini([0.5, 0.14]))
    assert plan.summary()["max_load_ratio"] == 0.5
    with pytest.raises(InvalidInput, match="workload 3"):
        RoutingInput(line([0, 1]), [], [VehicleSpec(0, 0, capacity=1, workload=3)])


def test_gini_is_zero_for_equal_loads_and_grows_with_the_spread() -> None:
    assert gini([]) == gini([0.3, 0.3, 0.3]) == 0.0
    assert gini([0.0, 1.0]) == pytest.approx(0.5)
    assert 0 < gini([0.1, 0.2, 0.3]) < gini([0.0, 0.0, 0.6])


# --- limits: free time and the budget ---------------------------------------------------------------------

MON = datetime(2026, 11, 23, tzinfo=UTC)


def test_free_time_is_the_windows_less_away_days_and_busy_work() -> None:
    windows = [
        {"day": 0, "start": "08:00", "end": "12:00"},
        {"day": 1, "start": "20:00", "end": "24:00"},
        {"day": 2, "start": "00:00", "end": "02:00"},
    ]
    busy = [(MON + timedelta(hours=9), MON + timedelta(hours=10))]
    away = [{"from": "2026-11-30", "to": "2026-11-30"}]  # next Monday
    free = limits.free(windows, away, busy, MON, MON + timedelta(days=8))
    hour = timedelta(hours=1)
    assert free == [
        (MON + 8 * hour, MON + 9 * hour),
        (MON + 10 * hour, MON + 12 * hour),
        (MON + 44 * hour, MON + 50 * hour),  # Tuesday 20:00 to Wednesday 02:00, joined at midnight
    ]
    assert limits.covers(free, MON + 45 * hour, MON + 49 * hour)
    assert not limits.covers(free, MON + 8 * hour, MON + 11 * hour)
    assert limits.free(None, None, busy, MON, MON + 3 * hour) == [(MON, MON + 3 * hour)]
    with pytest.raises(InvalidInput):
        limits.available([{"day": 9, "start": "08:00", "end": "09:00"}], None, MON, MON + hour)


def test_slots_share_the_week_and_leave_out_a_sector_nearly_used_up() -> None:
    budget = limits.Budget(pledge=10.0, offer={"food": 2.0, "other": 50.0}, week_load={MON: 1.0})
    free = [(MON, MON + timedelta(days=2))]
    found = limits.slots(free, budget, ["food", "other"], shift_h=8.0, most=3)
    assert [s.hours for s in found] == [8.0, 1.0]  # 9 h left this week: a shift, then the rest
    assert found[0].sectors == {"other"}  # 2 h of food left is less than half a shift: food rides elsewhere
    assert found[1].sectors == {"food", "other"} and found[1].start == MON + timedelta(hours=8)
    assert budget.week_left(MON) == pytest.approx(0.0)
    assert not limits.slots(free, budget, ["other"], shift_h=8.0, most=3)


# --- benchmark files and the CLI ---------------------------------------------------------------------------

CVRP_TEXT = """NAME : tiny-n5
TYPE : CVRP
DIMENSION : 5
EDGE_WEIGHT_TYPE : EUC_2D
CAPACITY : 2
NODE_COORD_SECTION
1 0 0
2 -2 0
3 -1 0
4 1 0
5 2 0
DEMAND_SECTION
1 0
2 1
3 1
4 1
5 1
DEPOT_SECTION
1
-1
EOF
"""

LILIM_TEXT = """2 10 1
0 0 0 0 0 100 0 0 0
1 1 0 5 0 100 1 0 3
2 2 0 5 0 100 1 0 4
3 3 0 -5 0 100 1 1 0
4 4 0 -5 0 100 1 2 0
"""


def test_cvrplib_parser_numbers_nodes_as_the_file() -> None:
    instance = parse_cvrplib(CVRP_TEXT)
    assert instance.data.name == "tiny-n5"
    assert [instance.label(r.delivery) for r in instance.data.requests] == [2, 3, 4, 5]
    assert instance.data.distance[0, 1] == 2.0


def test_explicit_lower_row_matrix() -> None:
    text = CVRP_TEXT.replace("EUC_2D", "EXPLICIT\nEDGE_WEIGHT_FORMAT : LOWER_ROW").replace(
        "NODE_COORD_SECTION\n1 0 0\n2 -2 0\n3 -1 0\n4 1 0\n5 2 0\n",
        "EDGE_WEIGHT_SECTION\n2\n1 1\n1 3 2\n2 4 3 1\n",
    )
    matrix = parse_cvrplib(text).data.distance
    assert matrix[4, 1] == matrix[1, 4] == 4.0 and matrix[2, 0] == 1.0


def test_lilim_parser_pairs_pickups_with_deliveries() -> None:
    instance = parse_lilim(LILIM_TEXT)
    assert [(r.pickup, r.delivery, r.load) for r in instance.data.requests] == [(1, 3, 5), (2, 4, 5)]
    assert instance.data.vehicles[0].count == 2
    assert instance.data.stop(3).service == 1


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (parse_cvrplib, "NAME : x\nDIMENSION : 3\n"),
        (parse_cvrplib, CVRP_TEXT.replace("EUC_2D", "GEO")),
        (parse_cvrplib, CVRP_TEXT.replace("5 2 0\n", "")),
        (parse_lilim, "oops"),
        (parse_lilim, LILIM_TEXT.replace("4 4 0 -5 0 100 1 2 0", "4 4 0 -5 0 100 1 1 0")),
        (parse_lilim, LILIM_TEXT.replace("0 3\n", "0 4\n")),
    ],
)
def test_malformed_instance_files_are_rejected(parser: object, text: str) -> None:
    with pytest.raises(ValueError):
        parser(text)  # type: ignore[operator]


def test_plan_vrp_prints_routes_and_a_last_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny-n5.vrp"
    path.write_text(CVRP_TEXT)
    assert main(["plan", "vrp", str(path), "--time-limit", "1", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    body = json.loads(out[-1])
    assert body["cost"] == 8.0
    assert sorted(sorted(r) for r in body["routes"]) == [[2, 3], [4, 5]]
    assert body["runtime_s"] > 0
    assert read_instance(path).kind == "cvrp"


def test_plan_vrp_reports_the_gap_to_the_best_known_solution_beside_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny-n5.vrp"
    path.write_text(CVRP_TEXT)
    (tmp_path / "tiny-n5.sol").write_text("Route #1: 2 3\nRoute #2: 4 5\nCost 7.5\n")
    assert main(["plan", "vrp", str(path), "--time-limit", "1", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    body = json.loads(out[-1])
    assert body["best_known"] == 7.5
    assert body["gap_pct"] == pytest.approx(100.0 * (8.0 - 7.5) / 7.5, abs=1e-3)
    assert body["sp_rounds"] and "best known 7.50: gap 6.67%" in out


def test_plan_vrp_on_a_lilim_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.txt"
    path.write_text(LILIM_TEXT)
    assert main(["plan", "vrp", str(path), "--time-limit", "1", "--json"]) == 0
    body = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert body["cost"] == 8.0 and len(body["routes"]) == 1
    assert body["routes"][0][:2] == [1, 2] and sorted(body["routes"][0][2:]) == [3, 4]


def test_no_first_solution_in_time_is_an_error_not_a_partial_plan() -> None:
    data = RoutingInput(
        line([0, 1, 2]), [Request(delivery=1, load=1), Request(delivery=2, load=1)], [VehicleSpec(0, 0, 5)]
    )
    with pytest.raises(PlanningError, match="TimeLimit"):
        solve_routing(data, time_limit_s=1e-9)
    with pytest.raises(ValueError, match="time limit"):
        solve_routing(data, time_limit_s=0)


def test_the_planners_errors_belong_to_rhizomes_error_tree() -> None:
    # Bad input is InvalidInput (still a ValueError); a plan the solver cannot prove is a PlanningError.
    assert issubclass(PlanningError, RhizomeError) and issubclass(InvalidInput, ValueError)
    data = RoutingInput(line([0, 1]), [Request(delivery=1, load=1)], [VehicleSpec(0, 0, 5)])
    with pytest.raises(InvalidInput, match="time limit"):
        solve_routing(data, time_limit_s=math.inf)
    with pytest.raises(InvalidInput, match="capacity must be > 0"):
        VehicleSpec(0, 0, 0)
    with pytest.raises(InvalidInput, match="not a Li & Lim file"):
        parse_lilim("no numbers here", "broken")


def test_the_planner_loop_stops_early_on_small_problems() -> None:
    data = RoutingInput(
        line([0, 1, 2]), [Request(delivery=1, load=1), Request(delivery=2, load=1)], [VehicleSpec(0, 0, 5)]
    )
    plan = solve_routing(data, time_limit_s=30.0, stall_iterations=200)
    assert plan.cost == pytest.approx(4.0) and plan.solve_time_s < 10.0


# --- priorities -------------------------------------------------------------------------------------------


def test_when_not_all_fit_the_weightier_request_is_carried() -> None:
    """Hours for one of two trips: the insulin (weight 8) goes, not the nearer, cheaper eggs (weight 3)."""
    dist = line([0.0, -1.0, -2.0, 10.0, 11.0])  # depot, eggs pickup/delivery, insulin pickup/delivery
    eggs = Request(pickup=1, delivery=2, load=5.0, label="eggs", weight=3.0)
    insulin = Request(pickup=3, delivery=4, load=5.0, label="insulin", weight=8.0)
    shift = [VehicleSpec(start=0, end=0, capacity=5.0, max_duration=22.0)]  # eggs 4, insulin 22, both 26
    data = RoutingInput(dist, [eggs, insulin], shift)
    plan = solve_routing(data, **FAST)
    assert check_plan(data, plan) == []
    assert [u.request for u in plan.unassigned] == [0]
    assert plan.routes[0].nodes == (3, 4)
    unweighted = RoutingInput(
        dist, [Request(pickup=1, delivery=2, load=5.0), Request(pickup=3, delivery=4, load=5.0)], shift
    )
    plan = solve_routing(unweighted, **FAST)
    assert [u.request for u in plan.unassigned] == [1], "without weights the cheaper request goes"


@pytest.mark.parametrize("weight", [0.5, 0.0, math.nan, math.inf])
def test_a_request_weight_below_one_is_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="weight must be >= 1"):
        Request(delivery=2, load=1.0, pickup=1, weight=weight)
