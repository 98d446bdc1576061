"""`rhizome plan`: propose deliveries from surplus to shortage, once or on a timer."""

from __future__ import annotations

import argparse
import math
from typing import Any

from gateway.process.settings import Settings


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the planner's subcommands; heavy imports wait for the handler so `rhizome --help` stays fast."""
    plan = commands.add_parser(
        "plan",
        help="propose shipments from communities with surplus to communities below their minimum",
        description="Allocate surplus to shortages (worst-off first) and store the result as the proposed "
        "delivery plan, with an alert queued for each receiving community.",
    )
    plan.add_argument("--loop", action="store_true", help="re-plan every interval until SIGINT/SIGTERM")
    plan.add_argument(
        "--interval",
        type=float,
        metavar="S",
        help="seconds between runs with --loop [RHIZOME_PLAN_INTERVAL_S, 60]",
    )
    plan.add_argument(
        "--lead-time",
        type=float,
        metavar="S",
        help="plan for the stock expected S seconds ahead at each community's recent rate of use; 0: the "
        "stock as it is [RHIZOME_PLAN_LEAD_S, 43200]",
    )
    plan.add_argument("--time-limit", type=float, default=30.0, metavar="S", help="solver time limit [30]")
    plan.set_defaults(handler=_plan)
    sub = plan.add_subparsers(dest="plan_command", metavar="{vrp,repairs,routes}")
    vrp = sub.add_parser(
        "vrp",
        help="solve a CVRPLIB (.vrp) or Li & Lim (.txt) instance file and print its routes",
        description="Route a benchmark instance with the planner's routing engine (ruin-and-recreate search "
        "and PuLP set partitioning). Costs follow the file's own distance convention.",
    )
    vrp.add_argument("file", help="instance file")
    vrp.add_argument("--time-limit", type=float, default=10.0, metavar="S", help="wall-clock limit [10]")
    vrp.add_argument("--seed", type=int, default=1, help="random seed [1]")
    vrp.add_argument("--json", action="store_true", help="end with one JSON line: cost, routes, runtime_s")
    vrp.set_defaults(handler=_vrp)
    repairs = sub.add_parser(
        "repairs",
        help="assign open repair tasks to crew members once",
        description="Match every open repair task to a qualified, available crew member (most urgent first, "
        "rotating work towards those with fewer recent hours) and alert them; escalate what nobody can take.",
    )
    repairs.add_argument("--time-limit", type=float, default=30.0, metavar="S", help="solver time limit [30]")
    repairs.set_defaults(handler=_repairs)
    routes = sub.add_parser(
        "routes",
        help="route the current proposal's shipments over the active drivers once",
        description="Turn the proposed plan's shipments into driver routes (pickup before delivery, "
        "vehicle capacity, each driver's home and hours) and queue a route notice for each driver.",
    )
    routes.add_argument("--time-limit", type=float, default=10.0, metavar="S", help="search time [10]")
    routes.set_defaults(handler=_routes)


def _plan(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.process.cli import stop_on_signals
    from gateway.store.db import make_engine, make_session_factory
    from logistics.common.errors import PlanningError
    from logistics.service import format_summary, plan_once, run_loop

    if args.time_limit <= 0 or (args.interval is not None and args.interval <= 0):
        raise ValueError("--time-limit and --interval must be positive")
    if args.lead_time is not None and not (math.isfinite(args.lead_time) and args.lead_time >= 0):
        raise ValueError("--lead-time must be a number of seconds >= 0")
    settings = settings.with_overrides(plan_interval_s=args.interval, plan_lead_s=args.lead_time)
    engine = make_engine(settings.effective_database_url)
    sessions = make_session_factory(engine)
    try:
        if args.loop:
            stop = stop_on_signals()
            run_loop(sessions, settings.plan_interval_s, args.time_limit, stop, lead_s=settings.plan_lead_s)
            return 0
        run = plan_once(sessions, args.time_limit, lead_s=settings.plan_lead_s)
    except PlanningError as exc:
        print(f"no plan: {exc}")
        return 1
    except SQLAlchemyError as exc:
        # The first line names the problem (no such table, connection refused); the SQL echo is noise here.
        print(f"no plan: store error: {str(exc).splitlines()[0]} (schema current? `rhizome db upgrade`)")
        return 1
    finally:
        engine.dispose()
    print(format_summary(run))
    return 0


def _vrp(settings: Settings, args: argparse.Namespace) -> int:
    from logistics.vrp_command import run_vrp

    return run_vrp(args.file, args.time_limit, args.seed, args.json)


def _repairs(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store.db import make_engine, make_session_factory
    from logistics.common.errors import PlanningError
    from logistics.service import assign_once, format_assignments

    if args.time_limit <= 0:
        raise ValueError("--time-limit must be positive")
    engine = make_engine(settings.effective_database_url)
    sessions = make_session_factory(engine)
    try:
        run = assign_once(sessions, args.time_limit)
    except PlanningError as exc:
        print(f"no assignment: {exc}")
        return 1
    except SQLAlchemyError as exc:
        print(
            f"no assignment: store error: {str(exc).splitlines()[0]} (schema current? `rhizome db upgrade`)"
        )
        return 1
    finally:
        engine.dispose()
    print(format_assignments(run))
    return 0


def _routes(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store.db import make_engine, make_session_factory
    from logistics.common.errors import PlanningError
    from logistics.service import route_once

    if args.time_limit <= 0:
        raise ValueError("--time-limit must be positive")
    engine = make_engine(settings.effective_database_url)
    try:
        run = route_once(make_session_factory(engine), args.time_limit)
    except PlanningError as exc:
        print(f"no routes: {exc}")
        return 1
    except SQLAlchemyError as exc:
        print(f"no routes: store error: {str(exc).splitlines()[0]} (schema current? `rhizome db upgrade`)")
        return 1
    finally:
        engine.dispose()
    if run.plan is None:
        print("nothing to route: no proposed shipments or no active driver with a vehicle")
        return 0
    s = run.plan.summary()
    print(
        f"routes: {s['routes']} ({run.written} written), {s['distance']:.1f} km, {s['unassigned']} unassigned"
    )
    return 0
