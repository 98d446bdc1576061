"""The allocation LP over the sparse network, built once per pass; logistics.allocation.fairness changes its
bounds between the rounds of the worst-off-first filling.

Rows are named (`supply_{place}_{good}`, `demand_…`, `fair_…`, `held_…`) so an infeasible model can be
explained. Lanes fall into components (per good, givers and takers linked by lanes): nothing ties two
components together, so each has its own worst weighted shortfall and reaches its own level.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import pulp

from logistics.allocation.data import AllocationInput
from logistics.allocation.network import Lane, Network, build_network

PART_LANES: Final = 4000  # small components are solved together up to this many lanes

Key = tuple[int, int]  # (place, good)


@dataclass(frozen=True)
class Need:
    """One shortage in one stage of the filling: lifted from `stock` towards `level`, weighted (>= 1)."""

    stock: float
    level: float  # the minimum in stage 1; the target (the safety level when sharing) in stage 2
    weight: float  # more people and longer short weigh more (fairness.need_weight)

    @property
    def gap(self) -> float:
        """What it takes to reach the level."""
        return self.level - self.stock


@dataclass(frozen=True)
class AllocationVars:
    """The model's variables and rows, aligned with the network they were built from."""

    network: Network
    flows: tuple[pulp.LpVariable, ...]  # one per lane, same order
    component: Mapping[Key, int]  # reachable shortage -> its component
    shortfall: Mapping[int, pulp.LpVariable]  # component -> worst weighted shortfall of its free shortages
    fair: Mapping[Key, pulp.LpConstraint]  # inflow + level / weight x shortfall >= level - stock
    held: Mapping[Key, pulp.LpConstraint]  # inflow + give >= the share it is held at (0 until then)
    give: Mapping[Key, pulp.LpVariable]  # what a held share may fall short by, at a price (solver noise)
    inflow: Mapping[Key, pulp.LpAffineExpression]  # the flows into each shortage
    penalty: float  # the price of a unit of `give`: more than any shortfall it could buy


def build_allocation_model(
    data: AllocationInput, net: Network | None = None, needs: Mapping[Key, Need] | None = None
) -> tuple[pulp.LpProblem, AllocationVars]:
    """The LP over the sparse network (by default the surplus one), set for the first round of the filling:
    every reachable shortage free, rising towards its `needs` level (by default its target, weighing 1).

    Per shortage, `fair_…` says weight x (1 - its share of the level) <= its component's shortfall, and
    `held_…` keeps what a round gave it, less `give_…` at a price no gain in shortfall can pay (so only
    the solver's last digits use it: a held share is exactly the level reached, never infeasible by 1e-9).
    The objective is the sum of the components' shortfalls and the price of what is given back."""
    net = net if net is not None else build_network(data)
    problem = pulp.LpProblem("allocation", pulp.LpMinimize)
    flows = tuple(
        problem.add_variable(
            f"x_{lane.from_place}_{lane.to_place}_{lane.good_id}",
            lowBound=0.0,
            upBound=min(net.supply[lane.from_place, lane.good_id], net.demand[lane.to_place, lane.good_id]),
        )
        for lane in net.lanes
    )
    component = _components(net)
    outgoing: dict[Key, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    incoming: dict[Key, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    for lane, x in zip(net.lanes, flows, strict=True):
        outgoing[lane.from_place, lane.good_id].append((x, 1.0))
        incoming[lane.to_place, lane.good_id].append((x, 1.0))
    for (place, good), terms in outgoing.items():
        problem.addConstraint(
            _row(terms, pulp.LpConstraintLE, net.supply[place, good], f"supply_{place}_{good}")
        )
    shortfall = {
        c: problem.add_variable(f"shortfall_{c}", lowBound=0.0) for c in sorted(set(component.values()))
    }
    if needs is None:
        needs = {key: Need(0.0, net.demand[key], 1.0) for key in incoming}
    fair: dict[Key, pulp.LpConstraint] = {}
    held: dict[Key, pulp.LpConstraint] = {}
    give: dict[Key, pulp.LpVariable] = {}
    for (place, good), terms in incoming.items():
        key, need = (place, good), needs[place, good]
        problem.addConstraint(_row(terms, pulp.LpConstraintLE, net.demand[key], f"demand_{place}_{good}"))
        z = (shortfall[component[key]], need.level / need.weight)
        give[key] = problem.add_variable(f"give_{place}_{good}", lowBound=0.0)
        fair[key] = _row([*terms, z], pulp.LpConstraintGE, need.gap, f"fair_{place}_{good}")
        held[key] = _row([*terms, (give[key], 1.0)], pulp.LpConstraintGE, 0.0, f"held_{place}_{good}")
        problem.addConstraint(fair[key])
        problem.addConstraint(held[key])
    # A unit given back lowers a shortfall by at most weight / level: priced a thousand times higher.
    penalty = 1000.0 * max((n.weight / n.level for n in needs.values() if n.level > 0), default=1.0)
    objective = [(z, 1.0) for z in shortfall.values()] + [(g, penalty) for g in give.values()]
    problem.setObjective(pulp.LpAffineExpression(objective))
    v = AllocationVars(
        network=net,
        flows=flows,
        component={key: component[key] for key in incoming},
        shortfall=shortfall,
        fair=fair,
        held=held,
        give=give,
        inflow={key: pulp.LpAffineExpression(terms) for key, terms in incoming.items()},
        penalty=penalty,
    )
    return problem, v


def parts(net: Network, max_lanes: int = PART_LANES) -> list[Network]:
    """The network cut into independent parts: whole components, the small ones packed together up to
    `max_lanes` lanes. Solved apart, a round of one part never prices the lanes of the others."""
    component = _components(net)
    lanes: dict[int, list[Lane]] = defaultdict(list)
    for lane in net.lanes:
        lanes[component[lane.to_place, lane.good_id]].append(lane)
    out: list[list[Lane]] = []
    for c in sorted(lanes, key=lambda c: -len(lanes[c])):
        if out and len(out[-1]) + len(lanes[c]) <= max_lanes:
            out[-1].extend(lanes[c])
        else:
            out.append(list(lanes[c]))
    position = {lane: i for i, lane in enumerate(net.lanes)}
    networks = []
    for group in out:
        order = sorted(group, key=position.__getitem__)
        givers = {(lane.from_place, lane.good_id) for lane in order}
        takers = {(lane.to_place, lane.good_id) for lane in order}
        networks.append(
            Network(
                supply={k: q for k, q in net.supply.items() if k in givers},
                demand={k: q for k, q in net.demand.items() if k in takers},
                lanes=tuple(order),
            )
        )
    return networks


def _row(terms: list[tuple[pulp.LpVariable, float]], sense: int, rhs: float, name: str) -> pulp.LpConstraint:
    return pulp.LpConstraint(pulp.LpAffineExpression(terms), sense, name=name, rhs=rhs)


def _components(net: Network) -> dict[Key, int]:
    """(place, good) of every giver and taker with a lane -> its component, numbered from 0 in lane order."""
    parent: dict[Key, Key] = {}

    def root(key: Key) -> Key:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for lane in net.lanes:
        a, b = root((lane.from_place, lane.good_id)), root((lane.to_place, lane.good_id))
        if a != b:
            parent[b] = a
    numbers: dict[Key, int] = {}
    return {key: numbers.setdefault(root(key), len(numbers)) for key in list(parent)}
