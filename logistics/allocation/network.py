"""Who can give, who is short, and the sparse set of lanes between them that the model may use."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Final

import numpy as np

from logistics.allocation.data import AllocationInput
from logistics.common.geo import distance_matrix_km, mutual_nearest_mask

QUANTITY_EPS: Final = 1e-6  # below this a surplus or a shortage is noise, not something to ship


@dataclass(frozen=True)
class Lane:
    """A possible shipment of one good from a supplier to a community short of it."""

    from_place: int
    to_place: int
    good_id: int
    distance_km: float  # great-circle km times the detour factor


@dataclass(frozen=True)
class Network:
    """Supplies, shortages and lanes of one problem, in a deterministic order."""

    supply: Mapping[tuple[int, int], float]  # (place, good) -> quantity that can be given, > 0
    demand: Mapping[tuple[int, int], float]  # (place, good) -> shortage up to the target, > 0
    lanes: tuple[Lane, ...]


def build_network(
    data: AllocationInput, sharing: bool = False, received: Set[tuple[int, int]] = frozenset()
) -> Network:
    """Keep, per good, each supplier's and demander's nearest partners that the good survives reaching.

    With `sharing`, the network of the second pass instead: for essential goods only, what communities can
    spare below their target (Holding.spare) offered to those still below their minimum, up to the same
    safety level (Holding.shared_need): a giver is never left short and no receiver is topped up to its
    target from a neighbour's own stock.
    Holdings in `received` (place, good) just got the first pass's goods and give none of them on.
    """
    supply: dict[tuple[int, int], float] = {}
    demand: dict[tuple[int, int], float] = {}
    essential = {g.id for g in data.goods if g.essential}
    for h in sorted(data.holdings, key=lambda h: (h.good_id, h.place_id)):
        if sharing:
            if h.good_id not in essential:
                continue
            key = (h.place_id, h.good_id)
            give = 0.0 if key in received else h.spare(data.share_margin)
            take = h.shared_need(data.share_margin)
        else:
            give, take = h.supply(data.reserve_fraction), h.demand
        if give > QUANTITY_EPS:
            supply[(h.place_id, h.good_id)] = give
        elif take > QUANTITY_EPS:
            demand[(h.place_id, h.good_id)] = take
    places = {p.id: p for p in data.places}
    lanes: list[Lane] = []
    for good in sorted(data.goods, key=lambda g: g.id):
        givers = [p for (p, g) in supply if g == good.id]
        takers = [p for (p, g) in demand if g == good.id]
        if not givers or not takers:
            continue
        dist = data.detour_factor * distance_matrix_km(
            [places[p].lat for p in givers],
            [places[p].lon for p in givers],
            [places[p].lat for p in takers],
            [places[p].lon for p in takers],
        )
        mask = mutual_nearest_mask(dist, data.max_neighbours)
        if good.perishability_hours is not None:
            mask &= dist <= good.perishability_hours * data.speed_kmh
        for i, j in zip(*np.nonzero(mask), strict=True):
            lanes.append(Lane(givers[i], takers[j], good.id, round(float(dist[i, j]), 3)))
    return Network(supply=supply, demand=demand, lanes=tuple(lanes))
