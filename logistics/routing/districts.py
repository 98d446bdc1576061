"""Cluster first, route second: a large region's sites split into geographic districts, each routed apart
within its share of the time, so memory and time grow with the work and not with its square.

Sites are split by recursive bisection (the longer side of the bounding box, at the median weighted by the
requests picked up there) until no district has more than `max_requests`; a request belongs to the district
of its pickup site, so a site's pickups are all in one district. Drivers are given to districts in
proportion to their requests, each to the nearest district with room, all slots of one person together (so
the person's week and its fairness term stay in one search). Each district is an ordinary `RoutingInput`
(dense matrices of its own size only) solved by `solve_routing`, in turn or in worker processes.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from logistics.common.errors import PlanningError
from logistics.common.geo import distance_matrix_km
from logistics.routing.data import PlannedRoute, RoutingInput, RoutingPlan, Unassigned
from logistics.routing.fairness import figures
from logistics.routing.region import RegionRouting
from logistics.routing.solve import COMPLETE, INCOMPLETE, solve_routing

log = logging.getLogger(__name__)

# A region of more than SPLIT_ABOVE requests is split into districts of at most MAX_DISTRICT_REQUESTS. The
# sample region (389) stays whole: split in four, its drivers bound to their districts left 22 shipments
# unrouted instead of 5. Districts of 150 route more of a large region in the time than districts of 300.
SPLIT_ABOVE: Final = 400
MAX_DISTRICT_REQUESTS: Final = 150
MIN_DISTRICT_S: Final = 0.5  # the least time one district's search gets (its first solution must fit)
NO_DRIVER: Final = "no driver near its district has time for it"


@dataclass(frozen=True)
class District:
    """One district: its requests, the vehicle specs (drivers' slots) routing them, and its nodes (the
    requests' nodes, then the vehicles' homes), all as indices of the region."""

    requests: tuple[int, ...]
    vehicles: tuple[int, ...]
    nodes: tuple[int, ...]


def split(
    region: RegionRouting, max_requests: int = MAX_DISTRICT_REQUESTS, split_above: int = SPLIT_ABOVE
) -> list[District]:
    """The region's districts: one, with every node in its order, when it has at most `split_above`
    requests; else districts of at most `max_requests` (before driverless ones join their neighbours)."""
    if len(region.requests) <= max(split_above, max_requests):
        return [
            District(
                tuple(range(len(region.requests))),
                tuple(range(len(region.vehicles))),
                tuple(range(region.size)),
            )
        ]
    by_point: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(region.requests):
        by_point[region.point_of[r.delivery if r.pickup is None else r.pickup]].append(i)
    groups = _bisect(
        region.points, sorted(by_point), {p: len(rs) for p, rs in by_point.items()}, max_requests
    )
    requests = [sorted(i for p in group for i in by_point[p]) for group in groups]
    anchors = [[region.point_of[region.requests[i].nodes[0]] for i in rs] for rs in requests]
    vehicles = _drivers_to(region, anchors)
    _join_driverless(region, anchors, requests, vehicles)
    found = []
    for rs, vs in zip(requests, vehicles, strict=True):
        if not rs:
            continue
        nodes = [n for i in rs for n in region.requests[i].nodes]
        depots = dict.fromkeys(n for v in vs for n in (region.vehicles[v].start, region.vehicles[v].end))
        found.append(District(tuple(sorted(rs)), tuple(vs), tuple(nodes + list(depots))))
    return found


def _bisect(points: np.ndarray, ids: list[int], weight: dict[int, int], most: int) -> list[list[int]]:
    """Points split along the longer side at the weighted median until each part weighs at most `most`."""
    total = sum(weight[p] for p in ids)
    if total <= most or len(ids) < 2:
        return [ids]
    lat, lon = points[ids, 0], points[ids, 1]
    squeeze = math.cos(math.radians(float(lat.mean())))
    axis = lat if np.ptp(lat) >= np.ptp(lon) * squeeze else lon
    order = [ids[k] for k in np.argsort(axis, kind="stable")]
    running, cut = 0, 1
    for k, p in enumerate(order):
        running += weight[p]
        if running >= total / 2:
            cut = min(max(k + 1, 1), len(order) - 1)
            break
    return _bisect(points, order[:cut], weight, most) + _bisect(points, order[cut:], weight, most)


def _drivers_to(region: RegionRouting, anchors: Sequence[Sequence[int]]) -> list[list[int]]:
    """Vehicle specs per district: people (all their slots together) in proportion to the districts'
    requests, each to the nearest district with room left."""
    people: dict[object, list[int]] = defaultdict(list)
    for k, v in enumerate(region.vehicles):
        who = ("person", region.workloads[v.workload].person) if v.workload is not None else ("home", v.start)
        people[who].append(k)
    keys = list(people)
    homes = [region.point_of[region.vehicles[people[key][0]].start] for key in keys]
    centres = np.array([region.points[list(a)].mean(axis=0) for a in anchors])
    km = distance_matrix_km(region.points[homes, 0], region.points[homes, 1], centres[:, 0], centres[:, 1])
    work = np.array([len(a) for a in anchors], dtype=float)
    room = np.ceil(len(keys) * work / work.sum()).astype(int)
    result: list[list[int]] = [[] for _ in anchors]
    placed: set[int] = set()
    for flat in np.argsort(km, axis=None, kind="stable"):
        person, district = divmod(int(flat), len(anchors))
        if person in placed or room[district] <= 0:
            continue
        placed.add(person)
        room[district] -= 1
        result[district].extend(people[keys[person]])
    return [sorted(vs) for vs in result]


def _join_driverless(
    region: RegionRouting,
    anchors: Sequence[Sequence[int]],
    requests: list[list[int]],
    vehicles: Sequence[list[int]],
) -> None:
    """A district no driver was given joins the nearest district that has drivers (fewer drivers than
    districts: their requests still get a chance, from drivers a little further away)."""
    staffed = [k for k, vs in enumerate(vehicles) if vs]
    if not staffed:
        return
    centres = np.array([region.points[list(a)].mean(axis=0) for a in anchors])
    for k, vs in enumerate(vehicles):
        if vs or not requests[k]:
            continue
        km = distance_matrix_km(centres[[k], 0], centres[[k], 1], centres[staffed, 0], centres[staffed, 1])
        nearest = staffed[int(np.argmin(km[0]))]
        requests[nearest] += requests[k]
        requests[k] = []


def solve_region(
    region: RegionRouting,
    time_limit_s: float = 10.0,
    seed: int = 1,
    max_iterations: int | None = None,
    stall_iterations: int | None = None,
    workers: int = 1,
    max_requests: int = MAX_DISTRICT_REQUESTS,
    split_above: int = SPLIT_ABOVE,
) -> RoutingPlan:
    """Routes for the region, district by district; every request is on a route or unassigned with its
    reason. Each district gets the time limit in proportion to its requests (`workers` at once), at
    least MIN_DISTRICT_S, so a region split in many districts may take longer than the limit."""
    started = time.perf_counter()
    parts = split(region, max_requests, split_above)
    total = max(1, len(region.requests))
    jobs: list[tuple[District, RoutingInput, float]] = []
    unassigned: list[Unassigned] = []
    for d in parts:
        if not d.vehicles:
            unassigned += [Unassigned(i, NO_DRIVER) for i in d.requests]
            continue
        share = time_limit_s if len(parts) == 1 else time_limit_s * workers * len(d.requests) / total
        jobs.append((d, region.district_input(d.nodes, d.requests, d.vehicles), max(MIN_DISTRICT_S, share)))
    args = [(data, limit, seed, max_iterations, stall_iterations) for _, data, limit in jobs]
    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            plans = list(pool.map(_solve, args))
    else:
        plans = [_solve(a) for a in args]
    routes: list[PlannedRoute] = []
    for (d, _, _), plan in zip(jobs, plans, strict=True):
        routes += [
            replace(r, vehicle=d.vehicles[r.vehicle], nodes=tuple(d.nodes[n] for n in r.nodes))
            for r in plan.routes
        ]
        unassigned += [Unassigned(d.requests[u.request], u.reason) for u in plan.unassigned]
    _check_complete(region, routes, unassigned)
    if len(plans) == 1 and len(parts) == 1:
        return replace(plans[0], solve_time_s=time.perf_counter() - started)
    added: dict[int, float] = defaultdict(float)
    for r in routes:
        if (k := region.vehicles[r.vehicle].workload) is not None:
            added[k] += r.duration
    max_ratio, spread = figures(region.workloads, added)
    unassigned.sort(key=lambda u: u.request)
    log.info(
        "routed %s districts of %s requests in %.1f s",
        len(parts),
        len(region.requests),
        time.perf_counter() - started,
    )
    return RoutingPlan(
        routes=tuple(sorted(routes, key=lambda r: (r.vehicle, r.nodes))),
        unassigned=tuple(unassigned),
        cost=sum(p.cost for p in plans),
        status=INCOMPLETE if unassigned else COMPLETE,
        iterations=sum(p.iterations for p in plans),
        pool_size=sum(p.pool_size for p in plans),
        sp_rounds=tuple(o for p in plans for o in p.sp_rounds),
        solve_time_s=time.perf_counter() - started,
        max_load_ratio=max_ratio,
        load_gini=spread,
        districts=tuple(len(d.requests) for d in parts),
    )


def _solve(args: tuple[RoutingInput, float, int, int | None, int | None]) -> RoutingPlan:
    """One district's routes; if its first solution alone outlasts its share of the time (a loaded
    machine, a district that took in a driverless one), once more with time for it: a district left
    unrouted for want of a second would be a worse plan than one a little late."""
    data, limit, seed, max_iterations, stall_iterations = args
    started = time.perf_counter()
    try:
        return solve_routing(
            data, limit, seed, max_iterations=max_iterations, stall_iterations=stall_iterations
        )
    except PlanningError as exc:
        if exc.status != "TimeLimit":
            raise
        took = time.perf_counter() - started
        log.warning(
            "district of %s requests: no first solution in %.1f s; again with %.1f s",
            len(data.requests),
            limit,
            2 * took + limit,
        )
        return solve_routing(
            data, 2 * took + limit, seed, max_iterations=max_iterations, stall_iterations=stall_iterations
        )


def _check_complete(
    region: RegionRouting, routes: Sequence[PlannedRoute], unassigned: Sequence[Unassigned]
) -> None:
    """Every request on exactly one route or unassigned, never both (a district mix-up is a bug)."""
    owner = {n: i for i, r in enumerate(region.requests) for n in r.nodes}
    served = [owner[n] for r in routes for n in r.nodes if n in owner]
    counts: dict[int, int] = defaultdict(int)
    for i in served:
        counts[i] += 1
    listed = {u.request for u in unassigned}
    for i, r in enumerate(region.requests):
        if (counts[i] == len(r.nodes)) == (i in listed) or counts[i] not in (0, len(r.nodes)):
            raise PlanningError("routing", "Inconsistent", f"request {i} is not routed once or unassigned")
