"""Run the planner against the store: load, solve outside any transaction, save; once or on a timer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from logistics.allocation.data import AllocationPlan
from logistics.allocation.solve import solve_allocation
from logistics.common.errors import PlanningError
from logistics.loaders.allocation import current_proposal_id, load_allocation_input, save_plan, shipment_count
from logistics.loaders.repairs import (
    decline_task,
    deliveries_marker,
    load_repair_input,
    open_tasks_marker,
    save_repair_plan,
)
from logistics.loaders.routing import load_routing_input, save_routes
from logistics.repairs.data import RepairPlan
from logistics.repairs.solve import solve_repairs
from logistics.routing.data import RoutingPlan
from logistics.routing.solve import solve_routing

log = logging.getLogger(__name__)
DELIVERY_POLL_S = 2.0  # how often the loop checks for recorded deliveries between runs
ROUTING_TIME_S = 10.0  # routing in the loop gets at most this long
STALL_ITERATIONS = 3000  # and stops sooner once this many search steps bring no better routes


@dataclass(frozen=True)
class PlanRun:
    """One completed planning run: the stored plan's id, the plan, and the wall time it took."""

    plan_id: int
    plan: AllocationPlan
    seconds: float
    unchanged: bool = False  # the plan equals the current proposal, which was kept (no new alerts)


def plan_once(sessions: sessionmaker[Session], time_limit_s: float = 30.0, lead_s: float = 0.0) -> PlanRun:
    """Load (the stock expected `lead_s` ahead), solve and save one plan; the solve holds no database
    transaction open."""
    started = time.perf_counter()
    with sessions.begin() as session:
        data = load_allocation_input(session, lead_s=lead_s)
    plan = solve_allocation(data, time_limit_s=time_limit_s)
    with sessions.begin() as session:
        previous = current_proposal_id(session)
        before = shipment_count(session, previous)
        plan_id = save_plan(session, plan)
        unchanged = plan_id == previous and shipment_count(session, plan_id) == before  # not topped up
    return PlanRun(plan_id, plan, time.perf_counter() - started, unchanged=unchanged)


@dataclass(frozen=True)
class AssignRun:
    """One repair assignment run: the plan, what was written, and the wall time it took."""

    plan: RepairPlan
    assigned: int
    escalated: int
    seconds: float


@dataclass(frozen=True)
class RouteRun:
    """One routing run over the current proposal: the plan (None: nothing to route), routes written."""

    plan: RoutingPlan | None
    written: int
    seconds: float


def route_once(sessions: sessionmaker[Session], time_limit_s: float = 30.0) -> RouteRun:
    """Route the current proposal's planned shipments over the active drivers; store routes and notices."""
    started = time.perf_counter()
    with sessions.begin() as session:
        loaded = load_routing_input(session)
    if loaded is None:
        return RouteRun(None, 0, time.perf_counter() - started)
    data, keys = loaded
    plan = solve_routing(data, time_limit_s=time_limit_s, stall_iterations=STALL_ITERATIONS)
    with sessions.begin() as session:
        written = save_routes(session, data, keys, plan)
    return RouteRun(plan, written, time.perf_counter() - started)


def assign_once(
    sessions: sessionmaker[Session],
    time_limit_s: float = 30.0,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
) -> AssignRun:
    """Load open tasks and crew, solve outside any transaction, write assignments and alerts."""
    started = time.perf_counter()
    with sessions.begin() as session:
        data = load_repair_input(session, baselines=baselines)
    plan = solve_repairs(data, time_limit_s=time_limit_s)
    with sessions.begin() as session:
        assigned, escalated = save_repair_plan(session, plan)
    return AssignRun(plan, assigned, escalated, time.perf_counter() - started)


def decline_and_replan(
    sessions: sessionmaker[Session],
    task_id: int,
    member_id: int,
    reason: str = "",
    time_limit_s: float = 30.0,
) -> AssignRun:
    """A member declines: record it and re-plan at once, so the task goes to the next best person."""
    with sessions.begin() as session:
        decline_task(session, task_id, member_id, reason)
    return assign_once(sessions, time_limit_s)


def format_assignments(run: AssignRun) -> str:
    """A short report of one assignment run for the terminal."""
    lines = [f"repairs: {run.assigned} assigned, {run.escalated} newly escalated, {run.seconds:.2f} s"]
    lines += [f"  task {a.task_id} -> member {a.member_id}: {a.explanation}" for a in run.plan.assignments]
    lines += [f"  task {u.task_id} unassigned: {u.reason}" for u in run.plan.unassigned]
    return "\n".join(lines)


def run_loop(
    sessions: sessionmaker[Session],
    interval_s: float,
    time_limit_s: float,
    stop: threading.Event,
    poll_s: float = 0.25,
    lead_s: float = 0.0,
) -> int:
    """Re-plan every `interval_s` s until `stop` is set; failures are logged, not fatal. Returns runs.

    Each run allocates surplus and routes the proposal's shipments. Repair tasks are assigned by a thread of
    their own that polls the store every `poll_s` s, so a new fault's task or a decline reaches a crew
    member within a second, even while a planning run (seconds of routing) is under way. A delivery recorded
    as done or failed starts the next run at once (a failed delivery's goods are planned and routed again,
    or the shipment says why not).
    """
    assigner = threading.Thread(
        target=_assign_on_change,
        args=(sessions, time_limit_s, stop, poll_s, interval_s),
        name="repair-assigner",
    )
    assigner.start()
    runs = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            deliveries = _poll(sessions, deliveries_marker)
            try:
                run = plan_once(sessions, time_limit_s, lead_s)
            except (PlanningError, SQLAlchemyError) as exc:
                if stop.is_set():  # Ctrl-C also reaches the CBC child, so a run cut short by it is no failure
                    log.info("planning run interrupted by the stop: %s", exc)
                    break
                # The next run may succeed (a lock released, a quieter moment); the stored plan stays as is.
                log.error("planning run failed: %s", exc)
            else:
                runs += 1
                _route_logged(sessions, min(time_limit_s, ROUTING_TIME_S), stop)
                summary = run.plan.summary()
                log.info(
                    "plan %s%s %s: %s shipments to %s places, min coverage %s (reachable %s), "
                    "%s unreachable, %s s",
                    run.plan_id,
                    " (unchanged)" if run.unchanged else "",
                    run.plan.status,
                    summary["shipments"],
                    summary["receivers"],
                    round(run.plan.min_coverage, 3),
                    round(run.plan.reachable_min_coverage, 3),
                    summary["unreachable"],
                    round(run.seconds, 2),
                )
            step = max(poll_s, DELIVERY_POLL_S)
            while True:  # until the next run is due, or a delivery was recorded (done or failed)
                left = interval_s - (time.monotonic() - started)
                if stop.wait(min(step, max(0.0, left))) or left <= step:
                    break
                if (done := _poll(sessions, deliveries_marker)) != deliveries and done is not None:
                    log.info("deliveries recorded (%s): re-planning now", done)
                    break
    finally:
        stop.set()  # the loop ends only on a stop; make sure the assigner sees it too
        assigner.join()
    return runs


def _assign_on_change(
    sessions: sessionmaker[Session], time_limit_s: float, stop: threading.Event, poll_s: float, every_s: float
) -> None:
    """Assign open tasks at start, whenever the open tasks change, and every `every_s` s (crew members who
    became free meanwhile may take waiting tasks), until `stop` is set."""
    marker: tuple[object, ...] | None = None
    next_poll = last = time.monotonic()
    while not stop.is_set():
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + poll_s
            now = _task_marker(sessions)
            if now is not None and (now != marker or time.monotonic() - last >= every_s):
                _assign_logged(sessions, time_limit_s, stop)
                marker, last = _task_marker(sessions), time.monotonic()
                log.debug("tasks changed (%s): assigned", now)
        time.sleep(min(0.05, poll_s))  # not stop.wait: a stop event may count its waits (tests do)


def _route_logged(sessions: sessionmaker[Session], time_limit_s: float, stop: threading.Event) -> None:
    """One routing run inside the loop: logged, never fatal."""
    try:
        run = route_once(sessions, time_limit_s)
    except (PlanningError, SQLAlchemyError) as exc:
        if not stop.is_set():
            log.error("routing failed: %s", exc)
        return
    if run.plan is not None:
        summary = run.plan.summary()
        log.info(
            "routes: %s routes (%s written), %s km, %s shipments unassigned, %s s",
            summary["routes"],
            run.written,
            round(run.plan.distance, 1),
            summary["unassigned"],
            round(run.seconds, 2),
        )


def _assign_logged(sessions: sessionmaker[Session], time_limit_s: float, stop: threading.Event) -> None:
    """One repair assignment run inside the loop: logged, never fatal."""
    try:
        run = assign_once(sessions, time_limit_s)
    except (PlanningError, SQLAlchemyError) as exc:
        if not stop.is_set():
            log.error("repair assignment failed: %s", exc)
        return
    if run.assigned or run.escalated or run.plan.unassigned:
        log.info(
            "repairs: %s assigned, %s newly escalated, %s waiting, %s s",
            run.assigned,
            run.escalated,
            len(run.plan.unassigned),
            round(run.seconds, 2),
        )


def _task_marker(sessions: sessionmaker[Session]) -> tuple[object, ...] | None:
    """What the open tasks look like now (None if the store cannot say); a change wakes the assigner."""
    return _poll(sessions, open_tasks_marker)


def _poll(
    sessions: sessionmaker[Session], marker: Callable[[Session], tuple[object, ...]]
) -> tuple[object, ...] | None:
    """One marker read from the store, or None if the store cannot say right now."""
    try:
        with sessions.begin() as session:
            return marker(session)
    except SQLAlchemyError as exc:
        log.debug("could not poll the store: %s", exc)
        return None


def format_summary(run: PlanRun) -> str:
    """A short table of one run for the terminal."""
    s = run.plan.summary()
    rows = [
        ("plan", f"{run.plan_id} ({run.plan.status}{', unchanged' if run.unchanged else ''})"),
        ("shipments", f"{s['shipments']} to {s['receivers']} communities"),
        ("quantity", f"{s['quantity']:g}"),
        ("shortages", f"{s['shortages']} ({s['unreachable']} unreachable)"),
        ("min coverage", f"{s['min_coverage']:.3f} ({s['reachable_min_coverage']:.3f} where reachable)"),
        ("solve time", f"{run.plan.solve_time_s:.2f} s (total {run.seconds:.2f} s)"),
    ]
    return "\n".join(f"{name:<13} {value}" for name, value in rows)
