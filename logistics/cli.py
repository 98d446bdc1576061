"""`rhizome plan`: propose deliveries from surplus to shortage, once or on a timer; `plan vrp|repairs|routes`.

Heavy imports (PuLP, the store) wait for the command, so `rhizome --help` stays fast.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click

from gateway.process.context import pass_settings, settings_of
from gateway.process.settings import Settings

if TYPE_CHECKING:
    from logistics.service import RegionalRole


@click.group(
    "plan",
    invoke_without_command=True,
    short_help="propose shipments from communities with surplus to communities below their minimum",
)
@click.option("--loop", is_flag=True, help="re-plan every interval until SIGINT/SIGTERM")
@click.option(
    "--interval",
    type=float,
    metavar="S",
    help="seconds between runs with --loop [RHIZOME_PLAN_INTERVAL_S, 60]",
)
@click.option(
    "--lead-time",
    type=float,
    metavar="S",
    help="plan for the stock expected S seconds ahead at each community's recent rate of use; 0: the "
    "stock as it is [RHIZOME_PLAN_LEAD_S, 43200]",
)
@click.option(
    "--time-limit",
    type=float,
    default=30.0,
    metavar="S",
    help="solver time limit, at least 0.1 s per community (2,000 communities: 200 s) [30]",
)
@click.pass_context
def plan(
    ctx: click.Context, loop: bool, interval: float | None, lead_time: float | None, time_limit: float
) -> int | None:
    """Allocate surplus to shortages (worst-off first) and store the result as the proposed delivery plan,
    with an alert queued for each receiving community."""
    if ctx.invoked_subcommand is not None:
        return None  # `plan vrp|repairs|routes`: the subcommand runs instead
    return run_plan(settings_of(ctx), loop, interval, lead_time, time_limit)


@plan.command(
    "vrp", short_help="solve a CVRPLIB (.vrp) or Li & Lim (.txt) instance file and print its routes"
)
@click.argument("file")
@click.option("--time-limit", type=float, default=10.0, metavar="S", help="wall-clock limit [10]")
@click.option("--seed", type=int, default=1, metavar="SEED", help="random seed [1]")
@click.option("--json", "as_json", is_flag=True, help="end with one JSON line: cost, routes, runtime_s")
@pass_settings
def vrp(_settings: Settings, file: str, time_limit: float, seed: int, as_json: bool) -> int:
    """Route FILE, a benchmark instance, with the planner's routing engine (ruin-and-recreate search and
    PuLP set partitioning). Costs follow the file's own distance convention."""
    from logistics.vrp_command import run_vrp

    return run_vrp(file, time_limit, seed, as_json)


@plan.command("repairs", short_help="assign open repair tasks to crew members once")
@click.option("--time-limit", type=float, default=30.0, metavar="S", help="solver time limit [30]")
@pass_settings
def repairs(settings: Settings, time_limit: float) -> int:
    """Match every open repair task to a qualified, available crew member (most urgent first, rotating work
    towards those with fewer recent hours) and alert them; escalate what nobody can take."""
    return run_repairs(settings, time_limit)


@plan.command("board", short_help="suggest people for the task board's open places once")
@click.option("--time-limit", type=float, default=10.0, metavar="S", help="solver time limit [10]")
@pass_settings
def board_places(settings: Settings, time_limit: float) -> int:
    """Keep the board's time (shifts ahead, lapsed suggestions, past shifts counted), tell urgent places to
    suited people nearby, and suggest people for the coming week's open places; each may accept or decline."""
    return run_board(settings, time_limit)


@plan.command("routes", short_help="route the current proposal's shipments over the active drivers once")
@click.option("--time-limit", type=float, default=10.0, metavar="S", help="search time [10]")
@pass_settings
def routes(settings: Settings, time_limit: float) -> int:
    """Turn the proposed plan's shipments into driver routes (pickup before delivery, vehicle capacity,
    each driver's home and hours) and queue a route notice for each driver."""
    return run_routes(settings, time_limit)


def run_plan(
    settings: Settings, loop: bool, interval: float | None, lead_time: float | None, time_limit: float
) -> int:
    """Plan once and print the summary, or re-plan every interval until a signal with `loop`."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.process.signals import stop_on_signals
    from gateway.store.db import make_engine, make_session_factory
    from logistics.common.errors import PlanningError
    from logistics.service import deliveries_once, format_summary, run_loop

    if time_limit <= 0 or (interval is not None and interval <= 0):
        raise ValueError("--time-limit and --interval must be positive")
    if lead_time is not None and not (math.isfinite(lead_time) and lead_time >= 0):
        raise ValueError("--lead-time must be a number of seconds >= 0")
    settings = settings.with_overrides(plan_interval_s=interval, plan_lead_s=lead_time)
    engine = make_engine(settings.effective_database_url)
    sessions = make_session_factory(engine)
    try:
        if loop:
            stop = stop_on_signals()
            target = settings.mqtt() if settings.mqtt_url else None  # its internal events wake the loop
            interval, lead = settings.plan_interval_s, settings.plan_lead_s
            regional = regional_role(settings)
            agent = federation_agent(settings, sessions)
            try:
                run_loop(sessions, interval, time_limit, stop, lead_s=lead, target=target, regional=regional)
            finally:
                if agent is not None:
                    agent.stop()
            return 0
        run = deliveries_once(  # recorded for the coordinator's desk, as the loop's runs are
            sessions, time_limit, settings.plan_lead_s, trigger="command", route=False
        ).plan
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


def run_repairs(settings: Settings, time_limit: float) -> int:
    """Assign open repair tasks once and print the assignments."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store.db import make_engine, make_session_factory
    from logistics.common.errors import PlanningError
    from logistics.service import assign_once, format_assignments

    if time_limit <= 0:
        raise ValueError("--time-limit must be positive")
    engine = make_engine(settings.effective_database_url)
    sessions = make_session_factory(engine)
    try:
        run = assign_once(sessions, time_limit)
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


def run_board(settings: Settings, time_limit: float) -> int:
    """Run the board once and print what it did."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store.db import make_engine, make_session_factory
    from logistics.common.errors import PlanningError
    from logistics.service import match_once

    if time_limit <= 0:
        raise ValueError("--time-limit must be positive")
    engine = make_engine(settings.effective_database_url)
    try:
        run = match_once(make_session_factory(engine), time_limit)
    except (PlanningError, SQLAlchemyError) as exc:
        print(f"no match: {str(exc).splitlines()[0]}")
        return 1
    finally:
        engine.dispose()
    kept = run.housekeeping
    print(
        f"board: {run.suggested} suggested, {len(run.plan.unmatched)} open places unmatched, "
        f"{run.urgent_told} told of urgent places, {kept.shifts_added} shifts added, {kept.lapsed} lapsed, "
        f"{kept.counted} places done, {run.seconds:.2f} s"
    )
    for u in run.plan.unmatched[:20]:
        print(f"  place {u.shift_id}/{u.slot_id}: {u.reason}")
    return 0


def run_routes(settings: Settings, time_limit: float) -> int:
    """Route the proposal's shipments once and print the routes' summary."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.store.db import make_engine, make_session_factory
    from logistics.common.errors import PlanningError
    from logistics.service import route_once

    if time_limit <= 0:
        raise ValueError("--time-limit must be positive")
    engine = make_engine(settings.effective_database_url)
    try:
        run = route_once(make_session_factory(engine), time_limit)
    except PlanningError as exc:
        print(f"no routes: {exc}")
        return 1
    except SQLAlchemyError as exc:
        print(f"no routes: store error: {str(exc).splitlines()[0]} (schema current? `rhizome db upgrade`)")
        return 1
    finally:
        engine.dispose()
    if run.plan is None and not (run.superseded or run.withdrawn):
        print("nothing to route: no proposed shipments or no active driver with time left")
        return 0
    s = run.plan.summary() if run.plan is not None else {"routes": 0, "distance": 0.0, "unassigned": 0}
    print(
        f"routes: {s['routes']} ({run.written} written), {s['distance']:.1f} km,"
        f" {s['unassigned']} unassigned;"
        f" {run.standing} standing, {run.superseded} superseded, {run.withdrawn} withdrawn;"
        f" max load ratio {run.max_load_ratio:.2f}, load gini {run.load_gini:.2f}"
    )
    return 0


def regional_role(settings: Settings) -> RegionalRole | None:
    """This node's part in the regional planning role, when it is a node of a federation."""
    from gateway.federation.directory import read_federation
    from logistics.service import RegionalRole

    if not settings.node_name or settings.federation_file is None:
        return None
    federation = read_federation(settings.federation_file)
    if settings.node_name not in federation.nodes:
        raise ValueError(f"node {settings.node_name!r} is not in {settings.federation_file}")
    return RegionalRole(
        settings.node_name, federation.planner_order(), federation.lease_s, settings.fed_interval_s
    )


def federation_agent(settings: Settings, sessions: Any) -> Any:
    """On a community node, the planner's process also runs the node's federation agent (with its own broker
    account, RHIZOME_FED_MQTT_URL): one interpreter fewer on a small box. None elsewhere."""
    import os

    from gateway.contract.target import MqttTarget
    from gateway.federation.agent_main import build_agent

    url = os.environ.get("RHIZOME_FED_MQTT_URL")
    if not url or regional_role(settings) is None:
        return None
    agent = build_agent(settings, MqttTarget.from_url(url), sessions)
    agent.start()
    return agent
