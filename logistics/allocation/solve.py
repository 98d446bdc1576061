"""Surplus allocation: share what some communities can spare with those below their minimum, worst-off first.

Per pass, LP rounds over one sparse model (logistics.allocation.fairness): every short community rises
towards its minimum, the worst weighted share first (lexicographic max-min; more people and a longer time
short weigh more); those that reach it rise on towards their target the same way; then the cheapest lanes
(units x km) deliver those shares. A second pass of the same model then lets communities still below their
minimum of an essential good draw on what neighbours can spare below their target, up to the safety level
the givers keep (network.build_network's `sharing`). The flows then become lots people can carry: whole
units, each worth its trip (logistics.allocation.lots). See docs/planning.md.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from gateway.contract.errors import InvalidInput
from logistics.allocation.data import AllocationInput, AllocationPlan, PlannedShipment
from logistics.allocation.fairness import Filling, fill, hold_cost, need_weight
from logistics.allocation.lots import merged, whole_lots
from logistics.allocation.model import Need, build_allocation_model, parts
from logistics.allocation.network import QUANTITY_EPS, Network, build_network

log = logging.getLogger(__name__)

NO_SHORTAGE: Final = "NoShortage"  # nobody is below a minimum: an empty plan, not an error
NO_LANE: Final = "NoLane"  # shortages exist but no surplus can reach them in time
SIGNIFICANT_DIGITS: Final = 6  # quantities are reported to this precision, which hides the solver's tolerance


def solve_allocation(data: AllocationInput, time_limit_s: float = 30.0) -> AllocationPlan:
    """Solve both passes within about `time_limit_s` (wall clock) and make the flows lots people carry
    (`in_lots`); the plan, or PlanningError."""
    return in_lots(data, solve_flows(data, time_limit_s))


def solve_flows(data: AllocationInput, time_limit_s: float = 30.0) -> AllocationPlan:
    """The LP optimum itself, in fractions of a unit: both passes (benchmarks and tests of the model use it;
    the planner stores `solve_allocation`'s lots)."""
    if not time_limit_s > 0:
        raise InvalidInput(f"time limit must be a positive number of seconds, got {time_limit_s}")
    started = time.perf_counter()
    deadline = started + time_limit_s
    effort = _Effort()
    net = build_network(data)
    shipments, status, objective = _solve_pass(data, net, effort, deadline)
    reachable = {(lane.to_place, lane.good_id) for lane in net.lanes}
    budget = dict(net.supply)
    after = _after(data, shipments)
    shared = build_network(after, sharing=True, received={(s.to_place, s.good_id) for s in shipments})
    if shared.lanes:
        more, more_status, more_objective = _solve_pass(after, shared, effort, deadline)
        shipments = _merged(shipments + more)
        status = more_status if status in (NO_SHORTAGE, NO_LANE) else status
        objective += more_objective
        reachable |= {(lane.to_place, lane.good_id) for lane in shared.lanes}
        for key, spare in shared.supply.items():
            budget[key] = budget.get(key, 0.0) + spare
    shipments = _within(shipments, budget)
    unreachable = tuple(key for key in net.demand if key not in reachable)
    holdings = {(h.place_id, h.good_id): h for h in data.holdings}
    above = {key: max(0.0, holdings[key].stock - holdings[key].minimum) for key in budget}
    plan = _plan(shipments, net, status, objective, unreachable, budget, above)
    return replace(
        plan,
        rounds=effort.rounds,
        solve_time_s=time.perf_counter() - started,
        build_time_s=effort.build_s,
    )


def in_lots(data: AllocationInput, flows: AllocationPlan) -> AllocationPlan:
    """`flows` (solve_flows) as lots people carry: whole units within each giver's budget, each worth its
    trip (lots.whole_lots), with the coverage they give. The fair shares stay the LP's."""
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


@dataclass
class _Effort:
    """LP rounds and the time spent building models, over both passes."""

    rounds: int = 0
    build_s: float = 0.0


def _solve_pass(
    data: AllocationInput, net: Network, effort: _Effort, deadline: float
) -> tuple[tuple[PlannedShipment, ...], str, float]:
    """Worst-off first over one network: every shortage lifted towards its minimum (lexicographic max-min
    of weighted shares), those that reach it on towards their target, then the cheapest lanes that deliver
    those shares. Shipments, status and the cost objective (units x road km)."""
    if not net.demand:
        return (), NO_SHORTAGE, 0.0
    if not net.lanes:
        return (), NO_LANE, 0.0
    started = time.perf_counter()
    holdings = {(h.place_id, h.good_id): h for h in data.holdings}
    people = {p.id: p.people for p in data.places}
    weight = {key: need_weight(people[key[0]], holdings[key].short_hours) for key in net.demand}
    stock = {key: holdings[key].stock for key in net.demand}
    minimum = {
        key: Need(stock[key], min(holdings[key].minimum, stock[key] + need), weight[key])
        for key, need in net.demand.items()
    }
    effort.build_s += time.perf_counter() - started
    shipments: list[PlannedShipment] = []
    objective = 0.0
    for part in parts(net):  # independent: each part's rounds touch only its own lanes
        started = time.perf_counter()
        problem, v = build_allocation_model(data, part, {key: minimum[key] for key in part.demand})
        effort.build_s += time.perf_counter() - started
        filling = Filling.start(problem, v, deadline)
        try:
            full = fill(filling, minimum, "fairness")
            # Held at their minimum now: on towards the target (the safety level when sharing), alike.
            target = {key: Need(stock[key], stock[key] + net.demand[key], weight[key]) for key in full}
            fill(filling, target, "target")
            objective += hold_cost(filling)
        finally:
            effort.rounds += filling.rounds
            effort.build_s += filling.build_s
        shipments += _shipments(part, [_rounded(x.value()) for x in v.flows])
    return tuple(shipments), "Optimal", objective


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
    shipments = tuple(
        PlannedShipment(lane.from_place, lane.to_place, lane.good_id, quantity, lane.distance_km)
        for lane, quantity in zip(net.lanes, quantities, strict=True)
        if quantity >= QUANTITY_EPS
    )
    return _within(shipments, net.supply)


def _within(
    shipments: tuple[PlannedShipment, ...], budget: Mapping[tuple[int, int], float]
) -> tuple[PlannedShipment, ...]:
    """Rounding up may overshoot a giver's budget by millionths: its largest shipment gives that back."""
    used: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, s in enumerate(shipments):
        used[s.from_place, s.good_id].append(i)
    out = list(shipments)
    for key, indices in used.items():
        if (excess := sum(out[i].quantity for i in indices) - budget[key]) > 0.0:
            largest = max(indices, key=lambda i: out[i].quantity)
            out[largest] = replace(out[largest], quantity=max(0.0, out[largest].quantity - excess))
    return tuple(s for s in out if s.quantity >= QUANTITY_EPS)


def _rounded(value: float | None) -> float:
    """A shipped quantity to SIGNIFICANT_DIGITS: 4.9999996 is 5, and solver noise below QUANTITY_EPS is 0."""
    quantity = float(value or 0.0)
    return float(f"{quantity:.{SIGNIFICANT_DIGITS}g}") if quantity >= QUANTITY_EPS else 0.0


def _plan(
    shipments: tuple[PlannedShipment, ...],
    net: Network,
    status: str,
    objective: float,
    unreachable: tuple[tuple[int, int], ...],
    budget: dict[tuple[int, int], float],
    above_minimum: dict[tuple[int, int], float],
) -> AllocationPlan:
    delivered: dict[tuple[int, int], float] = defaultdict(float)
    for s in shipments:
        delivered[s.to_place, s.good_id] += s.quantity
    coverage = {key: round(min(1.0, delivered[key] / need), 6) for key, need in net.demand.items()}
    plan = AllocationPlan(
        shipments=shipments,
        coverage=coverage,
        min_coverage=min(coverage.values(), default=1.0),
        status=status,
        objective=round(objective, 9),
        fair_share=_fair_share(coverage, unreachable),
        unreachable=unreachable,
        budget=dict(sorted(budget.items())),
        above_minimum=dict(sorted(above_minimum.items())),
    )
    log.debug(
        "allocation %s: %s shipments to %s places, min coverage %s, %s unreachable",
        status,
        len(shipments),
        len(plan.receivers),
        round(plan.min_coverage, 3),
        len(unreachable),
    )
    return plan


def _fair_share(
    coverage: dict[tuple[int, int], float], unreachable: tuple[tuple[int, int], ...]
) -> dict[int, float]:
    """Good -> the lowest coverage among its reachable shortages: nobody the plan reaches gets less."""
    left_out = set(unreachable)
    share: dict[int, float] = {}
    for (place, good), value in coverage.items():
        if (place, good) not in left_out:
            share[good] = min(share.get(good, 1.0), value)
    return dict(sorted(share.items()))
