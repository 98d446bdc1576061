"""Routing benchmark: Rhizome's planner vs PyVRP vs OR-Tools (guided local search) at the same time limit.

    .venv/bin/python bench/routing.py --time-limit 10            # every instance in ../shared/bench
    .venv/bin/python bench/routing.py --classes small,medium     # a subset of size classes

Needs the `bench` extra (pyvrp, ortools, vrplib). Every solution is checked here, independently of the
solvers: each customer served once, capacities, pickup before delivery on the same route, time windows,
fleet size, and the cost recomputed from the file's coordinates under the benchmark's distance convention
(CVRPLIB: nearest-integer Euclidean, CMT unrounded; Li & Lim: unrounded). Ours runs through the CLI
(`rhizome plan vrp FILE --json`). Runs one solver at a time so each has a core to itself (2-core machine).
Prints a table per instance, the mean gap per size class and solver, and a last line of JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# ../shared/bench beside the checkout; from a worktree in /work/wt/<name>, two levels up.
BENCH = next(
    (d for d in (ROOT.parent / "shared" / "bench", ROOT.parents[1] / "shared" / "bench") if d.is_dir()),
    ROOT.parent / "shared" / "bench",
)
SOLVERS = ("ours", "pyvrp", "ortools")


@dataclass(frozen=True)
class Case:
    """One instance as this script reads it (not through Rhizome's parser)."""

    name: str
    path: Path
    kind: str  # cvrp | pdptw
    size_class: str
    coords: np.ndarray
    demand: np.ndarray  # per node; Li & Lim: + at pickups, - at deliveries
    capacity: float
    rounded: bool
    bks: float
    bks_vehicles: int | None = None
    fleet: int | None = None
    windows: np.ndarray | None = None  # (earliest, latest, service) per node
    pairs: dict[int, int] | None = None  # pickup -> delivery
    matrix: np.ndarray | None = None  # explicit distances (E-n13)

    def distance(self) -> np.ndarray:
        if self.matrix is not None:
            return self.matrix
        diff = self.coords[:, None, :] - self.coords[None, :, :]
        d = np.sqrt((diff**2).sum(axis=2))
        return np.floor(d + 0.5) if self.rounded else d


@dataclass
class Outcome:
    cost: float | None
    routes: int
    seconds: float
    error: str = ""


def size_class(n: int) -> str:
    return "small" if n <= 50 else "medium" if n <= 150 else "large"


def load_cases() -> list[Case]:
    import vrplib

    cases = []
    for path in sorted((BENCH / "cvrplib").glob("*.vrp")):
        inst = vrplib.read_instance(str(path), compute_edge_weights=False)
        sol = (path.with_suffix(".sol")).read_text()
        bks = float(re.search(r"Cost\s+([\d.]+)", sol).group(1))  # type: ignore[union-attr]
        matrix = None
        coords = np.asarray(inst.get("node_coord", np.zeros((int(inst["dimension"]), 2))), dtype=float)
        if inst.get("edge_weight_type") == "EXPLICIT":
            vrplib_full = vrplib.read_instance(str(path))
            matrix = np.asarray(vrplib_full["edge_weight"], dtype=float)
        n = int(inst["dimension"])
        cases.append(
            Case(
                name=path.stem,
                path=path,
                kind="cvrp",
                size_class=size_class(n),
                coords=coords,
                demand=np.asarray(inst["demand"], dtype=float),
                capacity=float(inst["capacity"]),
                rounded=not path.stem.upper().startswith("CMT"),
                bks=bks,
                matrix=matrix,
            )
        )
    bks_lines = (BENCH / "lilim" / "BKS.txt").read_text().split("\n")
    known = {}
    for line in bks_lines:
        if line.strip():
            parts = line.split()
            known[parts[0]] = (int(parts[1].split("=")[1]), float(parts[2].split("=")[1]))
    for path in sorted((BENCH / "lilim").glob("*.txt")):
        if path.stem not in known:
            continue
        rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        fleet, capacity = int(rows[0][0]), float(rows[0][1])
        nodes = np.array([[float(v) for v in r[:9]] for r in rows[1:]])
        pairs = {int(r[0]): int(r[8]) for r in nodes if r[3] > 0}
        vehicles, bks = known[path.stem]
        cases.append(
            Case(
                name=path.stem,
                path=path,
                kind="pdptw",
                size_class="pdptw",
                coords=nodes[:, 1:3],
                demand=nodes[:, 3],
                capacity=capacity,
                rounded=False,
                bks=bks,
                bks_vehicles=vehicles,
                fleet=fleet,
                windows=nodes[:, 4:7],
                pairs=pairs,
            )
        )
    return cases


def verify(case: Case, routes: list[list[int]]) -> tuple[float, str]:
    """Cost of the routes (node numbers as in the file) or an error; depot is 1 (CVRPLIB) or 0 (Li & Lim)."""
    dist = case.distance()
    offset = 1 if case.kind == "cvrp" else 0
    n = dist.shape[0]
    seen = [0] * n
    cost = 0.0
    for route in routes:
        idx = [v - offset for v in route]
        if any(not 0 < i < n for i in idx):
            return math.inf, f"node out of range in {route}"
        path = [0, *idx, 0]
        cost += sum(dist[a, b] for a, b in itertools.pairwise(path))
        for i in idx:
            seen[i] += 1
        if case.kind == "cvrp":
            if case.demand[idx].sum() > case.capacity + 1e-9:
                return math.inf, f"capacity exceeded on {route}"
            continue
        assert case.windows is not None and case.pairs is not None
        load, clock, on_route = 0.0, 0.0, set(idx)
        position = {v: k for k, v in enumerate(idx)}
        for a, b in itertools.pairwise(path):
            clock += (case.windows[a, 2] if a else 0.0) + dist[a, b]
            clock = max(clock, case.windows[b, 0])
            if clock > case.windows[b, 1] + 1e-6:
                return math.inf, f"time window missed at node {b}"
            if b:
                load += case.demand[b]
                if load > case.capacity + 1e-9:
                    return math.inf, f"capacity exceeded at node {b}"
        for pick, drop in case.pairs.items():
            if pick in on_route and (drop not in on_route or position[drop] < position[pick]):
                return math.inf, f"pair {pick}->{drop} broken"
    if any(seen[i] != 1 for i in range(1, n)):
        return math.inf, "some customer not served exactly once"
    if case.fleet is not None and len(routes) > case.fleet:
        return math.inf, f"{len(routes)} routes, fleet is {case.fleet}"
    return cost, ""


def run_ours(case: Case, limit: float) -> tuple[list[list[int]], float]:
    started = time.perf_counter()
    code = "import sys; from gateway.process.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "--log-level", "WARNING", "plan", "vrp", str(case.path)]
    cmd += ["--time-limit", str(limit), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit * 3 + 60, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"no output (exit {done.returncode}): {done.stderr[-300:]}")
    body = json.loads(lines[-1])
    return body["routes"], time.perf_counter() - started


def run_pyvrp(case: Case, limit: float) -> tuple[list[list[int]], float]:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    if case.kind != "cvrp":
        raise NotImplementedError("PyVRP has no paired pickup-and-delivery")
    started = time.perf_counter()
    data = pyvrp.read(case.path, round_func="round" if case.rounded else "exact")
    result = pyvrp.solve(data, stop=MaxRuntime(limit), seed=1, display=False)
    # Activities number clients from 0 after the depots; the file numbers nodes from 1.
    first = data.num_depots + 1
    routes = [[int(a.idx) + first for a in r if a.is_client()] for r in result.best.routes()]
    return routes, time.perf_counter() - started


def run_ortools(case: Case, limit: float) -> tuple[list[list[int]], float]:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    started = time.perf_counter()
    scale = 1 if case.rounded else 1000
    dist = np.rint(case.distance() * scale).astype(np.int64)
    n = dist.shape[0]
    if case.kind == "cvrp":
        k = int(re.search(r"-k(\d+)", case.name).group(1)) if "-k" in case.name else 0  # type: ignore[union-attr]
        lower = math.ceil(case.demand.sum() / case.capacity)
        vehicles = max(k, lower) + max(2, max(k, lower) // 5)
    else:
        vehicles = int(case.fleet or n)
    manager = pywrapcp.RoutingIndexManager(n, vehicles, 0)
    model = pywrapcp.RoutingModel(manager)
    rows = dist.tolist()
    # Matrices and vectors registered in C++ (no Python callback per arc evaluation).
    transit = model.RegisterTransitMatrix(rows)
    model.SetArcCostEvaluatorOfAllVehicles(transit)
    demand = [round(q) for q in case.demand]
    demand_cb = model.RegisterUnaryTransitVector(demand)
    model.AddDimensionWithVehicleCapacity(demand_cb, 0, [int(case.capacity)] * vehicles, True, "load")
    if case.kind == "pdptw":
        assert case.windows is not None and case.pairs is not None
        service = [round(s * scale) for s in case.windows[:, 2]]
        travel = [[rows[a][b] + service[a] for b in range(n)] for a in range(n)]
        time_cb = model.RegisterTransitMatrix(travel)
        horizon = math.ceil(case.windows[0, 1] * scale)
        model.AddDimension(time_cb, horizon, horizon, False, "time")
        clock = model.GetDimensionOrDie("time")
        for node in range(1, n):
            lo, hi = case.windows[node, 0] * scale, case.windows[node, 1] * scale
            clock.CumulVar(manager.NodeToIndex(node)).SetRange(math.ceil(lo), math.floor(hi))
        for pick, drop in case.pairs.items():
            p, d = manager.NodeToIndex(pick), manager.NodeToIndex(drop)
            model.AddPickupAndDelivery(p, d)
            model.solver().Add(model.VehicleVar(p) == model.VehicleVar(d))
            model.solver().Add(clock.CumulVar(p) <= clock.CumulVar(d))
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
        if case.kind == "cvrp"
        else routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(int(limit * 1000))
    solution = model.SolveWithParameters(params)
    if solution is None:
        raise RuntimeError("no solution")
    offset = 1 if case.kind == "cvrp" else 0
    routes = []
    for v in range(vehicles):
        index = model.Start(v)
        route = []
        while not model.IsEnd(index):
            node = manager.IndexToNode(index)
            if node:
                route.append(node + offset)
            index = solution.Value(model.NextVar(index))
        if route:
            routes.append(route)
    return routes, time.perf_counter() - started


RUNNERS: dict[str, Callable[[Case, float], tuple[list[list[int]], float]]] = {
    "ours": run_ours,
    "pyvrp": run_pyvrp,
    "ortools": run_ortools,
}


def run(case: Case, solver: str, limit: float) -> Outcome:
    try:
        routes, seconds = RUNNERS[solver](case, limit)
    except NotImplementedError as exc:
        return Outcome(None, 0, 0.0, f"n/a: {exc}")
    except Exception as exc:  # one solver's failure is a row in the table, not the end of the benchmark
        return Outcome(None, 0, 0.0, f"failed: {exc!r}"[:200])
    cost, problem = verify(case, routes)
    if problem:
        return Outcome(None, len(routes), seconds, f"infeasible: {problem}")
    return Outcome(cost, len(routes), seconds)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--classes", default="small,medium,large,pdptw")
    parser.add_argument("--instances", default="", help="comma-separated names (default: all in the classes)")
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    args = parser.parse_args()
    classes = args.classes.split(",")
    wanted = {s for s in args.instances.split(",") if s}
    solvers = args.solvers.split(",")
    cases = [c for c in load_cases() if c.size_class in classes and (not wanted or c.name in wanted)]
    gaps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    header = f"{'instance':<14} {'class':<7} {'BKS':>10}"
    for s in solvers:
        header += f" | {s + ' cost':>12} {'gap%':>7} {'rt':>3} {'s':>5}"
    print(header)
    print("-" * len(header))
    rows = []
    for case in cases:
        line = f"{case.name:<14} {case.size_class:<7} {case.bks:>10.2f}"
        record: dict[str, object] = {"instance": case.name, "class": case.size_class, "bks": case.bks}
        for s in solvers:
            out = run(case, s, args.time_limit)
            if out.cost is None:
                line += f" | {out.error[:30]:>30}"
                record[s] = {"error": out.error}
                continue
            gap = 100.0 * (out.cost - case.bks) / case.bks
            gaps[case.size_class][s].append(gap)
            line += f" | {out.cost:>12.2f} {gap:>7.2f} {out.routes:>3} {out.seconds:>5.1f}"
            record[s] = {"cost": round(out.cost, 4), "gap": round(gap, 3), "routes": out.routes}
        print(line, flush=True)
        rows.append(record)
    print()
    print(f"mean gap to BKS (%), time limit {args.time_limit:g} s; 'n' = instances with a verified solution")
    summary: dict[str, dict[str, float | None]] = {}
    for cls in classes:
        if cls not in gaps:
            continue
        parts = []
        summary[cls] = {}
        for s in solvers:
            values = gaps[cls][s]
            mean = round(sum(values) / len(values), 3) if values else None
            summary[cls][s] = mean
            parts.append(f"{s} {'n/a' if mean is None else f'{mean:.2f}%'} (n={len(values)})")
        print(f"  {cls:<7} " + ", ".join(parts))
    print(json.dumps({"time_limit_s": args.time_limit, "mean_gap_pct": summary, "instances": len(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
