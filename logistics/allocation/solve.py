"""Surplus allocation: share what some communities can spare with those below their minimum, worst-off first.

Two LP solves over one model. Stage 1 maximises, per good, the coverage floor that every reachable shortage
gets (priority-weighted over goods). Stage 2 keeps those floors (less a tiny tolerance) and maximises
priority-weighted total coverage minus a small distance cost. A second pass of the same model then lets
communities still below their minimum of an essential good draw on what neighbours can spare below their
target, up to the safety level the givers keep (network.build_network's `sharing`). The flows then become
lots people can carry: whole units, each worth its trip (logistics.allocation.lots). See docs/planning.md.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import replace
from typing import Final

import pulp

from gateway.contract.errors import InvalidInput
from logistics.allocation.data import AllocationInput, AllocationPlan, PlannedShipment
from logistics.allocation.lots import merged, whole_lots
from logistics.allocation.model import build_allocation_model
from logistics.allocation.network import QUANTITY_EPS, Network, build_network
from logistics.common.solver import make_cbc, solve_optimal

log = logging.getLogger(__name__)

NO_SHORTAGE: Final = "NoShortage"  # nobody is below a minimum: an empty plan, not an error
NO_LANE: Final = "NoLane"  # shortages exist but no surplus can reach them in time
# Stage 2 may fall this far below stage 1's floor: CBC reports values to 8 significant digits.
FLOOR_TOLERANCE: Final = 1e-7
SIGNIFICANT_DIGITS: Final = 6  # quantities are reported to this precision, which hides the tolerance


def solve_allocation(data: AllocationInput, time_limit_s: float = 30.0) -> AllocationPlan:
    """Solve both stages of both passes within about `time_limit_s` (wall clock) and make the flows lots
    people carry (`in_lots`); the plan, or PlanningError."""
    return in_lots(data, solve_flows(data, time_limit_s))


def solve_flows(data: AllocationInput, time_limit_s: float = 30.0) -> AllocationPlan:
    """The LP optimum itself, in fractions of a unit: both stages of both passes (benchmarks and tests of
    the model use it; the planner stores `solve_allocation`'s lots)."""
    if not time_limit_s > 0:
        raise InvalidInput(f"time limit must be a positive number of seconds, got {time_limit_s}")
    started = time.perf_counter()
    net = build_network(data)
    shipments, status, objective, fair_share = _solve_pass(data, net, time_limit_s, started)
    reachable = {(lane.to_place, lane.good_id) for lane in net.lanes}
    budget = dict(net.supply)
    after = _after(data, shipments)
    shared = build_network(after, sharing=True, received={(s.to_place, s.good_id) for s in shipments})
    if shared.lanes:
        more, more_status, more_objective, _ = _solve_pass(after, shared, time_limit_s, started)
        shipments = _merged(shipments + more)
        status = more_status if status in (NO_SHORTAGE, NO_LANE) else status
        objective += more_objective
        reachable |= {(lane.to_place, lane.good_id) for lane in shared.lanes}
        for key, spare in shared.supply.items():
            budget[key] = budget.get(key, 0.0) + spare
    unreachable = tuple(key for key in net.demand if key not in reachable)
    holdings = {(h.place_id, h.good_id): h for h in data.holdings}
    above = {key: max(0.0, holdings[key].stock - holdings[key].minimum) for key in budget}
    return _plan(shipments, net, status, objective, fair_share, unreachable, started, budget, above)


def in_lots(data: AllocationInput, flows: AllocationPlan) -> AllocationPlan:
    """`flows` (solve_flows) as lots people carry: whole units within each giver's budget, each worth its
    trip (lots.whole_lots), with the coverage they give. The fair shares stay the LP's floors."""
    goods = {g.id: g for g in data.goods}
    holdings = {(h.place_id, h.good_id): h for h in data.holdings}
    shipments = whole_lots(
        flows.shipments, goods, flows.budget, holdings, data.min_load_kg, data.load_kg_per_km
    )
    delivered: dict[tuple[int, int], float] = defaultdict(float)
    for s in shipments:
        delivered[s.to_place, s.good_id] += s.quantity
    coverage = {key: round(min(1.0, delivered[key] / holdings[key].demand), 6) for key in flows.coverage}
    log.debug(
        "%s flows as %s lots (%s units), min coverage %s",
        len(flows.shipments),
        len(shipments),
        sum(s.quantity for s in shipments),
        round(min(coverage.values(), default=1.0), 3),
    )
    return replace(
        flows, shipments=shipments, coverage=coverage, min_coverage=min(coverage.values(), default=1.0)
    )


def _solve_pass(
    data: AllocationInput, net: Network, time_limit_s: float, started: float
) -> tuple[tuple[PlannedShipment, ...], str, float, dict[int, float]]:
    """Stage 1 and stage 2 over one network: shipments, status, objective and each good's floor."""
    if not net.demand:
        return (), NO_SHORTAGE, 0.0, {}
    if not net.lanes:
        return (), NO_LANE, 0.0, {}
    problem, v = build_allocation_model(data, net)
    remaining = time_limit_s - (time.perf_counter() - started)
    solve_optimal(problem, make_cbc(max(1.0, remaining)), "fairness")
    fair_share = {g: min(1.0, max(0.0, float(t.value() or 0.0))) for g, t in v.floors.items()}
    for g, t in v.floors.items():
        floor = max(0.0, fair_share[g] - FLOOR_TOLERANCE)
        problem.addConstraint(pulp.LpConstraint(t, pulp.LpConstraintGE, rhs=floor), f"floor_{g}")
    problem.setObjective(v.efficiency)
    remaining = time_limit_s - (time.perf_counter() - started)
    objective = solve_optimal(problem, make_cbc(max(1.0, remaining)), "efficiency")
    shipments = _shipments(net, [_rounded(x.value()) for x in v.flows])
    return shipments, pulp.LpStatus[problem.status], objective, fair_share


def _after(data: AllocationInput, shipments: tuple[PlannedShipment, ...]) -> AllocationInput:
    """The input as it stands once `shipments` have arrived: what the second pass shares from."""
    delta: dict[tuple[int, int], float] = defaultdict(float)
    for s in shipments:
        delta[s.from_place, s.good_id] -= s.quantity
        delta[s.to_place, s.good_id] += s.quantity
    holdings = [
        replace(h, stock=max(0.0, h.stock + delta[h.place_id, h.good_id]))
        if delta[h.place_id, h.good_id]
        else h
        for h in data.holdings
    ]
    return replace(data, holdings=holdings)


def _merged(shipments: tuple[PlannedShipment, ...]) -> tuple[PlannedShipment, ...]:
    """One shipment per (from, to, good): a pass's surplus and the other's spare travel together."""
    return tuple(replace(s, quantity=_rounded(s.quantity)) for s in merged(shipments))


def _shipments(net: Network, quantities: list[float]) -> tuple[PlannedShipment, ...]:
    """Shipments from rounded lane flows, never asking a supplier for more than its surplus."""
    used: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, lane in enumerate(net.lanes):
        if quantities[i] > 0.0:
            used[lane.from_place, lane.good_id].append(i)
    for key, lanes in used.items():
        # Rounding up may overshoot by a few millionths; the largest shipment gives that back.
        if (excess := sum(quantities[i] for i in lanes) - net.supply[key]) > 0.0:
            largest = max(lanes, key=quantities.__getitem__)
            quantities[largest] = max(0.0, quantities[largest] - excess)
    return tuple(
        PlannedShipment(lane.from_place, lane.to_place, lane.good_id, quantity, lane.distance_km)
        for lane, quantity in zip(net.lanes, quantities, strict=True)
        if quantity >= QUANTITY_EPS
    )


def _rounded(value: float | None) -> float:
    """A shipped quantity to SIGNIFICANT_DIGITS: 4.9999996 is 5, and solver noise below QUANTITY_EPS is 0."""
    quantity = float(value or 0.0)
    return float(f"{quantity:.{SIGNIFICANT_DIGITS}g}") if quantity >= QUANTITY_EPS else 0.0


def _plan(
    shipments: tuple[PlannedShipment, ...],
    net: Network,
    status: str,
    objective: float,
    fair_share: dict[int, float],
    unreachable: tuple[tuple[int, int], ...],
    started: float,
    budget: dict[tuple[int, int], float],
    above_minimum: dict[tuple[int, int], float],
) -> AllocationPlan:
    delivered: dict[tuple[int, int], float] = defaultdict(float)
    for s in shipments:
        delivered[s.to_place, s.good_id] += s.quantity
    coverage = {key: round(min(1.0, delivered[key] / need), 6) for key, need in net.demand.items()}
    elapsed = time.perf_counter() - started
    plan = AllocationPlan(
        shipments=shipments,
        coverage=coverage,
        min_coverage=min(coverage.values(), default=1.0),
        status=status,
        objective=round(objective, 9),
        fair_share=fair_share,
        unreachable=unreachable,
        budget=dict(sorted(budget.items())),
        above_minimum=dict(sorted(above_minimum.items())),
        solve_time_s=elapsed,
    )
    log.debug(
        "allocation %s: %s shipments to %s places, min coverage %s, %s unreachable, %s s",
        status,
        len(shipments),
        len(plan.receivers),
        round(plan.min_coverage, 3),
        len(unreachable),
        round(elapsed, 2),
    )
    return plan
