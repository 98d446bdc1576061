"""How evenly routes fall on the people who drive them: load ratios (a week's time / the pledge), the largest
of them and their Gini coefficient. The search and the set-partitioning model price the largest ratio, so
among plans of similar length the one that spares the busiest person wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from logistics.routing.data import Workload


def ratios(workloads: Sequence[Workload], added: Mapping[int, float]) -> dict[int, float]:
    """Person -> their load ratio: the fullest of their weeks, with `added` time (workload index -> time
    of the new routes) counted in."""
    by_person: dict[int, float] = {}
    for k, w in enumerate(workloads):
        ratio = (w.held + added.get(k, 0.0)) / w.pledge
        by_person[w.person] = max(ratio, by_person.get(w.person, 0.0))
    return by_person


def largest(workloads: Sequence[Workload], added: Mapping[int, float], floor: float) -> float:
    """The largest ratio of any week: `floor` (the largest before the new routes) or a week they add to.
    Only the weeks in `added` are looked at, since the others stay at or below the floor."""
    high = floor
    for k, time in added.items():
        w = workloads[k]
        ratio = (w.held + time) / w.pledge
        if ratio > high:
            high = ratio
    return high


def gini(values: Sequence[float]) -> float:
    """The Gini coefficient of non-negative values: 0 when all are equal (or there are none), towards 1
    when one holds everything."""
    total = sum(values)
    if len(values) < 2 or total <= 0:
        return 0.0
    ordered = sorted(values)
    n = len(ordered)
    weighted = sum((2 * (i + 1) - n - 1) * v for i, v in enumerate(ordered))
    return weighted / (n * total)


def figures(workloads: Sequence[Workload], added: Mapping[int, float]) -> tuple[float, float]:
    """(max_load_ratio, load_gini) over the people of `workloads`."""
    by_person = ratios(workloads, added)
    values = list(by_person.values())
    return (max(values, default=0.0), gini(values))
