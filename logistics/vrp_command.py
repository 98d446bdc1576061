"""`rhizome plan vrp FILE`: route a benchmark instance and print it (last line JSON with --json)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path

from gateway.contract.errors import InvalidInput
from logistics.common.errors import PlanningError
from logistics.routing import Instance, read_instance, solve_routing

log = logging.getLogger(__name__)


def run_vrp(path: str, time_limit_s: float, seed: int = 1, as_json: bool = False) -> int:
    """Solve the file's instance; print routes in the file's node numbers and the cost. Exit code."""
    if not time_limit_s > 0:
        raise InvalidInput("--time-limit must be positive")
    instance = read_instance(path)
    started = time.perf_counter()
    last_report = [started]

    def progress(fraction: float, best: float) -> None:
        now = time.perf_counter()
        if now - last_report[0] >= 2.0:  # a line every 2 s on stderr; stdout stays the result
            last_report[0] = now
            print(f"  {fraction:4.0%} of the time used, best cost {best:.2f}", file=sys.stderr)

    try:
        plan = solve_routing(instance.data, time_limit_s, seed=seed, progress=progress)
    except PlanningError as exc:
        print(f"no routes: {exc}")
        return 1
    runtime = time.perf_counter() - started
    routes = [[instance.label(n) for n in r.nodes] for r in plan.routes]
    print(f"{instance.data.name}: {len(routes)} routes, cost {plan.cost:.2f}, {runtime:.2f} s")
    known = best_known(path)
    if known is not None and known > 0:
        gap = 100.0 * (plan.cost - known) / known
        print(f"best known {known:.2f}: gap {gap:.2f}%")
    else:
        print("no best-known solution beside the file (a .sol file or BKS.txt): gap not reported")
    for outcome in plan.sp_rounds:
        print(f"set partitioning over the route pool: {outcome}")
    for k, route in enumerate(routes, 1):
        print(f"Route #{k}: {' '.join(map(str, route))}")
    for u in plan.unassigned:
        print(f"unassigned {_request_label(instance, u.request)}: {u.reason}")
    if as_json:
        body: dict[str, object] = {
            "cost": round(plan.cost, 6),
            "routes": routes,
            "runtime_s": round(runtime, 3),
        }
        if known is not None and known > 0:
            body["best_known"] = known
            body["gap_pct"] = round(100.0 * (plan.cost - known) / known, 4)
        body["sp_rounds"] = list(plan.sp_rounds)
        if plan.unassigned:
            body["unassigned"] = [_request_label(instance, u.request) for u in plan.unassigned]
        print(json.dumps(body, separators=(",", ":")))
    return 0 if not plan.unassigned else 1


def _request_label(instance: Instance, request: int) -> int:
    r = instance.data.requests[request]
    return instance.label(r.delivery if r.pickup is None else r.pickup)


def best_known(path: str) -> float | None:
    """The best-known cost published beside the instance: `Cost` in FILE.sol (CVRPLIB) or the distance in
    BKS.txt (Li & Lim, `name vehicles=.. distance=..`); None when there is none."""
    file = Path(path)
    solution = file.with_suffix(".sol")
    try:
        if solution.is_file():
            found = re.search(r"^Cost\s+([\d.]+)", solution.read_text(errors="replace"), re.MULTILINE)
            return float(found.group(1)) if found else None
        table = file.parent / "BKS.txt"
        if table.is_file():
            for line in table.read_text(errors="replace").splitlines():
                parts = line.split()
                if parts and parts[0] == file.stem:
                    fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
                    return float(fields["distance"]) if "distance" in fields else None
    except (OSError, ValueError) as exc:
        log.warning("could not read the best-known solution beside %s: %s", path, exc)
    return None
