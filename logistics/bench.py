"""Time building and solving synthetic allocations: `python -m logistics.bench 500 2000`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from logistics.allocation import build_allocation_model, solve_allocation
from logistics.synthetic import synthetic_input


def main(argv: Sequence[str] | None = None) -> int:
    """Print, per size, the model's size and the time to build it and to build and solve it."""
    parser = argparse.ArgumentParser(prog="python -m logistics.bench", description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[500, 2000], help="community counts")
    parser.add_argument("--goods", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=300.0)
    args = parser.parse_args(argv)
    print("communities goods lanes rows build_s total_s shipments min_coverage unreachable status")
    for n in args.sizes:
        data = synthetic_input(n, args.goods, seed=args.seed)
        started = time.perf_counter()
        problem, v = build_allocation_model(data)
        built = time.perf_counter() - started
        rows = len(problem.constraints())
        plan = solve_allocation(data, time_limit_s=args.time_limit)
        print(
            f"{n:>11} {args.goods:>5} {len(v.flows):>6} {rows:>6} {built:>7.2f} {plan.solve_time_s:>7.2f} "
            f"{len(plan.shipments):>9} {plan.min_coverage:>12.3f} {len(plan.unreachable):>11} {plan.status}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
