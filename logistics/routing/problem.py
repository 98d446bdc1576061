"""The routing model the search works on: the input flattened into plain lists, with the derived facts
(who owns each node, load changes, neighbours, the unserved penalty) computed once.

Plain Python lists on purpose: the search's inner loops index single matrix entries, which lists do several
times faster than numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

import numpy as np

from logistics.routing.data import RoutingInput

NEIGHBOURS: Final = 40  # nearest nodes kept per node: ruin seeds strings there, insertion looks there
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
