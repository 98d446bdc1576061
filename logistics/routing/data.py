"""Data and result of delivery routing: frozen values that validate themselves, no ORM, no solver.

Every stop is a node of one square matrix. A request is a pickup node and a delivery node with a load
(pickup None: the load is taken on at the vehicle's start, as in CVRPLIB). Vehicles are grouped into specs
that share a start node, an end node, a capacity, a shift and a maximum route duration.

People, when the vehicles are driven by volunteers: a request may exclude vehicle specs (a driver declined
its lane), and specs may belong to a `Workload` (one person's week), so the plan can prefer the people who
gave least so far and report how evenly the work falls (`max_load_ratio`, `load_gini`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from gateway.contract.errors import InvalidInput

UNLIMITED: Final = None  # VehicleSpec.count: as many vehicles as the plan needs (benchmarks)


def _finite_nonnegative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Stop:
    """When a node may be served (service start in [earliest, latest]) and how long service takes."""

    earliest: float = 0.0
    latest: float = math.inf
    service: float = 0.0

    def __post_init__(self) -> None:
        _finite_nonnegative("earliest", self.earliest)
        _finite_nonnegative("service", self.service)
        if math.isnan(self.latest) or self.latest < self.earliest:
            raise InvalidInput(f"time window [{self.earliest}, {self.latest}] is empty")


@dataclass(frozen=True)
class Request:
    """Carry `load` from `pickup` (None: from the vehicle's start) to `delivery` on one route."""

    delivery: int
    load: float
    pickup: int | None = None
    label: str = ""
    weight: float = 1.0  # leaving it out costs as much as leaving out `weight` ordinary requests (>= 1)
    excluded: frozenset[int] = frozenset()  # vehicle specs that may not carry it (its driver declined it)

    def __post_init__(self) -> None:
        _finite_nonnegative("load", self.load)
        object.__setattr__(self, "excluded", frozenset(self.excluded))
        if not (math.isfinite(self.weight) and self.weight >= 1.0):
            name = self.label or self.delivery
            raise InvalidInput(f"request {name}: weight must be >= 1, got {self.weight!r}")
        if self.pickup is not None and self.pickup == self.delivery:
            raise InvalidInput(
                f"request {self.label or self.delivery}: pickup and delivery are the same node"
            )

    @property
    def nodes(self) -> tuple[int, ...]:
        """The request's nodes, pickup first."""
        return (self.delivery,) if self.pickup is None else (self.pickup, self.delivery)


@dataclass(frozen=True)
class VehicleSpec:
    """`count` identical vehicles (None: unlimited) from `start` to `end` within a shift and a duration."""

    start: int
    end: int
    capacity: float
    count: int | None = 1
    shift_start: float = 0.0
    shift_end: float = math.inf
    max_duration: float = math.inf
    fixed_cost: float = 0.0
    label: str = ""
    workload: int | None = None  # index into RoutingInput.workloads: whose week this vehicle's route adds to

    def __post_init__(self) -> None:
        if not (math.isfinite(self.capacity) and self.capacity > 0):
            raise InvalidInput(f"vehicle {self.label!r}: capacity must be > 0, got {self.capacity!r}")
        if self.count is not None and self.count < 1:
            raise InvalidInput(f"vehicle {self.label!r}: count must be >= 1 or None, got {self.count}")
        _finite_nonnegative("shift_start", self.shift_start)
        _finite_nonnegative("fixed_cost", self.fixed_cost)
        if math.isnan(self.shift_end) or self.shift_end < self.shift_start:
            raise InvalidInput(
                f"vehicle {self.label!r}: shift [{self.shift_start}, {self.shift_end}] is empty"
            )
        if math.isnan(self.max_duration) or self.max_duration <= 0:
            raise InvalidInput(f"vehicle {self.label!r}: max_duration must be > 0, got {self.max_duration}")

    @property
    def deadline(self) -> float:
        """Latest return to the end node: the shift's end or start + max duration, whichever is first."""
        return min(self.shift_end, self.shift_start + self.max_duration)


@dataclass(frozen=True)
class Workload:
    """One person's week before this plan: the time already counted and the pledge, in the input's time
    unit. Their load ratio is (held + the durations of their new routes) / pledge; `person` groups the weeks
    of one person (their ratio is the largest of their weeks)."""

    person: int
    held: float
    pledge: float

    def __post_init__(self) -> None:
        _finite_nonnegative("held", self.held)
        if not (math.isfinite(self.pledge) and self.pledge > 0):
            raise InvalidInput(f"person {self.person}: the pledge must be > 0, got {self.pledge!r}")


@dataclass(frozen=True)
class RoutingInput:
    """A whole routing problem; rejects inconsistent nodes, requests and vehicles at construction."""

    distance: np.ndarray  # cost of travelling node i -> j (km, or the benchmark's unit)
    requests: Sequence[Request]
    vehicles: Sequence[VehicleSpec]
    stops: Sequence[Stop] = ()  # per node; empty means no time windows and no service times
    duration: np.ndarray | None = None  # travel time i -> j; None: the distance matrix (speed 1)
    name: str = ""
    workloads: Sequence[Workload] = ()  # the people's weeks the vehicles' `workload` points into
    fairness: float = 0.0  # cost of one unit of the largest load ratio (0: distance alone)

    def __post_init__(self) -> None:
        distance = np.asarray(self.distance, dtype=float)
        object.__setattr__(self, "distance", distance)
        for name in ("requests", "vehicles", "stops", "workloads"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n = distance.shape[0] if distance.ndim == 2 else -1
        if distance.ndim != 2 or distance.shape != (n, n) or n == 0:
            raise InvalidInput(f"distance must be a non-empty square matrix, got shape {distance.shape}")
        if not np.isfinite(distance).all() or (distance < 0).any():
            raise InvalidInput("distance must hold finite numbers >= 0")
        if self.duration is not None:
            duration = np.asarray(self.duration, dtype=float)
            object.__setattr__(self, "duration", duration)
            if duration.shape != distance.shape or not np.isfinite(duration).all() or (duration < 0).any():
                raise InvalidInput("duration must be a finite matrix >= 0 shaped like distance")
        if self.stops and len(self.stops) != n:
            raise InvalidInput(f"{len(self.stops)} stops given for {n} nodes")
        if not self.vehicles:
            raise InvalidInput("no vehicles")
        if not (math.isfinite(self.fairness) and self.fairness >= 0):
            raise InvalidInput(f"fairness must be a finite number >= 0, got {self.fairness!r}")
        depots: set[int] = set()
        for v in self.vehicles:
            for node in (v.start, v.end):
                if not 0 <= node < n:
                    raise InvalidInput(f"vehicle {v.label!r}: node {node} outside 0..{n - 1}")
                depots.add(node)
            if v.workload is not None and not 0 <= v.workload < len(self.workloads):
                raise InvalidInput(f"vehicle {v.label!r}: workload {v.workload} is not one of the input's")
        seen: set[int] = set()
        specs = frozenset(range(len(self.vehicles)))
        for r in self.requests:
            if not r.excluded <= specs:
                raise InvalidInput(f"request {r.label or r.delivery}: excludes vehicles that do not exist")
            for node in r.nodes:
                if not 0 <= node < n:
                    raise InvalidInput(f"request {r.label or r.delivery}: node {node} outside 0..{n - 1}")
                if node in depots:
                    raise InvalidInput(f"request {r.label or r.delivery}: node {node} is a vehicle's depot")
                if node in seen:
                    raise InvalidInput(f"node {node} belongs to more than one request")
                seen.add(node)

    @property
    def size(self) -> int:
        """Number of nodes."""
        return int(self.distance.shape[0])

    def stop(self, node: int) -> Stop:
        """The node's time window and service time (open and zero when none were given)."""
        return self.stops[node] if self.stops else _OPEN


_OPEN: Final = Stop()


@dataclass(frozen=True)
class PlannedRoute:
    """One vehicle's trip: its spec, the nodes in order (depots left out), distance and end time."""

    vehicle: int  # index into RoutingInput.vehicles
    nodes: tuple[int, ...]
    distance: float
    duration: float  # from the shift start to the return at the end node, waiting included
    peak_load: float


@dataclass(frozen=True)
class Unassigned:
    """A request no route serves, and why."""

    request: int  # index into RoutingInput.requests
    reason: str


@dataclass(frozen=True)
class RoutingPlan:
    """A complete solution: every request is on a route or listed in `unassigned` with its reason."""

    routes: tuple[PlannedRoute, ...]
    unassigned: tuple[Unassigned, ...]
    cost: float  # total distance plus fixed costs of the routes used
    status: str  # "Complete" (every request served) or "Incomplete" (see unassigned)
    iterations: int = 0
    pool_size: int = 0
    sp_rounds: tuple[str, ...] = ()  # outcome of each set-partitioning round
    solve_time_s: float = field(default=0.0, compare=False)
    max_load_ratio: float = 0.0  # over the input's people: the fullest week / pledge (0 without people)
    load_gini: float = 0.0  # how unevenly the people's load ratios fall (0: all equal)
    districts: tuple[int, ...] = ()  # requests per district when the region was split (empty: one)

    @property
    def distance(self) -> float:
        """Total distance driven."""
        return sum(r.distance for r in self.routes)

    def summary(self) -> dict[str, object]:
        """Counts and figures worth storing with the plan or printing."""
        return {
            "routes": len(self.routes),
            "stops": sum(len(r.nodes) for r in self.routes),
            "distance": round(self.distance, 6),
            "cost": round(self.cost, 6),
            "unassigned": len(self.unassigned),
            "iterations": self.iterations,
            "pool_size": self.pool_size,
            "sp_rounds": list(self.sp_rounds),
            "solve_time_s": round(self.solve_time_s, 3),
            "max_load_ratio": round(self.max_load_ratio, 3),
            "load_gini": round(self.load_gini, 3),
            "districts": len(self.districts) or 1,
        }
