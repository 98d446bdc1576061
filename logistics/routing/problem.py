"""The routing model the search works on: the input flattened into plain lists, with the derived facts
(who owns each node, load changes, neighbours, the unserved penalty) computed once.

Plain Python lists on purpose: the search's inner loops index single matrix entries, which lists do several
times faster than numpy arrays.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
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
        # Vehicle specs each request may not ride on (its driver declined it); empty sets for benchmarks.
        self.excluded = [r.excluded for r in data.requests]
        self.has_exclusions = any(self.excluded)
        # Fairness: whose week each spec's route adds to, and the price of the largest load ratio.
        self.workloads = data.workloads
        self.workload_of = [v.workload for v in data.vehicles]
        self.fairness = data.fairness if any(w is not None for w in self.workload_of) else 0.0
        self.ratio_floor = max((w.held / w.pledge for w in data.workloads), default=0.0)
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
        # Leaving one request out must cost more than any set of routes could save (and than any change of
        # the fairness term, which the largest ratio, at most 1 under the hard limits, bounds).
        fixed = max((v.fixed_cost for v in self.vehicles), default=0.0)
        self.penalty = (n + 2) * (longest + fixed) + 1.0 + self.fairness

    def duration(self, spec: int, nodes: Sequence[int]) -> float:
        """From the shift start to the return at the end node, as `Solution.refresh` times a route (the
        route's cost less its fixed cost when there is no time)."""
        v = self.vehicles[spec]
        path = [v.start, *nodes, v.end]
        if not self.has_time:
            return sum(self.dist[a][b] for a, b in itertools.pairwise(path))
        t = v.shift_start
        for k in range(1, len(path)):
            prev, node = path[k - 1], path[k]
            t = t + self.service[prev] + self.time[prev][node]
            if k < len(path) - 1 and t < self.earliest[node]:
                t = self.earliest[node]
        return t - v.shift_start

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
