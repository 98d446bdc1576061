"""The ruin half of a step: SISR string removal (slack induction by string removals, Christiaens & Vanden
Berghe 2020). Strings of consecutive stops are cut from routes near a random seed customer, so the recreate
step can re-thread a whole neighbourhood rather than one stop at a time."""

from __future__ import annotations

from typing import Final

from logistics.routing.solution import Solution, Touched

MEAN_REMOVED: Final = 10.0  # SISR's c-bar: customers removed per ruin on average
MAX_STRING: Final = 10  # SISR's L-max: longest string removed from one route
WHOLE_ROUTE_RUIN: Final = 0.05  # share of ruins that empty whole routes, so clusters can move as one


def ruin(s: Solution, touched: Touched) -> list[int]:
    """SISR string removal around a random seed; returns the removed requests."""
    removed = _pick_strings(s)
    p = s.p
    for req in removed:
        for node in p.requests[req].nodes:
            route = s.where[node]
            if route is not None:
                s.remember(route, touched)
                route.ext.remove(node)
                s.where[node] = None
    routes = {id(r): r for r, _ in touched.values()}
    for route in routes.values():
        s.refresh(route)
    # Without the triangle inequality a removal can break a time window: take the whole route out.
    for route in routes.values():
        if not s.feasible(route):
            for node in route.ext[1:-1]:
                removed.add(p.req_of[node])
                s.where[node] = None
            del route.ext[1:-1]
            s.refresh(route)
    return list(removed)


def _pick_strings(s: Solution) -> set[int]:
    """The requests of the strings to cut: one string from each route met among the seed's neighbours."""
    p = s.p
    rng = s.rng
    routed = [r for r in s.routes if r.stops > 0]
    if not routed:
        return set()
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
        route = s.where[node]
        if route is None or id(route) in ruined or p.req_of[node] in removed:
            continue
        ruined.add(id(route))
        length = route.stops if whole else int(rng.uniform(1.0, min(route.stops, string_max) + 1.0))
        at = s.pos[node]
        first = rng.randint(max(1, at - length + 1), min(at, route.stops - length + 1))
        for k in range(first, first + length):
            removed.add(p.req_of[route.ext[k]])
    return removed
