"""A region's routing problem without a distance matrix: the nodes' points, distances on demand.

A node is one end of a request (its pickup or its delivery) or a driver's home; many nodes share a point
(every shipment leaving a hub starts at the hub's point). Distances are great-circle km between points
times the detour factor, computed when asked: for one pair, or as a block between the nodes of one
district (`district_input`), never as a matrix of the whole region. Time between two nodes is the drive
plus one stop's service when the drive leaves a site for another point, so a site's pickups and
drop-offs are one stop: its service is counted once per visit, not once per shipment.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gateway.contract.errors import InvalidInput
from logistics.common.geo import distance_matrix_km
from logistics.routing.data import PlannedRoute, Request, RoutingInput, VehicleSpec, Workload


@dataclass(frozen=True)
class OnDemand:
    """`view[i, j]`: km (or minutes) from node i to node j, computed when read."""

    region: RegionRouting
    minutes: bool

    def __getitem__(self, pair: tuple[int, int]) -> float:
        a, b = pair
        return float(self.region.block([a], [b], self.minutes)[0, 0])


@dataclass(frozen=True)
class RegionRouting:
    """Requests and vehicles over nodes located at points; validated like `RoutingInput`, but without the
    n x n matrices (a region of 500 communities has 13,000 nodes: two tables of 1.4 GB)."""

    points: NDArray[np.float64]  # (P, 2): lat, lon in degrees
    point_of: Sequence[int]  # node -> its point
    site_node: Sequence[bool]  # node -> whether it is a site (a stop with service), not a driver's home
    requests: Sequence[Request]
    vehicles: Sequence[VehicleSpec]
    detour_factor: float = 1.3
    speed_kmh: float = 40.0
    stop_minutes: float = 10.0
    name: str = ""
    workloads: Sequence[Workload] = ()
    fairness: float = 0.0
    distance: OnDemand = field(init=False, repr=False, compare=False)
    duration: OnDemand = field(init=False, repr=False, compare=False)
    _at: NDArray[np.intp] = field(init=False, repr=False, compare=False)  # point_of as an array
    _site: NDArray[np.bool_] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=float).reshape(-1, 2)
        object.__setattr__(self, "points", points)
        for name in ("point_of", "site_node", "requests", "vehicles", "workloads"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.site_node) != len(self.point_of):
            raise InvalidInput(f"{len(self.site_node)} site flags for {len(self.point_of)} nodes")
        if any(not 0 <= p < len(points) for p in self.point_of):
            raise InvalidInput("a node's point is not one of the region's points")
        if not (self.speed_kmh > 0 and self.detour_factor >= 1 and self.stop_minutes >= 0):
            raise InvalidInput("speed must be > 0, the detour factor >= 1 and the stop time >= 0")
        object.__setattr__(self, "_at", np.asarray(self.point_of, dtype=np.intp))
        object.__setattr__(self, "_site", np.asarray(self.site_node, dtype=bool))
        object.__setattr__(self, "distance", OnDemand(self, minutes=False))
        object.__setattr__(self, "duration", OnDemand(self, minutes=True))
        # The other rules (nodes, depots, exclusions, workloads) are checked by each district's
        # RoutingInput, on its own part.

    @property
    def size(self) -> int:
        """Number of nodes."""
        return len(self.point_of)

    def block(self, rows: Sequence[int], cols: Sequence[int], minutes: bool = False) -> NDArray[np.float64]:
        """km (or minutes, with the stop's service) from each of `rows` to each of `cols`."""
        rows_at, cols_at = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
        r, c = self._at[rows_at], self._at[cols_at]
        km = self.detour_factor * distance_matrix_km(
            self.points[r, 0], self.points[r, 1], self.points[c, 0], self.points[c, 1]
        )
        if not minutes:
            return km
        drive = km / self.speed_kmh * 60.0
        leaves = self._site[rows_at][:, None] & (r[:, None] != c[None, :])
        return drive + self.stop_minutes * leaves

    def district_input(
        self, nodes: Sequence[int], requests: Sequence[int], vehicles: Sequence[int]
    ) -> RoutingInput:
        """The routing input of one district: its nodes (local index = position in `nodes`), its requests
        and vehicles renumbered onto them, with dense matrices of that size only."""
        local = {node: k for k, node in enumerate(nodes)}
        spec = {v: k for k, v in enumerate(vehicles)}
        return RoutingInput(
            self.block(nodes, nodes),
            [_renumbered(self.requests[i], local, spec) for i in requests],
            [_moved(self.vehicles[v], local) for v in vehicles],
            duration=self.block(nodes, nodes, minutes=True),
            name=self.name,
            workloads=self.workloads,
            fairness=self.fairness,
        )

    def visits(self, route: PlannedRoute) -> list[tuple[int, ...]]:
        """The route's stops as the driver makes them: consecutive nodes at one point are one visit."""
        return [tuple(group) for _, group in itertools.groupby(route.nodes, key=self.point_of.__getitem__)]


def _renumbered(r: Request, local: dict[int, int], spec: dict[int, int]) -> Request:
    return Request(
        delivery=local[r.delivery],
        load=r.load,
        pickup=None if r.pickup is None else local[r.pickup],
        label=r.label,
        weight=r.weight,
        excluded=frozenset(spec[v] for v in r.excluded if v in spec),
    )


def _moved(v: VehicleSpec, local: dict[int, int]) -> VehicleSpec:
    return VehicleSpec(
        start=local[v.start],
        end=local[v.end],
        capacity=v.capacity,
        count=v.count,
        shift_start=v.shift_start,
        shift_end=v.shift_end,
        max_duration=v.max_duration,
        fixed_cost=v.fixed_cost,
        label=v.label,
        workload=v.workload,
    )
