"""Shipments a person would carry: whole units, a load worth the trip, vehicle-sized loads, a stable plan.

The LP hands back fractions (16.2349 vials of insulin, 10 g of beans driven 249 km from Culebra, most
shipments of one plan under 0.1 unit). Here a plan's flows become lots people can load:

- whole units of the good (`Good.unit`), never more than the giver can give (`whole_lots`);
- at least a load worth the trip (`worth_the_trip`), unless a community below its minimum of an essential
  good needs it;
- split into loads the usual vehicle carries, in whole units (`split_loads`);
- and, between runs, a lane's quantity changes only when the change is worth telling people
  (`small_change`, `revise_lanes`).

Pure functions of plain values: no ORM, no solver.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # data.py takes its defaults from here
    from logistics.allocation.data import GoodInfo, Holding, PlannedShipment

# A load is worth its trip from max(MIN_LOAD_KG, LOAD_KG_PER_KM x road km) up (the per-km part binds beyond
# 25 km). 5 kg is a bag one person carries to a car; 0.2 kg/km asks 10 kg for a 50-km run and 50 kg for the
# 249 km from Culebra, so the fuel and the driver's hours (some 6 h there and back) move something worth
# them. A shipment rides along with others on a route, but each one adds two stops to it.
MIN_LOAD_KG: Final = 5.0
LOAD_KG_PER_KM: Final = 0.2
# A lane's stored quantity stays when the new plan differs from it by at most HYSTERESIS_FRACTION of it and
# at most HYSTERESIS_MAX_KG: the stock forecast drifts a little every run, and re-alerting a community for
# 3 kg more rice (or re-loading a van for it) helps nobody. 100 kg is about what two people lift into a car
# without thinking; beyond it the change may need another vehicle, so it is written and announced.
HYSTERESIS_FRACTION: Final = 0.25
HYSTERESIS_MAX_KG: Final = 100.0
UNIT_EPS: Final = 1e-6  # 4.9999996 units are 5: the solver's last digits are noise

LaneKey = tuple[int, int, int]  # (good, from site, to site): where a shipment goes, whatever its quantity


def whole_units(quantity: float) -> int:
    """The whole units in `quantity` (rounded down), forgiving the solver's last digits."""
    return max(0, math.floor(quantity + UNIT_EPS))


def min_load_kg(distance_km: float, min_kg: float = MIN_LOAD_KG, kg_per_km: float = LOAD_KG_PER_KM) -> float:
    """The lightest load worth a trip of `distance_km` road km."""
    return max(min_kg, kg_per_km * distance_km)


def worth_the_trip(
    units: int,
    good: GoodInfo,
    distance_km: float,
    needed: bool,
    min_kg: float = MIN_LOAD_KG,
    kg_per_km: float = LOAD_KG_PER_KM,
) -> bool:
    """Whether `units` of `good` over `distance_km` road km make a shipment.

    Always at least one unit. An essential good for a community that would stay below its minimum
    without it (`needed`) goes whatever it weighs: one vial of insulin weighs 20 g. So does a good of no
    recorded weight (0 kg per unit), which the kilogram rule cannot judge.
    """
    if units < 1:
        return False
    if (needed and good.essential) or good.weight_kg_per_unit <= 0:
        return True
    return units * good.weight_kg_per_unit >= min_load_kg(distance_km, min_kg, kg_per_km) - UNIT_EPS


def merged(shipments: Sequence[PlannedShipment]) -> tuple[PlannedShipment, ...]:
    """One shipment per (from, to, good), in first-seen order: two passes' goods on one lane travel as one."""
    lanes: dict[tuple[int, int, int], PlannedShipment] = {}
    for s in shipments:
        key = (s.from_place, s.to_place, s.good_id)
        lanes[key] = replace(s, quantity=lanes[key].quantity + s.quantity) if key in lanes else s
    return tuple(lanes.values())


def whole_lots(
    shipments: Sequence[PlannedShipment],
    goods: Mapping[int, GoodInfo],
    budget: Mapping[tuple[int, int], float],
    holdings: Mapping[tuple[int, int], Holding],
    min_kg: float = MIN_LOAD_KG,
    kg_per_km: float = LOAD_KG_PER_KM,
) -> tuple[PlannedShipment, ...]:
    """The shipments as lots: merged per lane, whole units, each worth its trip.

    Each quantity is rounded down, so no giver is asked for more than its `budget` ((place, good) -> what
    the plan may take from it). An essential good for a receiver still below its minimum after that may be
    rounded up by one unit, largest fraction first, while the giver's budget holds it: three vials shared by
    ten clinics at 0.3 each become one vial for three of them, not nothing for all. Then a lane lighter
    than its trip is worth (`worth_the_trip`) is dropped, unless it is an essential good the receiver needs
    to reach its minimum, counting the larger lanes to it first. `holdings` gives receivers' stock and
    minimum ((place, good)); a receiver without one counts as not short.
    """
    lanes = merged(shipments)
    units = [whole_units(s.quantity) for s in lanes]
    _round_up_for_the_short(lanes, units, goods, budget, holdings)
    kept = _worth_their_trips(lanes, units, goods, holdings, min_kg, kg_per_km)
    return tuple(replace(s, quantity=float(n)) for s, n, k in zip(lanes, units, kept, strict=True) if k)


def _short(holdings: Mapping[tuple[int, int], Holding], place: int, good: int, incoming: float) -> bool:
    """Whether `place` stays below its minimum of `good` with `incoming` more."""
    h = holdings.get((place, good))
    return h is not None and h.stock + incoming < h.minimum - UNIT_EPS


def _round_up_for_the_short(
    lanes: Sequence[PlannedShipment],
    units: list[int],
    goods: Mapping[int, GoodInfo],
    budget: Mapping[tuple[int, int], float],
    holdings: Mapping[tuple[int, int], Holding],
) -> None:
    """Add a unit (in `units`) to essential lanes whose receiver is still short, largest fraction (then
    nearest) first, while the giver's budget holds it."""
    given: dict[tuple[int, int], int] = defaultdict(int)
    received: dict[tuple[int, int], int] = defaultdict(int)
    for s, n in zip(lanes, units, strict=True):
        given[s.from_place, s.good_id] += n
        received[s.to_place, s.good_id] += n
    order = sorted(range(len(lanes)), key=lambda i: (units[i] - lanes[i].quantity, lanes[i].distance_km, i))
    for i in order:
        s = lanes[i]
        if s.quantity - units[i] <= UNIT_EPS or not goods[s.good_id].essential:
            continue
        giver, receiver = (s.from_place, s.good_id), (s.to_place, s.good_id)
        if (
            _short(holdings, *receiver, received[receiver])
            and given[giver] + 1 <= budget.get(giver, 0.0) + UNIT_EPS
        ):
            units[i] += 1
            given[giver] += 1
            received[receiver] += 1


def _worth_their_trips(
    lanes: Sequence[PlannedShipment],
    units: Sequence[int],
    goods: Mapping[int, GoodInfo],
    holdings: Mapping[tuple[int, int], Holding],
    min_kg: float,
    kg_per_km: float,
) -> list[bool]:
    """Which lanes to keep: each worth its trip, or needed (an essential good its receiver stays short of
    without it, counting the larger lanes kept to it first)."""
    kept = [False] * len(lanes)
    incoming: dict[tuple[int, int], int] = defaultdict(int)
    for i in sorted(range(len(lanes)), key=lambda i: (-units[i], lanes[i].distance_km, i)):
        s = lanes[i]
        needed = _short(holdings, s.to_place, s.good_id, incoming[s.to_place, s.good_id])
        if worth_the_trip(units[i], goods[s.good_id], s.distance_km, needed, min_kg, kg_per_km):
            kept[i] = True
            incoming[s.to_place, s.good_id] += units[i]
    return kept


def split_loads(units: int, weight_kg_per_unit: float, load_kg: float | None) -> list[int]:
    """`units` as near-equal whole loads of at most `load_kg` each (larger loads first).

    A unit heavier than `load_kg` goes on its own. No limit (None, or a good of no weight): one load.
    """
    if units < 1:
        return []
    if load_kg is None or load_kg <= 0 or units * weight_kg_per_unit <= load_kg:
        return [units]
    per_load = max(1, math.floor(load_kg / weight_kg_per_unit + UNIT_EPS))
    parts = math.ceil(units / per_load)
    each, extra = divmod(units, parts)
    return [each + 1] * extra + [each] * (parts - extra)


def small_change(held: float, wanted: float, weight_kg_per_unit: float) -> bool:
    """Whether a lane's new quantity is close enough to the stored one to leave it as it is: at most
    HYSTERESIS_FRACTION of it and HYSTERESIS_MAX_KG."""
    change = abs(wanted - held)
    return change <= HYSTERESIS_FRACTION * held + UNIT_EPS and (
        change * weight_kg_per_unit <= HYSTERESIS_MAX_KG + UNIT_EPS
    )


@dataclass(frozen=True)
class Revision:
    """What a new plan changes in the stored one, lane by lane (LaneKey)."""

    keep: tuple[LaneKey, ...] = ()  # stored loads stay: no change, or one too small to tell
    revise: Mapping[LaneKey, tuple[int, ...]] = field(default_factory=dict)  # stored lane's new loads
    add: Mapping[LaneKey, tuple[int, ...]] = field(default_factory=dict)  # a new lane's loads
    cancel: tuple[LaneKey, ...] = ()  # stored lanes the new plan no longer wants

    @property
    def unchanged(self) -> bool:
        """Nothing to write."""
        return not (self.revise or self.add or self.cancel)


def revise_lanes(
    held: Mapping[LaneKey, Sequence[float]],
    wanted: Mapping[LaneKey, int],
    weights: Mapping[int, float],
    load_kg: float | None,
    limit: Mapping[tuple[int, int], float],
) -> Revision:
    """Compare the stored lanes' loads (`held`, not yet on a route) with the new plan's totals (`wanted`).

    A lane both hold keeps its loads when the totals differ by a small change (`small_change`) and the
    loads are still the ones vehicles of `load_kg` take; otherwise it gets the new total's loads. A kept
    lane that asks its giver for more than the new plan does counts against the giver's `limit`
    ((good, from site) -> the most it can give without falling short itself); the largest such excesses
    are revised until the giver's total fits. `weights`: good -> kg per unit.
    """
    keep: list[LaneKey] = []
    revise: dict[LaneKey, tuple[int, ...]] = {}
    for lane in sorted(held.keys() & wanted.keys()):
        total = sum(held[lane])
        loads = tuple(split_loads(wanted[lane], weights.get(lane[0], 0.0), load_kg))
        as_split = sorted(split_loads(whole_units(total), weights.get(lane[0], 0.0), load_kg))
        if small_change(total, wanted[lane], weights.get(lane[0], 0.0)) and as_split == sorted(held[lane]):
            keep.append(lane)
        else:
            revise[lane] = loads
    keep = _within_limit(keep, revise, held, wanted, weights, load_kg, limit)
    add = {
        lane: tuple(split_loads(wanted[lane], weights.get(lane[0], 0.0), load_kg))
        for lane in sorted(wanted.keys() - held.keys())
    }
    cancel = tuple(sorted(held.keys() - wanted.keys()))
    return Revision(tuple(keep), revise, add, cancel)


def _within_limit(
    keep: list[LaneKey],
    revise: dict[LaneKey, tuple[int, ...]],
    held: Mapping[LaneKey, Sequence[float]],
    wanted: Mapping[LaneKey, int],
    weights: Mapping[int, float],
    load_kg: float | None,
    limit: Mapping[tuple[int, int], float],
) -> list[LaneKey]:
    """The kept lanes, less those (moved to `revise`) whose extra over the new plan would ask a giver for
    more than its limit; the largest extras go first."""
    final = {lane: float(wanted[lane]) for lane in wanted}
    final |= {lane: sum(held[lane]) for lane in keep}
    total: dict[tuple[int, int], float] = defaultdict(float)
    for (good, source, _), quantity in final.items():
        total[good, source] += quantity
    extras = sorted((wanted[lane] - sum(held[lane]), lane) for lane in keep if sum(held[lane]) > wanted[lane])
    for extra, lane in extras:  # most negative first: the lane asking the most beyond the plan
        giver = (lane[0], lane[1])
        if total[giver] <= limit.get(giver, 0.0) + UNIT_EPS:
            continue
        keep.remove(lane)
        revise[lane] = tuple(split_loads(wanted[lane], weights.get(lane[0], 0.0), load_kg))
        total[giver] += extra
    return keep
