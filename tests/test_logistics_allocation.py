"""Surplus allocation on tiny named instances with known optima, plus invariants on a seeded synthetic one."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from typing import Any

import pulp
import pytest

from bench.synthetic.allocation import synthetic_input
from gateway.store.models.vocab import GOOD_SECTORS
from logistics.allocation import (
    NO_LANE,
    NO_SHORTAGE,
    SECTOR_PRIORITY,
    AllocationInput,
    GoodInfo,
    Holding,
    Place,
    build_allocation_model,
    build_network,
    solve_allocation,
    solve_flows,
)
from logistics.common.errors import PlanningError
from logistics.common.solver import check_outcome, make_cbc, solve_optimal

RICE = GoodInfo(1, "rice", "food", essential=True)
FISH = GoodInfo(2, "fresh-fish", "food", perishability_hours=1.0)  # 40 road-km at 40 km/h
NO_MIN_LOAD: dict[str, Any] = {"min_load_kg": 0.0, "load_kg_per_km": 0.0}  # whole units alone


def place(pid: int, km_north: float) -> Place:
    """A place on the meridian, `km_north` great-circle km north of the equator."""
    return Place(pid, f"place-{pid}", km_north / 111.195, 0.0)


def shipped(plan: Any) -> dict[tuple[int, int, int], float]:
    return {(s.from_place, s.to_place, s.good_id): s.quantity for s in plan.shipments}


def test_two_suppliers_fill_one_demander_nearest_first() -> None:
    places = [place(1, 0), place(2, 10), place(3, 50)]
    holdings = [Holding(1, 1, stock=0, minimum=5, target=10), Holding(2, 1, 6), Holding(3, 1, 20)]
    plan = solve_allocation(AllocationInput(places, [RICE], holdings, **NO_MIN_LOAD))
    assert plan.status == "Optimal"
    assert shipped(plan) == {(2, 1, 1): 6.0, (3, 1, 1): 4.0}
    assert plan.coverage == {(1, 1): 1.0}
    assert plan.min_coverage == 1.0
    assert [s.distance_km for s in plan.shipments] == pytest.approx([13.0, 65.0], abs=0.01)
    # With the minimum load, 4 kg are not worth 65 km (13 kg): the 6 kg from nearby already lift the
    # place above its minimum of 5, so the rest waits rather than sending a driver.
    plan = solve_allocation(AllocationInput(places, [RICE], holdings))
    assert shipped(plan) == {(2, 1, 1): 6.0}
    assert plan.coverage == {(1, 1): 0.6}


def test_scarce_supply_is_shared_equally() -> None:
    data = AllocationInput(
        [place(1, 0), place(2, 5), place(3, 30)],
        [RICE],
        [Holding(1, 1, stock=10), Holding(2, 1, 0, 5, 10), Holding(3, 1, 0, 5, 10)],
    )
    plan = solve_allocation(data)
    assert shipped(plan) == {(1, 2, 1): 5.0, (1, 3, 1): 5.0}
    assert plan.min_coverage == 0.5
    assert plan.fair_share == {1: pytest.approx(0.5)}


def test_after_the_floor_the_rest_still_goes_out() -> None:
    """Max-min first, then max total: a poorly served place caps the floor, not what others receive."""
    data = AllocationInput(
        [place(1, 0), place(2, 5), place(3, 500), place(4, 505)],
        [RICE],
        [Holding(1, 1, 1), Holding(2, 1, 0, 5, 10), Holding(3, 1, 100), Holding(4, 1, 0, 5, 10)],
        max_neighbours=1,
    )
    plan = solve_allocation(data)
    assert plan.coverage == {(2, 1): 0.1, (4, 1): 1.0}
    assert plan.fair_share == {1: pytest.approx(0.1)}


def test_perishability_excludes_a_far_lane() -> None:
    data = AllocationInput(
        [place(1, 0), place(2, 20), place(3, 100)],
        [FISH],
        [Holding(1, 2, 0, 5, 10), Holding(2, 2, 3), Holding(3, 2, 50)],
    )
    assert [(lane.from_place, lane.to_place) for lane in build_network(data).lanes] == [(2, 1)]
    plan = solve_allocation(replace(data, **NO_MIN_LOAD))
    assert shipped(plan) == {(2, 1, 2): 3.0}
    assert plan.min_coverage == pytest.approx(0.3)
    assert solve_allocation(data).shipments == (), "3 kg of fish are not worth 26 km (5.2 kg)"


def test_no_shortage_gives_an_empty_plan() -> None:
    data = AllocationInput([place(1, 0), place(2, 5)], [RICE], [Holding(1, 1, 50), Holding(2, 1, 6, 5, 10)])
    plan = solve_allocation(data)
    assert (plan.status, plan.shipments, plan.min_coverage, plan.objective) == (NO_SHORTAGE, (), 1.0, 0.0)


def test_shortage_without_any_surplus_is_reported_unreachable() -> None:
    holdings = [Holding(1, 1, 10, 10, 10), Holding(2, 1, 0, 5, 10)]  # at its own target, nothing to spare
    data = AllocationInput([place(1, 0), place(2, 5)], [RICE], holdings)
    plan = solve_allocation(data)
    assert (plan.status, plan.shipments, plan.unreachable, plan.min_coverage) == (NO_LANE, (), ((2, 1),), 0.0)
    assert plan.reachable_min_coverage == 1.0


@pytest.mark.parametrize(
    ("holding", "supply", "demand"),
    [
        (Holding(1, 1, 30, 5, 10), 20.0, 0.0),  # above target: gives the rest
        (Holding(1, 1, 7, 5, 10), 0.0, 0.0),  # between minimum and target: neither
        (Holding(1, 1, 4, 5, 10), 0.0, 6.0),  # below minimum: short up to the target
        (Holding(1, 1, 4), 4.0, 0.0),  # no need levels: everything is surplus
    ],
)
def test_supply_and_demand_of_a_holding(holding: Holding, supply: float, demand: float) -> None:
    assert (holding.supply(), holding.demand) == (supply, demand)


@pytest.mark.parametrize(
    ("holding", "spare", "need"),
    [
        (Holding(1, 1, 9, 4, 12), 3.0, 0.0),  # above its safety level 4 + 0.25 x 8 = 6
        (Holding(1, 1, 6, 4, 12), 0.0, 0.0),  # at its safety level: keeps everything
        (Holding(1, 1, 30, 4, 12), 6.0, 0.0),  # above target: only the part up to the target is spare
        (Holding(1, 1, 1, 4, 12), 0.0, 5.0),  # below minimum: asks for enough to reach its safety level
        (Holding(1, 1, 5, 4, 12), 0.0, 0.0),  # at or above its minimum: asks for nothing
    ],
)
def test_spare_and_shared_need_of_a_holding(holding: Holding, spare: float, need: float) -> None:
    assert (holding.spare(), holding.shared_need()) == (spare, need)


def test_neighbours_share_an_essential_good_up_to_the_safety_level_when_nobody_has_surplus() -> None:
    water = GoodInfo(1, "drinking-water", "water", essential=True)
    holdings = [Holding(1, 1, 160, 100, 200), Holding(2, 1, 200, 100, 200), Holding(3, 1, 40, 100, 200)]
    data = AllocationInput([place(1, 0), place(2, 40), place(3, 5)], [water], holdings)
    plan = solve_allocation(data)
    assert plan.status == "Optimal"
    # Everyone's safety level is 100 + 0.25 x 100 = 125: the givers keep it, the receiver is brought up
    # to it (85), the nearer giver first.
    assert shipped(plan) == {(1, 3, 1): 35.0, (2, 3, 1): 50.0}
    assert plan.coverage == {(3, 1): pytest.approx(85 / 160)}


def test_non_essential_goods_are_shared_from_surplus_only() -> None:
    holdings = [Holding(1, 2, 160, 100, 200), Holding(2, 2, 40, 100, 200)]
    data = AllocationInput([place(1, 0), place(2, 5)], [FISH], holdings)
    assert solve_allocation(data).shipments == ()


def test_surplus_goes_before_spare_stock() -> None:
    holdings = [Holding(1, 1, 190, 100, 200), Holding(2, 1, 230, 100, 200), Holding(3, 1, 90, 100, 200)]
    data = AllocationInput([place(1, 0), place(2, 30), place(3, 5)], [RICE], holdings)
    # Place 1 is nearer and has 65 to spare, but place 2's surplus of 30 goes first (10 short of the
    # minimum, 110 of the target): the surplus may top up to the target, the spare stock may not.
    assert shipped(solve_allocation(data)) == {(2, 3, 1): 30.0}


def test_share_margin_one_turns_sharing_off() -> None:
    holdings = [Holding(1, 1, 160, 100, 200), Holding(2, 1, 40, 100, 200)]
    data = AllocationInput([place(1, 0), place(2, 5)], [RICE], holdings, share_margin=1.0)
    assert solve_allocation(data).status == NO_LANE


def test_reserve_keeps_a_fraction_of_the_target_back() -> None:
    assert Holding(1, 1, 30, 5, 10).supply(reserve_fraction=0.5) == 15.0


def test_priorities_put_essential_goods_first_then_sectors() -> None:
    def prio(sector: str, essential: bool = False) -> float:
        return GoodInfo(9, "g", sector, essential).priority

    assert prio("other", essential=True) > prio("water") == prio("health") > prio("food") > prio("energy")
    assert prio("energy") > prio("other")
    assert set(SECTOR_PRIORITY) == set(GOOD_SECTORS)


def test_every_constraint_is_named_after_what_it_limits() -> None:
    data = AllocationInput([place(1, 0), place(2, 5)], [RICE], [Holding(1, 1, 10), Holding(2, 1, 0, 5, 10)])
    problem, v = build_allocation_model(data)
    assert {c.name for c in problem.constraints()} == {"supply_1_1", "demand_2_1", "fair_2_1", "held_2_1"}
    assert [x.name for x in v.flows] == ["x_1_2_1"] and [z.name for z in v.shortfall.values()] == [
        "shortfall_0"
    ]


def test_solver_outcome_is_checked_not_trusted() -> None:
    problem = pulp.LpProblem("infeasible", pulp.LpMaximize)
    x = problem.add_variable("x", lowBound=0.0, upBound=1.0)
    at_least_two = pulp.LpConstraint(pulp.LpAffineExpression([(x, 1.0)]), pulp.LpConstraintGE, rhs=2)
    problem.addConstraint(at_least_two, "x_min")
    problem.setObjective(pulp.LpAffineExpression([(x, 1.0)]))
    with pytest.raises(PlanningError, match="Infeasible") as info:
        solve_optimal(problem, make_cbc(5), "stage")
    assert info.value.stage == "stage"


@pytest.mark.parametrize(
    ("status", "sol_status", "reported"),
    [
        # CBC's "Stopped on time - objective value ..." comes back from PuLP as Optimal + a feasible solution.
        (pulp.LpStatusOptimal, pulp.LpSolutionIntegerFeasible, "Stopped"),
        (pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound, "Not Solved"),
        (pulp.LpStatusInfeasible, pulp.LpSolutionInfeasible, "Infeasible"),
        (pulp.LpStatusUnbounded, pulp.LpSolutionUnbounded, "Unbounded"),
    ],
)
def test_anything_but_a_proven_optimum_raises(status: int, sol_status: int, reported: str) -> None:
    with pytest.raises(PlanningError) as info:
        check_outcome(status, sol_status, "fairness")
    assert info.value.status == reported


def test_synthetic_flows_keep_every_limit() -> None:
    data = synthetic_input(60, seed=2)  # seed 1: worst-off first leaves nobody for the sharing pass
    plan = solve_flows(data)
    net = build_network(data)
    lanes = {(lane.from_place, lane.to_place, lane.good_id): lane for lane in net.lanes}
    goods = {g.id: g for g in data.goods}
    holdings = {(h.place_id, h.good_id): h for h in data.holdings}
    given: dict[tuple[int, int], float] = defaultdict(float)
    received: dict[tuple[int, int], float] = defaultdict(float)
    shared = 0
    for s in plan.shipments:
        if (s.from_place, s.to_place, s.good_id) not in lanes:  # shared from spare stock: essential only
            shared += 1
            assert goods[s.good_id].essential and holdings[s.to_place, s.good_id].shared_need() > 0
        given[s.from_place, s.good_id] += s.quantity
        received[s.to_place, s.good_id] += s.quantity
    assert shared, "the synthetic instance has shortages that only sharing can reach"
    for key, quantity in given.items():
        assert quantity <= net.supply.get(key, 0.0) + holdings[key].spare(data.share_margin) + 1e-9
    for key, quantity in received.items():
        assert quantity <= net.demand[key] + 1e-9
    for s in plan.shipments:
        hours = goods[s.good_id].perishability_hours
        assert hours is None or s.distance_km / data.speed_kmh <= hours
    for coverage in plan.coverage.values():
        assert 0.0 <= coverage <= 1.0
    assert plan.rounds >= 2, "worst-off first: more than one round of filling"
    assert plan == solve_flows(data), "the same input must give the same plan"


ARGS: dict[str, Any] = {"places": [place(1, 0)], "goods": [RICE], "holdings": []}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Holding(1, 1, stock=-1), "negative stock"),
        (lambda: Holding(1, 1, stock=1, minimum=-1, target=0), "negative minimum"),
        (lambda: Holding(1, 1, stock=1, minimum=5, target=4), "minimum 5 > target 4"),
        (lambda: Holding(1, 1, stock=math.nan), "finite"),
        (lambda: Place(1, "x", 91.0, 0.0), "out of range"),
        (lambda: GoodInfo(1, "x", "toys"), "unknown sector"),
        (lambda: GoodInfo(1, "x", "food", perishability_hours=0), "perishability_hours"),
        (lambda: GoodInfo(1, "x", "food", weight_kg_per_unit=-1), "weight"),
        (lambda: AllocationInput(**{**ARGS, "holdings": [Holding(7, 1, 1)]}), "unknown place 7"),
        (lambda: AllocationInput(**{**ARGS, "holdings": [Holding(1, 7, 1)]}), "unknown good 7"),
        (lambda: AllocationInput(**{**ARGS, "holdings": [Holding(1, 1, 1)] * 2}), "duplicate holding"),
        (lambda: AllocationInput(**{**ARGS, "places": [place(1, 0), place(1, 5)]}), "duplicate place"),
        (lambda: AllocationInput(**{**ARGS, "goods": [RICE, RICE]}), "duplicate good"),
        (lambda: AllocationInput(**ARGS, max_neighbours=0), "max_neighbours"),
        (lambda: AllocationInput(**ARGS, detour_factor=0.9), "detour_factor"),
        (lambda: AllocationInput(**ARGS, speed_kmh=0), "speed_kmh"),
        (lambda: AllocationInput(**ARGS, reserve_fraction=1.5), "reserve_fraction"),
        (lambda: AllocationInput(**ARGS, speed_kmh=math.inf), "finite"),
        (lambda: AllocationInput(**ARGS, min_load_kg=-1), "min_load_kg"),
        (lambda: AllocationInput(**ARGS, load_kg_per_km=math.nan), "finite"),
    ],
)
def test_invalid_input_is_rejected_at_construction(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_non_positive_time_limit_is_rejected() -> None:
    data = AllocationInput([place(1, 0), place(2, 5)], [RICE], [Holding(1, 1, 10), Holding(2, 1, 0, 5, 10)])
    with pytest.raises(ValueError, match="time limit"):
        solve_allocation(data, time_limit_s=0)


def test_the_allocation_limit_grows_with_the_region() -> None:
    """A 2,000-community region is many LP rounds: 30 s would fail every run of it, so it gets 200 s."""
    from logistics.service import allocation_limit_s

    assert allocation_limit_s(30.0, 78) == 30.0
    assert allocation_limit_s(30.0, 2000) == pytest.approx(200.0)
    assert allocation_limit_s(500.0, 2000) == 500.0
