"""The allocation LP over the sparse network: a flow per lane, a coverage floor per good, both objectives.

Rows are named (`supply_{place}_{good}`, `demand_…`, `fair_…`) so an infeasible model can be explained.
Stage 1 maximises the priority-weighted floors (fairness); stage 2 the coverage delivered, less a little for
the distance (efficiency). `solve.py` runs the stages; this module only builds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final

import pulp

from logistics.allocation.data import AllocationInput, GoodInfo
from logistics.allocation.network import Lane, Network, build_network

DISTANCE_WEIGHT: Final = 0.01  # the longest lane loses 1% of the coverage it delivers


@dataclass(frozen=True)
class AllocationVars:
    """The model's variables and both objectives, aligned with the network they were built from."""

    network: Network
    flows: tuple[pulp.LpVariable, ...]  # one per lane, same order
    floors: dict[int, pulp.LpVariable]  # good -> coverage every reachable shortage of it gets
    fairness: pulp.LpAffineExpression  # stage 1 objective
    efficiency: pulp.LpAffineExpression  # stage 2 objective


def build_allocation_model(
    data: AllocationInput, net: Network | None = None
) -> tuple[pulp.LpProblem, AllocationVars]:
    """The LP over the sparse network (by default the surplus one), its objective set to stage 1."""
    net = net if net is not None else build_network(data)
    goods = {g.id: g for g in data.goods}
    problem = pulp.LpProblem("allocation", pulp.LpMaximize)
    flows = tuple(
        problem.add_variable(
            f"x_{lane.from_place}_{lane.to_place}_{lane.good_id}",
            lowBound=0.0,
            upBound=min(net.supply[lane.from_place, lane.good_id], net.demand[lane.to_place, lane.good_id]),
        )
        for lane in net.lanes
    )
    outgoing: dict[tuple[int, int], list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    incoming: dict[tuple[int, int], list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    for lane, x in zip(net.lanes, flows, strict=True):
        outgoing[lane.from_place, lane.good_id].append((x, 1.0))
        incoming[lane.to_place, lane.good_id].append((x, 1.0))
    short_goods = sorted({g for _, g in incoming})
    floors = {g: problem.add_variable(f"floor_{g}", lowBound=0.0, upBound=1.0) for g in short_goods}
    for (place, good), terms in outgoing.items():
        _add(problem, terms, pulp.LpConstraintLE, net.supply[place, good], f"supply_{place}_{good}")
    for (place, good), terms in incoming.items():
        need = net.demand[place, good]
        _add(problem, terms, pulp.LpConstraintLE, need, f"demand_{place}_{good}")
        # delivered >= floor * demand, i.e. coverage >= floor, written without dividing by the demand.
        _add(problem, [*terms, (floors[good], -need)], pulp.LpConstraintGE, 0.0, f"fair_{place}_{good}")
    fairness = pulp.LpAffineExpression([(t, goods[g].priority) for g, t in floors.items()])
    longest = max((lane.distance_km for lane in net.lanes), default=0.0) or 1.0
    efficiency = pulp.LpAffineExpression(
        [
            (x, _coverage_value(lane, goods[lane.good_id], net, longest))
            for lane, x in zip(net.lanes, flows, strict=True)
        ]
    )
    problem.setObjective(fairness)
    return problem, AllocationVars(net, flows, floors, fairness, efficiency)


def _add(
    problem: pulp.LpProblem, terms: list[tuple[pulp.LpVariable, float]], sense: int, rhs: float, name: str
) -> None:
    problem.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(terms), sense, rhs=rhs), name)


def _coverage_value(lane: Lane, good: GoodInfo, net: Network, longest: float) -> float:
    """Stage 2 value of one unit on a lane: the coverage it adds, less a little for the distance."""
    per_unit = good.priority / net.demand[lane.to_place, lane.good_id]
    return per_unit * (1.0 - DISTANCE_WEIGHT * lane.distance_km / longest)
