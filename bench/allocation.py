"""Surplus allocation at scale: build and solve seeded synthetic regions (default 500 and 2,000 communities).

    .venv/bin/python bench/allocation.py                 # 500 and 2,000 communities x 10 goods, seed 1
    .venv/bin/python bench/allocation.py --sizes 2000 --repeat 3

Prints one row per run (lanes, constraints, build time, build + both solves, figures of the plan) and a last
line of JSON with the median total time per size. Target from the issue: 2,000 x 10 in under 30 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.synthetic.allocation import synthetic_input
from logistics.allocation import build_allocation_model, solve_allocation


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="500,2000", help="community counts, comma-separated")
    parser.add_argument("--goods", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=300.0)
    args = parser.parse_args()
    header = ("communities", "goods", "lanes", "rows", "build_s", "status", "total_s", "shipments", "min_cov")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (11, 5, 7, 6, 8, 8, 8, 9, 8), strict=True)))
    results: dict[str, dict[str, float]] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        data = synthetic_input(n, args.goods, seed=args.seed)
        totals = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            problem, v = build_allocation_model(data)
            built = time.perf_counter() - started
            plan = solve_allocation(data, time_limit_s=args.time_limit)
            totals.append(plan.solve_time_s)
            rows = len(problem.constraints())
            print(
                f"{n:>11} {args.goods:>5} {len(v.flows):>7} {rows:>6} {built:>8.2f} {plan.status:>8} "
                f"{plan.solve_time_s:>8.2f} {len(plan.shipments):>9} {plan.min_coverage:>8.3f}",
                flush=True,
            )
        results[str(n)] = {"median_total_s": round(statistics.median(totals), 2), "runs": len(totals)}
    print(json.dumps({"goods": args.goods, "seed": args.seed, "sizes": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
