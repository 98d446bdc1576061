"""A solution under ruin and recreate: its routes with their caches, and where every node sits.

Every route keeps prefix loads, earliest service starts and latest feasible starts, so an insertion is
checked in O(1) (a single node) or O(L) per pickup position (a pair); `Solution.refresh` rebuilds them
after each change.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Final

from logistics.routing.fairness import largest
from logistics.routing.problem import EPS, Column, Problem

ALL_ROUTES_UP_TO: Final = 250  # up to this many customers every route is tried for each insertion
TWO_OPT_UP_TO: Final = 400  # up to this many customers every changed route is uncrossed (2-opt)

Touched = dict[int, tuple["Route", list[int]]]  # id(route) -> (route, its stops before this step)


class Route:
    """One vehicle's stops between its start and end, with the caches that make insertion checks O(1)."""

    __slots__ = ("arrive", "cost", "ext", "latest", "load", "peak", "spec")

    def __init__(self, spec: int, ext: list[int]) -> None:
        self.spec = spec
        self.ext = ext  # [start, stops..., end]
        self.cost = 0.0
        self.load: list[float] = []  # load after serving position k
        self.peak: list[float] = []  # max load over positions 0..k
        self.arrive: list[float] = []  # service start at position k
        self.latest: list[float] = []  # latest service start at k keeping the rest feasible

    @property
    def stops(self) -> int:
        return len(self.ext) - 2


class Solution:
    """Routes, the node -> (route, position) index, unserved requests, and the search's random source."""

    def __init__(self, problem: Problem, rng: random.Random) -> None:
        self.p = problem
        self.rng = rng
        self.routes: list[Route] = []
        self.where: list[Route | None] = [None] * problem.n
        self.pos = [0] * problem.n
        self.unserved: set[int] = set()
        self.used = [0] * len(problem.vehicles)
        self.cost = 0.0
        self.scope = set(range(len(problem.requests)))  # requests this search must place
        self.limited = any(v.count is not None for v in problem.vehicles)
        # Nodes near each request, whose routes are tried for it (None: try every route).
        self.near: list[list[int]] | None = None
        if not self.limited and len(problem.customers) > ALL_ROUTES_UP_TO:
            self.near = [
                [other for node in r.nodes for other in problem.neighbours[node]] for r in problem.requests
            ]
        # 2-opt after each recreate pays off while iterations are plentiful; on big instances they are not.
        self.uncross = problem.reversible and len(problem.customers) <= TWO_OPT_UP_TO
        self.empty: list[Route] = []  # one empty route per spec, for pricing a new route
        # Per request, what opening a route for it costs on each spec (recreate.openings fills it once).
        self.openings: list[list[tuple[float, int, int, int]] | None] = [None] * len(problem.requests)
        for spec, v in enumerate(problem.vehicles):
            self.empty.append(Route(spec, [v.start, v.end]))
            self.refresh(self.empty[-1], index=False)

    def refresh(self, route: Route, index: bool = True) -> None:
        """Recompute the route's cost and caches and (unless index=False) re-index its nodes."""
        p = self.p
        ext = route.ext
        dist = p.dist
        spec = p.vehicles[route.spec]
        last = len(ext) - 1
        cost = spec.fixed_cost if last > 1 else 0.0
        start_load = 0.0
        for k in range(1, last):
            node = ext[k]
            if index:
                self.where[node] = route
                self.pos[node] = k
            req = p.req_of[node]
            if p.requests[req].pickup is None:
                start_load += p.preload[req]
        load = [start_load] * (last + 1)
        peak = [start_load] * (last + 1)
        current = start_load
        high = start_load
        for k in range(1, last + 1):
            cost += dist[ext[k - 1]][ext[k]]
            if k < last:
                current += p.change[ext[k]]
            load[k] = current
            if current > high:
                high = current
            peak[k] = high
        route.cost = cost
        route.load = load
        route.peak = peak
        if p.has_time:
            tt = p.time
            arrive = [spec.shift_start] * (last + 1)
            for k in range(1, last + 1):
                prev = ext[k - 1]
                node = ext[k]
                t = arrive[k - 1] + p.service[prev] + tt[prev][node]
                arrive[k] = t if t > p.earliest[node] or k == last else p.earliest[node]
            latest = [spec.deadline] * (last + 1)
            for k in range(last - 1, -1, -1):
                node = ext[k]
                bound = latest[k + 1] - p.service[node] - tt[node][ext[k + 1]]
                window = p.latest[node] if k > 0 else spec.shift_end
                latest[k] = bound if bound < window else window
            route.arrive = arrive
            route.latest = latest

    def feasible(self, route: Route) -> bool:
        """Whether the route keeps its capacity, time windows and deadline (after a removal, say)."""
        p = self.p
        if route.peak[-1] > p.vehicles[route.spec].capacity + EPS or min(route.load) < -EPS:
            return False
        if p.has_time:
            ext = route.ext
            last = len(ext) - 1
            for k in range(1, last):
                if route.arrive[k] > p.latest[ext[k]] + EPS:
                    return False
            if route.arrive[last] > p.vehicles[route.spec].deadline + EPS:
                return False
        return True

    def total(self) -> float:
        """What the search minimises: route costs, unserved penalties and, with people, the price of the
        largest load ratio."""
        cost = sum(r.cost for r in self.routes) + self.p.unserved_cost(self.unserved)
        if self.p.fairness:
            cost += self.p.fairness * self.largest_ratio()
        return cost

    def largest_ratio(self) -> float:
        """The largest load ratio of any person's week with these routes counted in."""
        p = self.p
        added: dict[int, float] = {}
        for route in self.routes:
            k = p.workload_of[route.spec]
            if k is not None and route.stops > 0:
                spec = p.vehicles[route.spec]
                took = route.arrive[-1] - spec.shift_start if p.has_time else route.cost - spec.fixed_cost
                added[k] = added.get(k, 0.0) + took
        return largest(p.workloads, added, p.ratio_floor)

    def columns(self) -> list[Column]:
        return [(r.spec, tuple(r.ext[1:-1])) for r in self.routes if r.stops > 0]

    def load_columns(self, columns: Iterable[Column]) -> None:
        """Replace the solution by these routes; requests on none of them are unserved."""
        p = self.p
        self.routes = []
        self.where = [None] * p.n
        self.used = [0] * len(p.vehicles)
        served: set[int] = set()
        for spec, nodes in columns:
            v = p.vehicles[spec]
            route = Route(spec, [v.start, *nodes, v.end])
            self.refresh(route)
            self.routes.append(route)
            self.used[spec] += 1
            served.update(p.req_of[n] for n in nodes)
        self.unserved = self.scope - served
        self.cost = self.total()

    def remember(self, route: Route, touched: Touched) -> None:
        """Keep the route's stops as they were before this step, so a rejected step can restore them."""
        if id(route) not in touched:
            touched[id(route)] = (route, list(route.ext))
