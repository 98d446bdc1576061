"""Shipments a person would carry: whole units, a load worth the trip, whole vehicle loads, and a lane's
quantity left alone when a re-plan changes it too little to tell (logistics.allocation.lots)."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logistics.allocation import (
    AllocationInput,
    GoodInfo,
    Holding,
    Place,
    PlannedShipment,
    in_lots,
    solve_allocation,
    solve_flows,
)
from logistics.allocation.lots import (
    HYSTERESIS_FRACTION,
    HYSTERESIS_MAX_KG,
    LOAD_KG_PER_KM,
    MIN_LOAD_KG,
    min_load_kg,
    revise_lanes,
    small_change,
    split_loads,
    whole_lots,
    worth_the_trip,
)

INSULIN = GoodInfo(1, "insulin", "health", essential=True, weight_kg_per_unit=0.02)
BEANS = GoodInfo(2, "dry-beans", "food", essential=True)
COFFEE = GoodInfo(3, "coffee", "food")
GOODS = {g.id: g for g in (INSULIN, BEANS, COFFEE)}
EPS = 1e-6


def lot(giver: int, receiver: int, good: GoodInfo, quantity: float, km: float = 10.0) -> PlannedShipment:
    return PlannedShipment(giver, receiver, good.id, quantity, km)


def check_lots(
    lots: Sequence[PlannedShipment],
    flows: Sequence[PlannedShipment],
    goods: Mapping[int, GoodInfo],
    budget: Mapping[tuple[int, int], float],
    holdings: Mapping[tuple[int, int], Holding],
    min_kg: float = MIN_LOAD_KG,
    kg_per_km: float = LOAD_KG_PER_KM,
) -> None:
    """Every rule a stored shipment keeps, checked from the outside."""
    lanes = [(s.from_place, s.to_place, s.good_id) for s in lots]
    assert len(lanes) == len(set(lanes)), "one shipment per lane"
    wanted: dict[tuple[int, int, int], float] = defaultdict(float)
    for s in flows:
        wanted[s.from_place, s.to_place, s.good_id] += s.quantity
    given_out: dict[tuple[int, int], float] = defaultdict(float)
    for s in lots:
        assert s.quantity >= 1 and s.quantity == int(s.quantity), s
        given_out[s.from_place, s.good_id] += s.quantity
        flow = wanted[s.from_place, s.to_place, s.good_id]
        assert s.quantity <= flow + 1 + EPS, "at most one unit more than the flow"
        if s.quantity > flow + EPS:
            assert goods[s.good_id].essential, "only an essential good is rounded up"
        good = goods[s.good_id]
        if good.weight_kg_per_unit > 0 and s.quantity * good.weight_kg_per_unit < (
            min_load_kg(s.distance_km, min_kg, kg_per_km) - EPS
        ):
            h = holdings[s.to_place, s.good_id]
            larger = sum(
                o.quantity
                for o in lots
                if (o.to_place, o.good_id) == (s.to_place, s.good_id) and o.quantity > s.quantity
            )
            assert good.essential and h.stock + larger < h.minimum, f"{s} is lighter than its trip is worth"
    for key, quantity in given_out.items():
        assert quantity <= budget.get(key, 0.0) + EPS, f"giver {key} asked for more than it can give"


def test_fractions_become_whole_units_rounded_down() -> None:
    holdings = {(9, 1): Holding(9, 1, 30, 10, 40)}  # not short: nothing is rounded up
    lots = whole_lots([lot(1, 9, INSULIN, 16.2349)], GOODS, {(1, 1): 17.0}, holdings, 0.0, 0.0)
    assert [s.quantity for s in lots] == [16.0]


def test_scarce_insulin_goes_as_whole_vials_to_some_rather_than_slivers_to_all() -> None:
    """Three spare vials shared by ten clinics below their minimum: a vial each for three of them."""
    flows = [lot(1, clinic, INSULIN, 0.3, km=5.0 + clinic) for clinic in range(10, 20)]
    holdings = {(clinic, 1): Holding(clinic, 1, 0, 4, 10) for clinic in range(10, 20)}
    lots = whole_lots(flows, GOODS, {(1, 1): 3.0}, holdings)
    assert [(s.to_place, s.quantity) for s in lots] == [(10, 1.0), (11, 1.0), (12, 1.0)]  # the nearest
    check_lots(lots, flows, GOODS, {(1, 1): 3.0}, holdings)


def test_a_sliver_over_a_long_road_is_not_worth_the_trip() -> None:
    """The 10 g of beans driven 249 km from Culebra: the receiver gets enough from nearby."""
    flows = [
        lot(1, 9, BEANS, 40.0, km=20.0),
        lot(2, 9, BEANS, 0.01, km=249.0),
        lot(3, 9, COFFEE, 12.0, km=249.0),
    ]
    holdings = {(9, 2): Holding(9, 2, 0, 30, 60), (9, 3): Holding(9, 3, 0, 5, 20)}
    budget = {(1, 2): 40.0, (2, 2): 50.0, (3, 3): 12.0}
    lots = whole_lots(flows, GOODS, budget, holdings)
    # No round-up for the beans (40 kg lift the receiver above its minimum of 30); 12 kg of coffee are
    # less than the 49.8 kg 249 km are worth.
    assert [(s.from_place, s.quantity) for s in lots] == [(1, 40.0)]


def test_an_essential_good_a_community_needs_goes_whatever_it_weighs() -> None:
    flows = [lot(1, 9, INSULIN, 3.0, km=120.0), lot(2, 9, COFFEE, 3.0, km=1.0)]
    holdings = {(9, 1): Holding(9, 1, 0, 4, 10), (9, 3): Holding(9, 3, 0, 4, 10)}
    lots = whole_lots(flows, GOODS, {(1, 1): 3.0, (2, 3): 3.0}, holdings)
    assert [(s.good_id, s.quantity) for s in lots] == [
        (1, 3.0)
    ]  # 60 g of insulin over 120 km; no 3 kg coffee
    assert worth_the_trip(1, INSULIN, 500.0, needed=True)
    assert not worth_the_trip(1, INSULIN, 500.0, needed=False)
    assert not worth_the_trip(0, INSULIN, 1.0, needed=True), "never less than a unit"


def test_the_minimum_load_grows_with_the_road() -> None:
    assert min_load_kg(10.0) == MIN_LOAD_KG == 5.0
    assert min_load_kg(249.0) == pytest.approx(49.8)
    assert worth_the_trip(10, COFFEE, 50.0, needed=False) and not worth_the_trip(
        9, COFFEE, 50.0, needed=False
    )


def test_two_passes_on_one_lane_travel_as_one_shipment() -> None:
    holdings = {(9, 2): Holding(9, 2, 0, 5, 20)}
    lots = whole_lots([lot(1, 9, BEANS, 6.6), lot(1, 9, BEANS, 3.6)], GOODS, {(1, 2): 10.2}, holdings)
    assert [s.quantity for s in lots] == [10.0]


@st.composite
def flows_and_needs(
    draw: st.DrawFn,
) -> tuple[list[PlannedShipment], dict[tuple[int, int], float], dict[tuple[int, int], Holding]]:
    """Random flows (as the LP gives them: within each giver's budget) and receivers' levels."""
    flows, budget, holdings = [], {}, {}
    for good in GOODS.values():
        givers = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4, unique=True))
        receivers = draw(st.lists(st.integers(10, 15), min_size=1, max_size=4, unique=True))
        for giver in givers:
            out = [
                lot(giver, r, good, draw(st.floats(0.0, 40.0)), draw(st.floats(0.5, 300.0)))
                for r in receivers
                if draw(st.booleans())
            ]
            flows += out
            budget[giver, good.id] = sum(s.quantity for s in out) + draw(st.floats(0.0, 3.0))
        for r in receivers:
            minimum = draw(st.floats(0.0, 50.0))
            holdings[r, good.id] = Holding(r, good.id, draw(st.floats(0.0, 60.0)), minimum, minimum * 2)
    return flows, budget, holdings


@settings(max_examples=300, deadline=None)
@given(flows_and_needs())
def test_lots_are_whole_worth_the_trip_and_within_supply(
    case: tuple[list[PlannedShipment], dict[tuple[int, int], float], dict[tuple[int, int], Holding]],
) -> None:
    flows, budget, holdings = case
    lots = whole_lots(flows, GOODS, budget, holdings)
    check_lots(lots, flows, GOODS, budget, holdings)


@pytest.mark.parametrize("seed", range(12))
def test_solved_plans_keep_the_lot_rules(seed: int) -> None:
    """Random small regions (fixed seeds) through the whole solve: every stored shipment keeps the rules."""
    rng = random.Random(seed)
    places = [
        Place(i, f"p{i}", 18.0 + rng.uniform(0, 0.5), -66.0 - rng.uniform(0, 1.5)) for i in range(1, 16)
    ]
    holdings = []
    for p in places:
        for good in GOODS.values():
            minimum = rng.choice([0.0, 5.0, 20.0, 100.0])
            holdings.append(Holding(p.id, good.id, rng.uniform(0, 250), minimum, minimum * rng.uniform(1, 3)))
    data = AllocationInput(places, list(GOODS.values()), holdings)
    flows = solve_flows(data, time_limit_s=20)
    plan = in_lots(data, flows)
    assert plan == solve_allocation(data, time_limit_s=20)
    levels = {(h.place_id, h.good_id): h for h in data.holdings}
    assert plan.budget, "the plan says what each giver can give"
    assert any(s.quantity != int(s.quantity) for s in flows.shipments), "the LP gave fractions to round"
    check_lots(plan.shipments, flows.shipments, GOODS, plan.budget, levels)
    for key, coverage in plan.coverage.items():
        delivered = sum(s.quantity for s in plan.shipments if (s.to_place, s.good_id) == key)
        assert coverage == pytest.approx(min(1.0, delivered / levels[key].demand), abs=1e-6)


@given(st.integers(1, 5000), st.floats(0.0, 50.0), st.one_of(st.none(), st.floats(0.5, 2000.0)))
def test_vehicle_loads_are_whole_near_equal_and_fit(units: int, weight: float, load_kg: float | None) -> None:
    loads = split_loads(units, weight, load_kg)
    assert sum(loads) == units and all(isinstance(n, int) and n >= 1 for n in loads)
    assert max(loads) - min(loads) <= 1
    if load_kg is not None and weight > 0:
        assert all(n == 1 or n * weight <= load_kg + EPS for n in loads), "each load fits, or is one unit"
        if len(loads) > 1 and weight <= load_kg:
            assert math.ceil(units / (len(loads) - 1)) * weight > load_kg - EPS, "no fewer loads would do"


def test_the_tiny_region_water_goes_in_four_van_loads() -> None:
    assert split_loads(2500, 1.0, 800.0) == [625] * 4
    assert split_loads(35, 2.0, 30.0) == [12, 12, 11]


LANE = (1, 100, 200)  # good 1 from site 100 to site 200
OTHER = (1, 100, 300)


@pytest.mark.parametrize(
    ("held", "wanted", "kept"),
    [
        (100, 100, True),
        (100, 120, True),  # 20 % and 20 kg more: too little to tell
        (100, 125, True),
        (100, 126, False),  # beyond 25 %
        (100, 75, True),  # 25 % less (the giver's budget holds the 100)
        (1000, 1150, False),  # 15 %, but 150 kg: another vehicle, perhaps
        (1000, 1100, True),
        (2, 3, False),  # a unit more on two is half as much again
    ],
)
def test_a_small_change_leaves_the_lane_as_it_is(held: int, wanted: int, kept: bool) -> None:
    revision = revise_lanes({LANE: [float(held)]}, {LANE: wanted}, {1: 1.0}, None, {(1, 100): 5000.0})
    assert (revision.keep == (LANE,)) is kept and revision.unchanged is kept
    if not kept:
        assert revision.revise == {LANE: (wanted,)}
    assert small_change(held, wanted, 1.0) is kept
    assert HYSTERESIS_FRACTION == 0.25 and HYSTERESIS_MAX_KG == 100.0


def test_lanes_no_longer_wanted_are_cancelled_and_new_ones_added() -> None:
    revision = revise_lanes({LANE: [40.0]}, {OTHER: 30}, {1: 1.0}, None, {(1, 100): 30.0})
    assert (revision.keep, revision.cancel, dict(revision.add)) == ((), (LANE,), {OTHER: (30,)})


def test_a_kept_lane_never_asks_the_giver_for_more_than_it_has() -> None:
    """The giver has less now: keeping the stored 100 and 90 (each within 25 %) would ask 190 of 185."""
    held = {LANE: [100.0], OTHER: [90.0]}
    revision = revise_lanes(held, {LANE: 90, OTHER: 80}, {1: 1.0}, None, {(1, 100): 185.0})
    assert revision.keep == (OTHER,) and revision.revise == {LANE: (90,)}  # 90 + 90 fit
    revision = revise_lanes(held, {LANE: 90, OTHER: 80}, {1: 1.0}, None, {(1, 100): 170.0})
    assert revision.keep == () and set(revision.revise) == {LANE, OTHER}  # only the new plan's 170 fit


def test_loads_that_no_longer_fit_the_vehicles_are_split_again() -> None:
    revision = revise_lanes({LANE: [1000.0]}, {LANE: 1000}, {1: 1.0}, 400.0, {(1, 100): 1000.0})
    assert revision.revise == {LANE: (334, 333, 333)}
