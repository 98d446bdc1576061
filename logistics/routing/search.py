"""Ruin-and-recreate search over routes (SISR: slack induction by string removals, Christiaens & Vanden
Berghe 2020) with simulated annealing, feeding a pool of good routes to the set-partitioning model.

Plain Python lists on purpose: the inner loops index single matrix entries, which lists do several times
faster than numpy arrays. Every route keeps prefix loads, earliest service starts and latest feasible starts,
so an insertion is checked in O(1) (a single node) or O(L) per pickup position (a pair).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np

from logistics.routing.data import RoutingInput

NEIGHBOURS: Final = 40  # nearest nodes kept per node: ruin seeds strings there, insertion looks there
MEAN_REMOVED: Final = 10.0  # SISR's c-bar: customers removed per ruin on average
MAX_STRING: Final = 10  # SISR's L-max: longest string removed from one route
WHOLE_ROUTE_RUIN: Final = 0.05  # share of ruins that empty whole routes, so clusters can move as one
ALL_ROUTES_UP_TO: Final = 250  # up to this many customers every route is tried for each insertion
TWO_OPT_UP_TO: Final = 400  # up to this many customers every changed route is uncrossed (2-opt)
EPS: Final = 1e-9

Column = tuple[int, tuple[int, ...]]  # (vehicle spec, nodes in order): one route


class Problem:
    """The input flattened into lists the search reads in its inner loops."""

    def __init__(self, data: RoutingInput) -> None:
        self.data = data
        n = data.size
        self.n = n
        self.dist: list[list[float]] = data.distance.tolist()
        self.time = self.dist if data.duration is None else data.duration.tolist()
        stops = [data.stop(i) for i in range(n)]
        self.earliest = [s.earliest for s in stops]
        self.latest = [s.latest for s in stops]
        self.service = [s.service for s in stops]
        self.requests = data.requests
        self.weight = [r.weight for r in data.requests]  # what leaving each one out costs, in penalties
        self.weighted = len(set(self.weight)) > 1
        self.req_of = [-1] * n
        self.change = [0.0] * n  # load change on serving the node
        self.preload = [0.0] * len(data.requests)  # load carried from the start
        for i, r in enumerate(data.requests):
            for node in r.nodes:
                self.req_of[node] = i
            if r.pickup is None:
                self.preload[i] = r.load
            else:
                self.change[r.pickup] = r.load
            self.change[r.delivery] = -r.load
        self.vehicles = data.vehicles
        self.has_time = bool(data.stops) or any(math.isfinite(v.deadline) for v in data.vehicles)
        # Reversing part of a route keeps it feasible only without time, pairs and with symmetric distances.
        self.reversible = (
            not self.has_time
            and all(r.pickup is None for r in data.requests)
            and bool(np.allclose(data.distance, data.distance.T))
        )
        self.customers = [i for i in range(n) if self.req_of[i] >= 0]
        self.neighbours = self._neighbours(data.distance)
        longest = max((max(row) for row in self.dist), default=0.0)
        # Leaving one request out must cost more than any set of routes could save.
        self.penalty = (n + 2) * (longest + max((v.fixed_cost for v in self.vehicles), default=0.0)) + 1.0

    def unserved_cost(self, requests: Iterable[int]) -> float:
        """The penalty for leaving these requests out, by their weights."""
        return self.penalty * sum(self.weight[r] for r in requests)

    def _neighbours(self, distance: np.ndarray) -> list[list[int]]:
        result: list[list[int]] = [[] for _ in range(self.n)]
        customers = np.array(self.customers, dtype=int)
        if customers.size == 0:
            return result
        sym = distance[np.ix_(customers, customers)] + distance[np.ix_(customers, customers)].T
        k = min(NEIGHBOURS, customers.size - 1)
        for row, node in enumerate(self.customers):
            if k <= 0:
                break
            order = np.argpartition(sym[row], k)[: k + 1]
            order = order[np.argsort(sym[row][order], kind="stable")]
            result[node] = [int(customers[j]) for j in order if customers[j] != node][:k]
        return result


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


class Search:
    """A solution under ruin and recreate: routes, the node -> (route, position) index, unserved requests."""

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
        for spec, v in enumerate(problem.vehicles):
            self.empty.append(Route(spec, [v.start, v.end]))
            self.refresh(self.empty[-1], index=False)

    # --- bookkeeping -------------------------------------------------------------------------------------
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
        return sum(r.cost for r in self.routes) + self.p.unserved_cost(self.unserved)

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

    # --- ruin --------------------------------------------------------------------------------------------
    def ruin(self, touched: dict[int, tuple[Route, list[int]]]) -> list[int]:
        """SISR string removal around a random seed; returns the removed requests."""
        p = self.p
        rng = self.rng
        routed = [r for r in self.routes if r.stops > 0]
        if not routed:
            return []
        mean_len = sum(r.stops for r in routed) / len(routed)
        string_max = max(1.0, min(MAX_STRING, mean_len))
        strings_max = 4.0 * MEAN_REMOVED / (1.0 + string_max) - 1.0
        strings = max(1, int(rng.uniform(1.0, strings_max + 1.0)))
        seed = rng.choice(p.customers)
        whole = rng.random() < WHOLE_ROUTE_RUIN  # now and then empty routes entirely: clusters move as one
        removed: set[int] = set()
        ruined: set[int] = set()
        for node in [seed, *p.neighbours[seed]]:
            if len(ruined) >= strings:
                break
            route = self.where[node]
            if route is None or id(route) in ruined or p.req_of[node] in removed:
                continue
            ruined.add(id(route))
            length = route.stops if whole else int(rng.uniform(1.0, min(route.stops, string_max) + 1.0))
            at = self.pos[node]
            first = rng.randint(max(1, at - length + 1), min(at, route.stops - length + 1))
            for k in range(first, first + length):
                removed.add(p.req_of[route.ext[k]])
        for req in removed:
            for node in p.requests[req].nodes:
                route = self.where[node]
                if route is not None:
                    self._remember(route, touched)
                    route.ext.remove(node)
                    self.where[node] = None
        routes = {id(r): r for r, _ in touched.values()}
        for route in routes.values():
            self.refresh(route)
        # Without the triangle inequality a removal can break a time window: take the whole route out.
        for route in routes.values():
            if not self.feasible(route):
                for node in route.ext[1:-1]:
                    removed.add(p.req_of[node])
                    self.where[node] = None
                del route.ext[1:-1]
                self.refresh(route)
        return list(removed)

    def _remember(self, route: Route, touched: dict[int, tuple[Route, list[int]]]) -> None:
        if id(route) not in touched:
            touched[id(route)] = (route, list(route.ext))

    # --- recreate ----------------------------------------------------------------------------------------
    def recreate(self, requests: list[int], touched: dict[int, tuple[Route, list[int]]]) -> list[Route]:
        """Greedy cheapest insertion in SISR's random order; returns the routes opened on the way."""
        p = self.p
        rng = self.rng
        pick = rng.random() * 11.0
        if pick < 4.0:
            rng.shuffle(requests)
        elif pick < 8.0:
            requests.sort(key=lambda r: -p.requests[r].load)
        else:
            far = pick < 10.0
            requests.sort(key=lambda r: self.depot_distance(r), reverse=far)
        if p.weighted:  # when not all fit, the weightier requests take the room first (a stable sort)
            requests.sort(key=lambda r: -p.weight[r])
        opened: list[Route] = []
        for req in requests:
            best = self.best_insertion(req)
            if best is None:
                self.unserved.add(req)
                continue
            self.unserved.discard(req)
            _, route, spec, i, j = best
            if route is None:
                v = p.vehicles[spec]
                route = Route(spec, [v.start, v.end])
                self.routes.append(route)
                self.used[spec] += 1
                opened.append(route)
                touched[id(route)] = (route, [])
            else:
                self._remember(route, touched)
            r = p.requests[req]
            if r.pickup is None:
                route.ext.insert(i + 1, r.delivery)
            else:
                route.ext.insert(i + 1, r.pickup)
                route.ext.insert(j + 2, r.delivery)
            self.refresh(route)
        return opened

    def depot_distance(self, req: int) -> float:
        """How far the request's stops lie from the first vehicle's start (a recreate order)."""
        r = self.p.requests[req]
        start = self.p.vehicles[0].start
        return self.p.dist[start][r.delivery] + (0.0 if r.pickup is None else self.p.dist[start][r.pickup])

    def candidate_routes(self, req: int) -> Iterable[Route]:
        """Routes near the request; every route when the fleet is limited (small, real problems)."""
        if self.near is None:
            return self.routes
        where = self.where
        routes = dict.fromkeys(
            where[other] for other in self.near[req]
        )  # ordered: the same seed, the same plan
        routes.pop(None, None)
        return routes.keys()  # type: ignore[return-value]

    def best_insertion(self, req: int) -> tuple[float, Route | None, int, int, int] | None:
        """Cheapest feasible place for the request: (delta, route or None for a new one, spec, i, j)."""
        p = self.p
        r = p.requests[req]
        best: tuple[float, Route | None, int, int, int] | None = None
        for route in self.candidate_routes(req):
            found = self._insert_pair(route, r.pickup, r.delivery, r.load) if r.pickup is not None else None
            if r.pickup is None:
                found = self._insert_single(route, r.delivery, r.load)
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], route, route.spec, found[1], found[2])
        for spec, v in enumerate(p.vehicles):
            if v.count is not None and self.used[spec] >= v.count:
                continue
            empty = self.empty[spec]
            if r.pickup is None:
                found = self._insert_single(empty, r.delivery, r.load)
            else:
                found = self._insert_pair(empty, r.pickup, r.delivery, r.load)
            if found is not None:
                delta = found[0] + v.fixed_cost
                if best is None or delta < best[0]:
                    best = (delta, None, spec, found[1], found[2])
        return best

    def _insert_single(self, route: Route, node: int, load: float) -> tuple[float, int, int] | None:
        """Best position for a stop loaded at the start: (delta, i, i) inserting after position i."""
        p = self.p
        capacity = p.vehicles[route.spec].capacity + EPS
        ext = route.ext
        dist = p.dist
        out = dist[node]
        best_delta = math.inf
        best_at = -1
        peak = route.peak
        if not p.has_time:
            for k in range(len(ext) - 1):
                if peak[k] + load > capacity:
                    break  # the prefix peak only grows
                a = ext[k]
                b = ext[k + 1]
                da = dist[a]
                delta = da[node] + out[b] - da[b]
                if delta < best_delta:
                    best_delta = delta
                    best_at = k
        else:
            tt = p.time
            arrive = route.arrive
            latest = route.latest
            e_n = p.earliest[node]
            l_n = p.latest[node]
            s_n = p.service[node]
            for k in range(len(ext) - 1):
                if peak[k] + load > capacity:
                    break
                a = ext[k]
                b = ext[k + 1]
                t = arrive[k] + p.service[a] + tt[a][node]
                if t > l_n + EPS:
                    break  # later positions only start later
                if t < e_n:
                    t = e_n
                if t + s_n + tt[node][b] > latest[k + 1] + EPS:
                    continue
                da = dist[a]
                delta = da[node] + out[b] - da[b]
                if delta < best_delta:
                    best_delta = delta
                    best_at = k
        return None if best_at < 0 else (best_delta, best_at, best_at)

    def _insert_pair(self, route: Route, pick: int, drop: int, load: float) -> tuple[float, int, int] | None:
        """Best pickup position i and delivery position j >= i (inserting after each): (delta, i, j)."""
        p = self.p
        capacity = p.vehicles[route.spec].capacity + EPS
        ext = route.ext
        dist = p.dist
        tt = p.time
        has_time = p.has_time
        arrive = route.arrive
        latest = route.latest
        loads = route.load
        service = p.service
        e_p, l_p, s_p = p.earliest[pick], p.latest[pick], service[pick]
        e_d, l_d, s_d = p.earliest[drop], p.latest[drop], service[drop]
        best_delta = math.inf
        best = (-1, -1)
        last = len(ext) - 1
        for i in range(last):
            if loads[i] + load > capacity:
                continue
            a = ext[i]
            b = ext[i + 1]
            pick_delta = dist[a][pick] + dist[pick][b] - dist[a][b]
            if pick_delta >= best_delta:
                continue
            t_p = 0.0
            if has_time:
                t_p = arrive[i] + service[a] + tt[a][pick]
                if t_p > l_p + EPS:
                    break
                if t_p < e_p:
                    t_p = e_p
            # Delivery right after the pickup.
            delta = dist[a][pick] + dist[pick][drop] + dist[drop][b] - dist[a][b]
            ok = True
            if has_time:
                t_d = t_p + s_p + tt[pick][drop]
                if t_d < e_d:
                    t_d = e_d
                ok = t_d <= l_d + EPS and t_d + s_d + tt[drop][b] <= latest[i + 1] + EPS
            if ok and delta < best_delta:
                best_delta = delta
                best = (i, i)
            # Delivery later: walk the shifted service starts forward while load and windows hold.
            t = t_p
            prev = pick
            s_prev = s_p
            for j in range(i + 1, last):
                c = ext[j]
                if loads[j] + load > capacity:
                    break
                if has_time:
                    t = t + s_prev + tt[prev][c]
                    if t < p.earliest[c]:
                        t = p.earliest[c]
                    if t > latest[j] + EPS:
                        break  # with the triangle inequality no later delivery position can work
                    prev = c
                    s_prev = service[c]
                e = ext[j + 1]
                delta = pick_delta + dist[c][drop] + dist[drop][e] - dist[c][e]
                if delta >= best_delta:
                    continue
                if has_time:
                    t_d = t + s_prev + tt[c][drop]
                    if t_d > l_d + EPS:
                        continue
                    if t_d < e_d:
                        t_d = e_d
                    if t_d + s_d + tt[drop][e] > latest[j + 1] + EPS:
                        continue
                best_delta = delta
                best = (i, j)
        return None if best[0] < 0 else (best_delta, best[0], best[1])

    def two_opt(self, route: Route) -> bool:
        """Uncross the route (reverse segments while that shortens it); True if it changed."""
        ext = route.ext
        dist = self.p.dist
        last = len(ext) - 1
        changed = False
        improved = True
        while improved:
            improved = False
            for i in range(last - 1):
                a, b = ext[i], ext[i + 1]
                da = dist[a]
                dab = da[b]
                for j in range(i + 2, last):
                    c, d = ext[j], ext[j + 1]
                    if da[c] + dist[b][d] < dab + dist[c][d] - EPS:
                        ext[i + 1 : j + 1] = ext[j:i:-1]
                        changed = improved = True
                        a, b = ext[i], ext[i + 1]
                        da = dist[a]
                        dab = da[b]
        return changed

    # --- one iteration -----------------------------------------------------------------------------------
    def step(self, temperature: float, on_accept: Callable[[list[Route]], None]) -> bool:
        """Ruin, recreate, accept or undo by simulated annealing; True if accepted."""
        touched: dict[int, tuple[Route, list[int]]] = {}
        before_unserved = set(self.unserved)
        before_used = list(self.used)
        removed = self.ruin(touched)
        removed.extend(r for r in before_unserved if r not in removed)
        opened = self.recreate(removed, touched)
        if self.uncross:
            for route, _ in touched.values():
                if route.stops > 2 and self.two_opt(route):
                    self.refresh(route)
        new_cost = self.total()
        threshold = self.cost - temperature * math.log(self.rng.random() or 1e-300)
        if new_cost < threshold:
            self.cost = new_cost
            changed = [r for r, _ in touched.values() if r.stops > 0]
            emptied = [r for r, _ in touched.values() if r.stops == 0]
            for route in emptied:
                self.routes.remove(route)
                self.used[route.spec] -= 1
            on_accept(changed)
            return True
        # Undo: restore every touched route, drop the routes opened on the way.
        for route in opened:
            self.routes.remove(route)
        for route, _ in touched.values():
            for node in route.ext[1:-1]:
                self.where[node] = None
        for route, ext in touched.values():
            if ext:
                route.ext = ext
                self.refresh(route)
        self.unserved = before_unserved
        self.used = before_used
        return False


@dataclass
class Pool:
    """Distinct routes seen in good solutions, keyed by vehicle spec and node set, cheapest order kept."""

    routes: dict[tuple[int, frozenset[int]], tuple[float, tuple[int, ...]]]

    def add(self, spec: int, nodes: tuple[int, ...], cost: float) -> None:
        key = (spec, frozenset(nodes))
        known = self.routes.get(key)
        if known is None or cost < known[0] - EPS:
            self.routes[key] = (cost, nodes)

    def __len__(self) -> int:
        return len(self.routes)
