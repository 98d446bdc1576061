"""The planner at regional scale: one end-to-end plan (allocation, then routes) per region, each in its own
process so its peak memory is its own.

    .venv/bin/python bench/plan_scale.py                        # the sample region, 500 and 2,000 communities
    .venv/bin/python bench/plan_scale.py --regions sample,500

Each region is loaded into a fresh SQLite store; the child then runs what the planner loop runs once:
allocation (load, network and model build, LP rounds in HiGHS, save) and routing (load and district
build, search within the loop's 10 s, save); wall_s runs from the allocation's load to the routes' save
(loading the region file into the store is not counted). The parent reads the child's peak RSS from `os.wait4`
(own_peak_mb) and samples the RSS of its whole process tree, routing's workers included (peak_mb).
Goals (issue 18):
500 communities under 60 s and 1.5 GB, 2,000 under 5 min and 4 GB, on 2 cores.

Prints a table, then one JSON line `{"regions": [{"communities": N, "wall_s": ..., "peak_mb": ...}, ...]}`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROUTING_TIME_S = 10.0  # what the planner loop gives routing (logistics.service.ROUTING_TIME_S)
ALLOCATION_TIME_S = 240.0
NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # a Monday morning: the drivers' windows lie ahead
T = TypeVar("T")


class Timer:
    """Seconds spent in wrapped functions, by label (allocation's build and solve are timed apart)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, label: str, fn: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - started

        return timed


def run_region(spec: str) -> dict[str, Any]:
    """One end-to-end plan for `spec` ("sample" or a community count) in this process."""
    import logistics.allocation.solve as allocation_solve
    from bench.synthetic.region import generate_region
    from gateway.store.db import make_engine, make_session_factory
    from gateway.store.migrate import upgrade
    from gateway.store.region import load_region, read_region, sample_region_path
    from logistics.loaders.allocation import load_allocation_input, save_plan
    from logistics.loaders.routing import load_routing_input, save_routes
    from logistics.routing.districts import solve_region
    from logistics.service import ROUTING_WORKERS, STALL_ITERATIONS

    timer = Timer()
    allocation_solve.build_network = timer.wrap("network", allocation_solve.build_network)
    region = read_region(sample_region_path()) if spec == "sample" else generate_region(int(spec), seed=1)
    result: dict[str, Any] = {"region": spec, "communities": len(region["communities"])}
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/plan.db")
        upgrade(engine)
        sessions = make_session_factory(engine)
        started = time.perf_counter()
        with sessions.begin() as session:
            load_region(session, region)
        result["load_s"] = time.perf_counter() - started
        wall = time.perf_counter()
        with sessions.begin() as session:
            data = load_allocation_input(session, now=NOW)
        result["alloc_load_s"] = time.perf_counter() - wall
        t = time.perf_counter()
        plan = allocation_solve.solve_allocation(data, time_limit_s=ALLOCATION_TIME_S)
        result["alloc_s"] = time.perf_counter() - t
        # Building: the network and the models (the plan counts the models' time); solving: the LP rounds.
        result["alloc_build_s"] = timer.spent.get("network", 0.0) + plan.build_time_s
        result["alloc_solve_s"] = result["alloc_s"] - result["alloc_build_s"]
        result["alloc_rounds"] = plan.rounds
        t = time.perf_counter()
        with sessions.begin() as session:
            save_plan(session, plan)
        result["alloc_save_s"] = time.perf_counter() - t
        result["shipments"] = len(plan.shipments)
        t = time.perf_counter()
        with sessions.begin() as session:
            job = load_routing_input(session, now=NOW)
        result["route_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        routed = None
        if job is not None and job.data is not None:
            routed = solve_region(
                job.data,
                time_limit_s=ROUTING_TIME_S,
                stall_iterations=STALL_ITERATIONS,
                workers=ROUTING_WORKERS,
            )
        result["route_solve_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if job is not None:
            with sessions.begin() as session:
                save_routes(session, job, routed)
        result["route_save_s"] = time.perf_counter() - t
        result["wall_s"] = time.perf_counter() - wall
        engine.dispose()
    result.update(_route_figures(job, routed))
    return result


def _route_figures(job: Any, plan: Any) -> dict[str, Any]:
    """Requests, sites, districts, stops (site visits), routes and unrouted shipments of the routing run."""
    if job is None or job.data is None or plan is None:
        return {"requests": 0, "sites": 0, "districts": 0, "stops": 0, "routes": 0, "unrouted": 0}
    unrouted = len(plan.unassigned)  # one request per shipment
    stops = sum(len(job.data.visits(r)) for r in plan.routes)
    return {
        "requests": len(job.data.requests),
        "sites": len({s for s in job.keys.sites if s is not None}),
        "districts": len(plan.districts) or 1,
        "stops": stops,
        "routes": len(plan.routes),
        "unrouted": unrouted,
    }


def _child(spec: str) -> tuple[dict[str, Any], float, float]:
    """Run one region in a child process; its result, its own peak RSS (MB, from wait4) and the peak of
    its whole process tree (MB, sampled: routing's worker processes are the child's grandchildren, which
    wait4 does not count)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--child", spec, "--out", out.name], cwd=REPO)
        tree_peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, _tree_rss(proc.pid))
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"region {spec}: the child failed ({proc.returncode})")
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
    return result, usage.ru_maxrss / 1024.0, tree_peak / 2**20  # ru_maxrss is KiB on Linux


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants now (0 for processes gone meanwhile)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        grew = bool(more)
        tree |= more
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


COLUMNS = (
    ("region", 7, "{}"),
    ("communities", 11, "{}"),
    ("shipments", 9, "{}"),
    ("alloc_load_s", 12, "{:.1f}"),
    ("alloc_build_s", 13, "{:.1f}"),
    ("alloc_solve_s", 13, "{:.1f}"),
    ("alloc_rounds", 12, "{}"),
    ("alloc_s", 7, "{:.1f}"),
    ("alloc_save_s", 12, "{:.1f}"),
    ("requests", 8, "{}"),
    ("sites", 5, "{}"),
    ("districts", 9, "{}"),
    ("route_build_s", 13, "{:.1f}"),
    ("route_solve_s", 13, "{:.1f}"),
    ("route_save_s", 12, "{:.1f}"),
    ("stops", 5, "{}"),
    ("routes", 6, "{}"),
    ("unrouted", 8, "{}"),
    ("wall_s", 6, "{:.1f}"),
    ("own_peak_mb", 11, "{:.0f}"),
    ("peak_mb", 7, "{:.0f}"),
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--regions", default="sample,500,2000", help="'sample' or community counts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        Path(args.out).write_text(json.dumps(run_region(args.child)))
        return 0
    print(" ".join(f"{name:>{width}}" for name, width, _ in COLUMNS), flush=True)
    rows = []
    for spec in args.regions.split(","):
        result, own, tree = _child(spec)
        result["own_peak_mb"] = own
        result["peak_mb"] = max(own, tree)
        rows.append(result)
        print(" ".join(f"{fmt.format(result[n]):>{w}}" for n, w, fmt in COLUMNS), flush=True)
    keep = ("communities", "wall_s", "peak_mb", "shipments", "stops", "routes", "unrouted")
    print(
        json.dumps({"regions": [{k: round(r[k], 1) for k in keep} | {"region": r["region"]} for r in rows]})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
