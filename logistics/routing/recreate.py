"""The recreate half of a step: greedy cheapest insertion of the removed requests, in SISR's random order.

A single stop is checked in O(1) per position from the route's caches; a pickup-delivery pair in O(L) per
pickup position, walking the shifted service starts forward while load and windows hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from logistics.routing.problem import EPS, Problem
from logistics.routing.solution import Route, Solution, Touched

Found = tuple[float, int, int]  # (delta, i, j): the cheapest positions in one route, inserting after each
Insertion = tuple[float, Route | None, int, int, int]  # (delta, route or None for a new one, spec, i, j)
Found4 = tuple[float, int, int, int]  # (delta with the fixed cost, spec, i, j): a new route on one spec


def recreate(s: Solution, requests: list[int], touched: Touched) -> list[Route]:
    """Greedy cheapest insertion in SISR's random order; returns the routes opened on the way."""
    p = s.p
    _order(s, requests)
    opened: list[Route] = []
    for req in requests:
        best = best_insertion(s, req)
        if best is None:
            s.unserved.add(req)
            continue
        s.unserved.discard(req)
        _, route, spec, i, j = best
        if route is None:
            v = p.vehicles[spec]
            route = Route(spec, [v.start, v.end])
            s.routes.append(route)
            s.used[spec] += 1
            opened.append(route)
            touched[id(route)] = (route, [])
        else:
            s.remember(route, touched)
        r = p.requests[req]
        if r.pickup is None:
            route.ext.insert(i + 1, r.delivery)
        else:
            route.ext.insert(i + 1, r.pickup)
            route.ext.insert(j + 2, r.delivery)
        s.refresh(route)
    return opened


def _order(s: Solution, requests: list[int]) -> None:
    """SISR's insertion orders, drawn at random: shuffled, heaviest first, farthest or nearest first."""
    p = s.p
    rng = s.rng
    pick = rng.random() * 11.0
    if pick < 4.0:
        rng.shuffle(requests)
    elif pick < 8.0:
        requests.sort(key=lambda r: -p.requests[r].load)
    else:
        far = pick < 10.0
        requests.sort(key=lambda r: depot_distance(s, r), reverse=far)
    if p.weighted:  # when not all fit, the weightier requests take the room first (a stable sort)
        requests.sort(key=lambda r: -p.weight[r])


def depot_distance(s: Solution, req: int) -> float:
    """How far the request's stops lie from the first vehicle's start (a recreate order)."""
    r = s.p.requests[req]
    start = s.p.vehicles[0].start
    return s.p.dist[start][r.delivery] + (0.0 if r.pickup is None else s.p.dist[start][r.pickup])


def candidate_routes(s: Solution, req: int) -> Iterable[Route]:
    """Routes near the request; every route when the fleet is limited (small, real problems)."""
    if s.near is None:
        return s.routes
    where = s.where
    routes = dict.fromkeys(where[other] for other in s.near[req])  # ordered: the same seed, the same plan
    routes.pop(None, None)
    return routes.keys()  # type: ignore[return-value]


def best_insertion(s: Solution, req: int) -> Insertion | None:
    """Cheapest feasible place for the request: (delta, route or None for a new one, spec, i, j).

    Vehicle specs the request excludes are never offered a place, so no route of theirs ever carries it:
    insertion is the only way a request joins a route (ruin removes, 2-opt reorders within one route, and
    set partitioning picks among routes built here), which makes the exclusion a constraint of the search."""
    p = s.p
    r = p.requests[req]
    excluded = p.excluded[req]
    best: Insertion | None = None
    for route in candidate_routes(s, req):
        if excluded and route.spec in excluded:
            continue
        found = insert_pair(p, route, r.pickup, r.delivery, r.load) if r.pickup is not None else None
        if r.pickup is None:
            found = insert_single(p, route, r.delivery, r.load)
        if found is not None and (best is None or found[0] < best[0]):
            best = (found[0], route, route.spec, found[1], found[2])
    for delta, spec, i, j in openings(s, req):
        v = p.vehicles[spec]
        if v.count is not None and s.used[spec] >= v.count:
            continue
        if best is None or delta < best[0]:
            best = (delta, None, spec, i, j)
        break  # the cheapest vehicle still free: the rest cost as much or more
    return best


def openings(s: Solution, req: int) -> list[Found4]:
    """What a new route serving the request alone costs on each vehicle spec it may ride on, cheapest first
    (ties in spec order): computed once per request, since an empty route never changes. The first spec
    still free in this list is the one a scan of every spec would pick, so with hundreds of drivers a new
    route is priced in O(1) instead of O(specs)."""
    found = s.openings[req]
    if found is None:
        p = s.p
        r = p.requests[req]
        excluded = p.excluded[req]
        found = []
        for spec, v in enumerate(p.vehicles):
            if excluded and spec in excluded:
                continue
            empty = s.empty[spec]
            if r.pickup is None:
                place = insert_single(p, empty, r.delivery, r.load)
            else:
                place = insert_pair(p, empty, r.pickup, r.delivery, r.load)
            if place is not None:
                found.append((place[0] + v.fixed_cost, spec, place[1], place[2]))
        found.sort(key=lambda f: f[0])  # stable: equal prices keep spec order
        s.openings[req] = found
    return found


def insert_single(p: Problem, route: Route, node: int, load: float) -> Found | None:
    """Best position for a stop loaded at the start: (delta, i, i) inserting after position i."""
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


def insert_pair(p: Problem, route: Route, pick: int, drop: int, load: float) -> Found | None:
    """Best pickup position i and delivery position j >= i (inserting after each): (delta, i, j)."""
    if p.has_time:
        return _pair_timed(p, route, pick, drop, load)
    return _pair_untimed(p, route, pick, drop, load)


def _pair_untimed(p: Problem, route: Route, pick: int, drop: int, load: float) -> Found | None:
    """`insert_pair` without time: load and distance alone."""
    capacity = p.vehicles[route.spec].capacity + EPS
    ext, dist, loads = route.ext, p.dist, route.load
    best_delta = math.inf
    best = (-1, -1)
    last = len(ext) - 1
    for i in range(last):
        if loads[i] + load > capacity:
            continue
        a, b = ext[i], ext[i + 1]
        pick_delta = dist[a][pick] + dist[pick][b] - dist[a][b]
        if pick_delta >= best_delta:
            continue
        delta = dist[a][pick] + dist[pick][drop] + dist[drop][b] - dist[a][b]  # delivery right after
        if delta < best_delta:
            best_delta, best = delta, (i, i)
        for j in range(i + 1, last):
            c = ext[j]
            if loads[j] + load > capacity:
                break
            e = ext[j + 1]
            delta = pick_delta + dist[c][drop] + dist[drop][e] - dist[c][e]
            if delta < best_delta:
                best_delta, best = delta, (i, j)
    return None if best[0] < 0 else (best_delta, best[0], best[1])


def _pair_timed(p: Problem, route: Route, pick: int, drop: int, load: float) -> Found | None:
    """`insert_pair` with time windows: one loop, no helper calls, as it is the search's hottest code."""
    capacity = p.vehicles[route.spec].capacity + EPS
    ext, dist, tt, service = route.ext, p.dist, p.time, p.service
    arrive, latest, loads, earliest = route.arrive, route.latest, route.load, p.earliest
    e_p, l_p, s_p = earliest[pick], p.latest[pick], service[pick]
    e_d, l_d, s_d = earliest[drop], p.latest[drop], service[drop]
    best_delta = math.inf
    best = (-1, -1)
    last = len(ext) - 1
    for i in range(last):
        if loads[i] + load > capacity:
            continue
        a, b = ext[i], ext[i + 1]
        pick_delta = dist[a][pick] + dist[pick][b] - dist[a][b]
        if pick_delta >= best_delta:
            continue
        t_p = arrive[i] + service[a] + tt[a][pick]
        if t_p > l_p + EPS:
            break
        if t_p < e_p:
            t_p = e_p
        # Delivery right after the pickup.
        delta = dist[a][pick] + dist[pick][drop] + dist[drop][b] - dist[a][b]
        t_d = t_p + s_p + tt[pick][drop]
        if t_d < e_d:
            t_d = e_d
        if t_d <= l_d + EPS and t_d + s_d + tt[drop][b] <= latest[i + 1] + EPS and delta < best_delta:
            best_delta, best = delta, (i, i)
        # Delivery later: walk the shifted service starts forward while load and windows hold.
        t, prev, s_prev = t_p, pick, s_p
        for j in range(i + 1, last):
            c = ext[j]
            if loads[j] + load > capacity:
                break
            t = t + s_prev + tt[prev][c]
            if t < earliest[c]:
                t = earliest[c]
            if t > latest[j] + EPS:
                break  # with the triangle inequality no later delivery position can work
            prev, s_prev = c, service[c]
            e = ext[j + 1]
            delta = pick_delta + dist[c][drop] + dist[drop][e] - dist[c][e]
            if delta >= best_delta:
                continue
            t_d = t + s_prev + tt[c][drop]
            if t_d > l_d + EPS:
                continue
            if t_d < e_d:
                t_d = e_d
            if t_d + s_d + tt[drop][e] > latest[j + 1] + EPS:
                continue
            best_delta, best = delta, (i, j)
    return None if best[0] < 0 else (best_delta, best[0], best[1])
