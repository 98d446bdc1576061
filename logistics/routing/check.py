"""The routing plan checked against its input alone: every broken rule, recomputed without the search's
caches (the solver runs it on every plan it returns; tests and benchmarks use it too)."""

from __future__ import annotations

import itertools

from logistics.routing.data import RoutingInput, RoutingPlan


def check_plan(data: RoutingInput, plan: RoutingPlan) -> list[str]:
    """Every broken rule of the plan, recomputed from the input alone (empty when the plan is valid)."""
    problems: list[str] = []
    owner = {node: i for i, r in enumerate(data.requests) for node in r.nodes}
    seen: dict[int, int] = {}
    used = [0] * len(data.vehicles)
    time_matrix = data.distance if data.duration is None else data.duration
    for k, route in enumerate(plan.routes):
        v = data.vehicles[route.vehicle]
        used[route.vehicle] += 1
        path = [v.start, *route.nodes, v.end]
        load = sum(
            data.requests[owner[n]].load for n in route.nodes if data.requests[owner[n]].pickup is None
        )
        peak = load
        clock = v.shift_start
        onboard: set[int] = set()
        for a, b in itertools.pairwise(path):
            clock += data.stop(a).service if a != v.start else 0.0
            clock += float(time_matrix[a, b])
            if b == v.end:
                break
            clock = max(clock, data.stop(b).earliest)
            if clock > data.stop(b).latest + 1e-6:
                problems.append(f"route {k}: node {b} served at {clock:.3f} after {data.stop(b).latest}")
            if b not in owner:
                problems.append(f"route {k}: node {b} is no request's stop")
                continue
            req = data.requests[owner[b]]
            if route.vehicle in req.excluded and b == req.nodes[0]:
                problems.append(
                    f"route {k}: request {owner[b]} rides on vehicle spec {route.vehicle} it excludes"
                )
            if b == req.pickup:
                load += req.load
                onboard.add(owner[b])
            else:
                load -= req.load
                if req.pickup is not None and owner[b] not in onboard:
                    problems.append(f"route {k}: delivery {b} before its pickup on this route")
            peak = max(peak, load)
            seen[b] = seen.get(b, 0) + 1
        if peak > v.capacity + 1e-6:
            problems.append(f"route {k}: load {peak:g} over capacity {v.capacity:g}")
        if clock > v.deadline + 1e-6:
            problems.append(f"route {k}: back at {clock:.3f} after the deadline {v.deadline}")
        distance = sum(float(data.distance[a, b]) for a, b in itertools.pairwise(path))
        if abs(distance - route.distance) > 1e-6 * max(1.0, distance):
            problems.append(f"route {k}: distance {route.distance} but the path measures {distance}")
    for i, v in enumerate(data.vehicles):
        if v.count is not None and used[i] > v.count:
            problems.append(f"vehicle spec {i} used {used[i]} times, only {v.count} available")
    listed = {u.request for u in plan.unassigned}
    for i, r in enumerate(data.requests):
        visits = [seen.get(n, 0) for n in r.nodes]
        if i in listed:
            if any(visits):
                problems.append(f"request {i} is both routed and unassigned")
        elif visits != [1] * len(r.nodes):
            problems.append(f"request {i} visited {visits} times and not reported unassigned")
    return problems
