"""One step of the search: ruin, recreate, uncross, then accept or undo by simulated annealing.

Ruin-and-recreate after SISR (slack induction by string removals, Christiaens & Vanden Berghe 2020): the
ruin is in `ruin.py`, the recreate in `recreate.py`, the solution's bookkeeping in `solution.py`. Accepted
routes feed the pool of the set-partitioning model (`set_partition.Pool`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from logistics.routing.problem import EPS
from logistics.routing.recreate import recreate
from logistics.routing.ruin import ruin
from logistics.routing.solution import Route, Solution, Touched


def step(s: Solution, temperature: float, on_accept: Callable[[list[Route]], None]) -> bool:
    """Ruin, recreate, accept or undo by simulated annealing; True if accepted."""
    touched: Touched = {}
    before_unserved = set(s.unserved)
    before_used = list(s.used)
    removed = ruin(s, touched)
    removed.extend(r for r in before_unserved if r not in removed)
    opened = recreate(s, removed, touched)
    if s.uncross:
        for route, _ in touched.values():
            if route.stops > 2 and two_opt(s, route):
                s.refresh(route)
    new_cost = s.total()
    threshold = s.cost - temperature * math.log(s.rng.random() or 1e-300)
    if new_cost < threshold:
        s.cost = new_cost
        changed = [r for r, _ in touched.values() if r.stops > 0]
        emptied = [r for r, _ in touched.values() if r.stops == 0]
        for route in emptied:
            s.routes.remove(route)
            s.used[route.spec] -= 1
        on_accept(changed)
        return True
    _undo(s, touched, opened, before_unserved, before_used)
    return False


def _undo(s: Solution, touched: Touched, opened: list[Route], unserved: set[int], used: list[int]) -> None:
    """Restore every touched route and drop the routes opened on the way."""
    for route in opened:
        s.routes.remove(route)
    for route, _ in touched.values():
        for node in route.ext[1:-1]:
            s.where[node] = None
    for route, ext in touched.values():
        if ext:
            route.ext = ext
            s.refresh(route)
    s.unserved = unserved
    s.used = used


def two_opt(s: Solution, route: Route) -> bool:
    """Uncross the route (reverse segments while that shortens it); True if it changed."""
    ext = route.ext
    dist = s.p.dist
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
