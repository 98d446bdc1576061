"""Data and result of surplus allocation: frozen values that validate themselves, no ORM, no solver."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from gateway.contract.errors import InvalidInput
from logistics.allocation.lots import LOAD_KG_PER_KM, MIN_LOAD_KG

# Who is served first when goods compete (sector), and essential goods above every non-essential one.
SECTOR_PRIORITY: Final[Mapping[str, float]] = {
    "water": 4.0,
    "health": 4.0,
    "food": 3.0,
    "energy": 2.0,
    "other": 1.0,
}
ESSENTIAL_BONUS: Final = 4.0


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}")


def good_priority(sector: str, essential: bool) -> float:
    """Essential first, then by sector: the weight of a good's shipments in routing."""
    return SECTOR_PRIORITY.get(sector, 1.0) + (ESSENTIAL_BONUS if essential else 0.0)


@dataclass(frozen=True)
class Place:
    """A community that can give or receive goods, located by its centre."""

    id: int
    name: str
    lat: float
    lon: float
    people: float = 0.0  # population, or the people its sites serve; 0 when unknown (weighs as few)

    def __post_init__(self) -> None:
        _finite("lat", self.lat)
        _finite("lon", self.lon)
        _finite("people", self.people)
        if self.people < 0:
            raise InvalidInput(f"place {self.id}: negative people {self.people}")
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise InvalidInput(f"place {self.id}: coordinates ({self.lat}, {self.lon}) out of range")


@dataclass(frozen=True)
class GoodInfo:
    """What the planner must know about a good: its priority and how long it keeps on the road."""

    id: int
    slug: str
    sector: str
    essential: bool = False
    perishability_hours: float | None = None  # None: keeps indefinitely
    weight_kg_per_unit: float = 1.0

    def __post_init__(self) -> None:
        if self.sector not in SECTOR_PRIORITY:
            raise InvalidInput(f"good {self.slug!r}: unknown sector {self.sector!r}")
        if self.perishability_hours is not None:
            _finite("perishability_hours", self.perishability_hours)
            if self.perishability_hours <= 0:
                raise InvalidInput(f"good {self.slug!r}: perishability_hours must be > 0")
        _finite("weight_kg_per_unit", self.weight_kg_per_unit)
        if self.weight_kg_per_unit < 0:
            raise InvalidInput(f"good {self.slug!r}: weight_kg_per_unit must be >= 0")

    @property
    def priority(self) -> float:
        """Essential first, then by sector: the weight of this good's shipments in routing."""
        return good_priority(self.sector, self.essential)


@dataclass(frozen=True)
class Holding:
    """Stock of one good summed over a community's sites, with the community's need levels (0 if none)."""

    place_id: int
    good_id: int
    stock: float
    minimum: float = 0.0
    target: float = 0.0
    short_hours: float = 0.0  # how long the community has been below its minimum of the good (store history)

    def __post_init__(self) -> None:
        for name in ("stock", "minimum", "target", "short_hours"):
            value = getattr(self, name)
            _finite(name, value)
            if value < 0:
                raise InvalidInput(f"holding ({self.place_id}, {self.good_id}): negative {name} {value}")
        if self.minimum > self.target:
            raise InvalidInput(
                f"holding ({self.place_id}, {self.good_id}): minimum {self.minimum} > target {self.target}"
            )

    def supply(self, reserve_fraction: float = 0.0) -> float:
        """What can be given away: stock above the target plus a reserve of `reserve_fraction * target`."""
        return max(0.0, self.stock - self.target * (1.0 + reserve_fraction))

    @property
    def demand(self) -> float:
        """A community below its minimum is short, up to its target; otherwise it asks for nothing."""
        return self.target - self.stock if self.stock < self.minimum else 0.0

    def safety(self, share_margin: float = 0.25) -> float:
        """The level sharing works to: minimum + `share_margin` x (target - minimum). A giver keeps it and
        a receiver is brought up to it, so nobody hovers at the minimum on slivers of stock."""
        return self.minimum + share_margin * (self.target - self.minimum)

    def shared_need(self, share_margin: float = 0.25) -> float:
        """What a community below its minimum asks its neighbours to share: up to its safety level."""
        return self.safety(share_margin) - self.stock if self.stock < self.minimum else 0.0

    def spare(self, share_margin: float = 0.25) -> float:
        """What a community can share of an essential good with a neighbour below its minimum, beyond its
        surplus: its stock up to the target, above its safety level. Stock above the target is surplus
        (and its reserve), never counted twice."""
        return max(0.0, min(self.stock, self.target) - self.safety(share_margin))


@dataclass(frozen=True)
class AllocationInput:
    """A whole allocation problem; rejects unknown ids and duplicates at construction."""

    places: Sequence[Place]
    goods: Sequence[GoodInfo]
    holdings: Sequence[Holding]
    max_neighbours: int = 8
    detour_factor: float = 1.3  # road km per great-circle km
    speed_kmh: float = 40.0
    reserve_fraction: float = 0.0
    # Essential goods only: a community below its minimum may draw on its neighbours' stock down to their
    # safety level, minimum + share_margin x (target - minimum), up to its own (Holding.safety; 1: never).
    share_margin: float = 0.25
    # A shipment weighs at least max(min_load_kg, load_kg_per_km x road km), unless it is an essential good
    # a community needs to reach its minimum (logistics.allocation.lots; 0 and 0: whole units alone).
    min_load_kg: float = MIN_LOAD_KG
    load_kg_per_km: float = LOAD_KG_PER_KM

    def __post_init__(self) -> None:
        for name in ("places", "goods", "holdings"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        place_ids = {p.id for p in self.places}
        good_ids = {g.id for g in self.goods}
        if len(place_ids) != len(self.places):
            raise InvalidInput("duplicate place id")
        if len(good_ids) != len(self.goods):
            raise InvalidInput("duplicate good id")
        seen: set[tuple[int, int]] = set()
        for h in self.holdings:
            if h.place_id not in place_ids:
                raise InvalidInput(f"holding refers to unknown place {h.place_id}")
            if h.good_id not in good_ids:
                raise InvalidInput(f"holding refers to unknown good {h.good_id}")
            if (h.place_id, h.good_id) in seen:
                raise InvalidInput(f"duplicate holding ({h.place_id}, {h.good_id})")
            seen.add((h.place_id, h.good_id))
        if self.max_neighbours < 1:
            raise InvalidInput(f"max_neighbours must be at least 1, got {self.max_neighbours}")
        for name in ("detour_factor", "speed_kmh", "reserve_fraction"):
            _finite(name, getattr(self, name))
        if self.detour_factor < 1.0:
            raise InvalidInput(f"detour_factor must be >= 1, got {self.detour_factor}")
        if self.speed_kmh <= 0:
            raise InvalidInput(f"speed_kmh must be > 0, got {self.speed_kmh}")
        if not 0.0 <= self.reserve_fraction <= 1.0:
            raise InvalidInput(f"reserve_fraction must be in [0, 1], got {self.reserve_fraction}")
        _finite("share_margin", self.share_margin)
        if not 0.0 <= self.share_margin <= 1.0:
            raise InvalidInput(f"share_margin must be in [0, 1], got {self.share_margin}")
        for name in ("min_load_kg", "load_kg_per_km"):
            _finite(name, getattr(self, name))
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class PlannedShipment:
    """A quantity of one good to move from one community to another (whole units in a solved plan)."""

    from_place: int
    to_place: int
    good_id: int
    quantity: float
    distance_km: float


@dataclass(frozen=True)
class AllocationPlan:
    """A complete, optimal allocation; never a partial one (failures raise PlanningError instead)."""

    shipments: tuple[PlannedShipment, ...]
    coverage: Mapping[tuple[int, int], float]  # (place, good) -> delivered / demand, for every shortage
    min_coverage: float  # worst-off shortage, unreachable ones included; 1.0 when nobody is short
    status: str  # "Optimal", or NO_SHORTAGE / NO_LANE when the solver had nothing to decide
    objective: float
    fair_share: Mapping[int, float] = field(default_factory=dict)  # good -> lowest reachable coverage
    unreachable: tuple[tuple[int, int], ...] = ()  # shortages with no surplus of the good within reach
    # (place, good) -> the most the plan may take from a giver: its surplus, and for essential goods the
    # stock it can spare (whole units are rounded within it).
    budget: Mapping[tuple[int, int], float] = field(default_factory=dict)
    # (place, good) -> what each giver holds above its minimum: stored shipments a re-plan keeps a little
    # larger than it would plan them (lots.revise_lanes) must fit in it, so no giver is left short.
    above_minimum: Mapping[tuple[int, int], float] = field(default_factory=dict)
    rounds: int = 0  # LP solves of the worst-off-first filling (logistics.allocation.fairness)
    solve_time_s: float = field(default=0.0, compare=False)  # wall clock; plans compare by content
    build_time_s: float = field(default=0.0, compare=False)  # of it, building the models in PuLP

    @property
    def receivers(self) -> frozenset[int]:
        """Places that receive at least one shipment."""
        return frozenset(s.to_place for s in self.shipments)

    @property
    def reachable_min_coverage(self) -> float:
        """Worst-off coverage among shortages some surplus can reach: what fairness could act on."""
        left_out = set(self.unreachable)
        return min((c for key, c in self.coverage.items() if key not in left_out), default=1.0)

    def summary(self) -> dict[str, object]:
        """Counts and figures worth storing with the plan or printing."""
        return {
            "shipments": len(self.shipments),
            "receivers": len(self.receivers),
            "quantity": round(sum(s.quantity for s in self.shipments), 6),
            "shortages": len(self.coverage),
            "unreachable": len(self.unreachable),
            "min_coverage": round(self.min_coverage, 6),
            "reachable_min_coverage": round(self.reachable_min_coverage, 6),
            "rounds": self.rounds,
            "build_time_s": round(self.build_time_s, 3),
            "solve_time_s": round(self.solve_time_s, 3),
        }
