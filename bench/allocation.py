"""Surplus allocation at scale: build and solve seeded synthetic regions (default 500 and 2,000 communities).

    .venv/bin/python -m bench.allocation                 # both cases, 500 and 2,000 communities x 10 goods
    .venv/bin/python -m bench.allocation --sizes 2000 --repeat 3 --cases scarcity

Two cases: `surplus` (bench/synthetic/allocation.py's mix, some goods plentiful) and `scarcity` (little to
spare, many short, people and hours short at random, one hard-to-reach island). One row per run: lanes,
build and solve time apart, the LP rounds of the worst-off-first filling, and the fairness of the plan:
the worst-off coverage (the lowest share of its minimum a reachable short community holds after the plan),
the 10th percentile and the Gini of those shares, for the LP's flows (lp_) and for the whole-unit lots
people carry (lots worth their trip: a far, light lane of a good that is not essential is dropped). A last
line of JSON with the medians.
Target from the issue: 2,000 x 10 in under 30 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence

from bench.synthetic.allocation import scarce_input, synthetic_input
from logistics.allocation import AllocationInput, AllocationPlan, build_network, in_lots, solve_flows

CASES: dict[str, Callable[[int, int, int], AllocationInput]] = {
    "surplus": lambda n, goods, seed: synthetic_input(n, goods, seed=seed),
    "scarcity": lambda n, goods, seed: scarce_input(n, goods, seed=seed),
}
COLUMNS = (
    ("case", 8),
    ("communities", 11),
    ("lanes", 7),
    ("build_s", 7),
    ("solve_s", 7),
    ("total_s", 7),
    ("rounds", 6),
    ("shipments", 9),
    ("lp_worst", 8),
    ("lp_p10", 6),
    ("lp_gini", 7),
    ("worst_off", 9),
    ("p10", 6),
    ("gini", 6),
)


def minimum_shares(data: AllocationInput, plan: AllocationPlan) -> list[float]:
    """Per reachable shortage (below its minimum), the share of its minimum it holds after the plan."""
    delivered: dict[tuple[int, int], float] = defaultdict(float)
    for s in plan.shipments:
        delivered[s.to_place, s.good_id] += s.quantity
    left_out = set(plan.unreachable)
    return [
        min(1.0, (h.stock + delivered[h.place_id, h.good_id]) / h.minimum)
        for h in data.holdings
        if h.stock < h.minimum and (h.place_id, h.good_id) not in left_out
    ]


def gini(values: Sequence[float]) -> float:
    """The Gini coefficient of `values` (0: all equal; 1: one holds everything)."""
    ordered = sorted(values)
    total = sum(ordered)
    if not ordered or total <= 0:
        return 0.0
    n = len(ordered)
    return sum((2 * i - n - 1) * v for i, v in enumerate(ordered, 1)) / (n * total)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values` (nearest rank), 1.0 when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 1.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="500,2000", help="community counts, comma-separated")
    parser.add_argument("--cases", default="surplus,scarcity", help=f"of {', '.join(CASES)}")
    parser.add_argument("--goods", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=300.0)
    args = parser.parse_args()
    print(" ".join(f"{h:>{w}}" for h, w in COLUMNS))
    results: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for case in args.cases.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            data = CASES[case](n, args.goods, args.seed)
            lanes = len(build_network(data).lanes)
            runs: list[dict[str, float]] = []
            for _ in range(args.repeat):
                flows = solve_flows(data, time_limit_s=args.time_limit)
                plan = in_lots(data, flows)
                shares, lp_shares = minimum_shares(data, plan), minimum_shares(data, flows)
                run = {
                    "build_s": plan.build_time_s,
                    "solve_s": plan.solve_time_s - plan.build_time_s,
                    "total_s": plan.solve_time_s,
                    "rounds": plan.rounds,
                    "shipments": len(plan.shipments),
                    "lp_worst": min(lp_shares, default=1.0),
                    "lp_p10": percentile(lp_shares, 0.1),
                    "lp_gini": gini(lp_shares),
                    "worst_off": min(shares, default=1.0),
                    "p10": percentile(shares, 0.1),
                    "gini": gini(shares),
                }
                runs.append(run)
                cells = [case, n, lanes, *(run[h] for h, _ in COLUMNS[3:])]
                print(" ".join(_cell(v, w) for v, (_, w) in zip(cells, COLUMNS, strict=True)), flush=True)
            results[case][str(n)] = {
                key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]
            } | {"runs": len(runs)}
    print(json.dumps({"goods": args.goods, "seed": args.seed, "cases": results}))
    return 0


def _cell(value: object, width: int) -> str:
    if isinstance(value, float):
        return f"{value:>{width}.3f}"
    return f"{value!s:>{width}}"


if __name__ == "__main__":
    raise SystemExit(main())
