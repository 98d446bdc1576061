"""Routing at regional scale: one stop per site, distances on demand, districts above a size, and every
shipment either routed or reported with its reason."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

import logistics.routing.region as region_module
from logistics.routing.data import Request, VehicleSpec, Workload
from logistics.routing.districts import NO_DRIVER, SPLIT_ABOVE, solve_region, split
from logistics.routing.region import RegionRouting

FAST = {"time_limit_s": 5.0, "max_iterations": 200, "seed": 3}


def _region(
    sites: int, requests: int, drivers: int, seed: int = 1, heavy: int = 0, capacity: float = 500.0
) -> RegionRouting:
    """Sites scattered over ~100 km, `requests` shipments between random pairs of them (the first `heavy`
    too heavy for any vehicle), `drivers` people with two 8 h slots each from their homes."""
    rng = random.Random(seed)
    points = [(18.0 + rng.random(), -67.0 + rng.random()) for _ in range(sites + drivers)]
    point_of: list[int] = []
    site_node: list[bool] = []
    reqs = []
    for i in range(requests):
        a, b = rng.sample(range(sites), 2)
        point_of += [a, b]
        site_node += [True, True]
        load = capacity * 2 if i < heavy else rng.uniform(5, 60)
        reqs.append(Request(pickup=2 * i, delivery=2 * i + 1, load=load, label=str(i)))
    vehicles, workloads = [], []
    for d in range(drivers):
        home = len(point_of)
        point_of.append(sites + d)
        site_node.append(False)
        workloads.append(Workload(person=d, held=0.0, pledge=16 * 60.0))
        for slot in range(2):
            start = 120.0 + slot * 600.0
            vehicles.append(
                VehicleSpec(
                    home, home, capacity, shift_start=start, shift_end=start + 480.0, max_duration=480.0,
                    label=f"driver {d} slot {slot}", workload=d,
                )
            )  # fmt: skip
    return RegionRouting(np.array(points), point_of, site_node, reqs, vehicles, workloads=workloads)


def test_a_sites_pickups_and_drop_offs_are_one_stop() -> None:
    """Two shipments leave the hub for the far town, one arrives from the north town, which also sends
    one far: the driver stops at each site once (the hub's drop-off and pickups in one visit), and the
    stop's service time is counted once per visit, not once per shipment."""
    points = np.array([[18.0, -66.0], [18.1, -66.0], [17.9, -66.0], [18.12, -66.02]])
    hub, north, far, home = 0, 1, 2, 3
    point_of = [hub, far, hub, far, north, hub, north, far, home]
    reqs = [Request(pickup=2 * i, delivery=2 * i + 1, load=10.0) for i in range(4)]
    vehicle = VehicleSpec(8, 8, 1000.0, shift_start=0.0, shift_end=600.0, max_duration=600.0)
    region = RegionRouting(points, point_of, [True] * 8 + [False], reqs, [vehicle], stop_minutes=10.0)
    assert region.duration[0, 2] == 0.0 and region.distance[0, 5] == 0.0  # two nodes of the hub
    assert region.duration[0, 1] == pytest.approx(region.distance[0, 1] / 40 * 60 + 10.0)  # leaving: + stop
    assert region.duration[8, 0] == pytest.approx(region.distance[8, 0] / 40 * 60)  # home is no stop
    plan = solve_region(region, **FAST)
    (route,) = plan.routes
    visits = region.visits(route)
    assert [point_of[v[0]] for v in visits] == [north, hub, far]  # one stop per site
    assert [len(v) for v in visits] == [2, 3, 3]  # north's two pickups; the hub's drop-off and two pickups
    drive = sum(region.distance[a, b] for a, b in zip((8, *route.nodes), (*route.nodes, 8), strict=True))
    assert route.duration == pytest.approx(drive / 40 * 60 + 3 * 10.0)  # three stops, not eight


def test_distances_are_computed_per_district_never_for_the_whole_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No matrix over all the region's nodes: the region keeps one point per site, and every block of
    distances computed while solving is one district's."""
    region = _region(sites=60, requests=240, drivers=12)
    n = region.size
    assert region.points.shape == (72, 2) and n == 2 * 240 + 12  # points per site and home, not per node
    assert not [v for v in vars(region).values() if isinstance(v, np.ndarray) and v.size >= n * n]
    shapes: list[tuple[int, int]] = []
    original = region_module.distance_matrix_km

    def recorded(*args: object) -> np.ndarray:
        out = original(*args)  # type: ignore[arg-type]
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(region_module, "distance_matrix_km", recorded)
    plan = solve_region(region, max_requests=60, split_above=60, **FAST)
    assert len(plan.districts) >= 4 and shapes
    largest = max(r * c for r, c in shapes)
    assert largest <= (2 * 120 + 2 * 12) ** 2 < n * n / 3  # a district's own nodes (joined ones included)


def test_a_large_region_is_split_into_districts_by_site() -> None:
    region = _region(sites=80, requests=400, drivers=20)
    assert len(split(region)) == 1 and len(region.requests) == SPLIT_ABOVE  # the planner's sizes: whole
    assert len(split(_region(sites=80, requests=SPLIT_ABOVE + 1, drivers=20))) > 1  # above them: districts
    (whole,) = split(region, max_requests=100, split_above=400)  # one district, nodes in order
    assert whole.nodes == tuple(range(region.size)) and whole.vehicles == tuple(range(40))
    parts = split(region, max_requests=100, split_above=100)
    assert len(parts) >= 4
    assert sorted(i for d in parts for i in d.requests) == list(range(400))  # each request in one district
    assert sorted(v for d in parts for v in d.vehicles) == list(range(40))  # each slot in one
    for d in parts:
        assert len(d.requests) <= 2 * 100  # a district may take in a driverless neighbour
        pickups = {region.point_of[region.requests[i].nodes[0]] for i in d.requests}
        others = {region.point_of[region.requests[i].nodes[0]] for e in parts if e != d for i in e.requests}
        assert not pickups & others  # all the pickups of one site are in one district
        people = {v // 2 for v in d.vehicles}
        assert all(
            2 * p in d.vehicles and 2 * p + 1 in d.vehicles for p in people
        )  # a person's slots together
        assert set(d.nodes) == {n for i in d.requests for n in region.requests[i].nodes} | {
            region.vehicles[v].start for v in d.vehicles
        }


def test_every_shipment_is_routed_or_reported_with_a_reason() -> None:
    """Few drivers, some loads too heavy for any vehicle: each request is on exactly one route or in
    `unassigned` with its reason, and no route breaks its driver's shift or hours."""
    region = _region(sites=40, requests=300, drivers=6, heavy=5)
    plan = solve_region(region, max_requests=50, split_above=50, **FAST)
    owner = {n: i for i, r in enumerate(region.requests) for n in r.nodes}
    routed = Counter(owner[n] for r in plan.routes for n in r.nodes)
    assert all(count == 2 for count in routed.values())
    reasons = {u.request: u.reason for u in plan.unassigned}
    assert set(routed) | set(reasons) == set(range(300)) and not set(routed) & set(reasons)
    assert all(reasons.values()) and all("capacity" in reasons[i] for i in range(5))
    assert NO_DRIVER not in reasons.values()  # districts without a driver join one that has some
    assert plan.status == "Incomplete" and plan.routes
    for r in plan.routes:
        v = region.vehicles[r.vehicle]
        assert r.duration <= v.max_duration + 1e-6 and v.shift_start + r.duration <= v.shift_end + 1e-6
        assert r.peak_load <= v.capacity + 1e-6


def test_drivers_few_or_none() -> None:
    """One driver: every district joins hers. None at all: every shipment is reported, with the reason."""
    region = _region(sites=30, requests=120, drivers=1)
    (only,) = split(region, max_requests=30, split_above=30)
    assert len(only.requests) == 120 and only.vehicles == (0, 1)
    nobody = RegionRouting(region.points, region.point_of, region.site_node, region.requests, [])
    plan = solve_region(nobody, max_requests=30, split_above=30, **FAST)
    assert not plan.routes and [u.reason for u in plan.unassigned] == [NO_DRIVER] * 120


def test_districts_in_worker_processes_give_the_same_plan() -> None:
    """Two workers at once route the districts exactly as in turn (a fixed seed and iteration count)."""
    region = _region(sites=40, requests=160, drivers=8)
    in_turn = solve_region(region, max_requests=40, split_above=40, **FAST)
    at_once = solve_region(region, max_requests=40, split_above=40, workers=2, **FAST)
    assert len(in_turn.districts) >= 4
    assert at_once.routes == in_turn.routes and at_once.unassigned == in_turn.unassigned
