"""Run the planner against the store: load, solve outside any transaction, save; once or on a timer."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from logistics.allocation import solve_allocation
from logistics.allocation_data import AllocationPlan
from logistics.errors import PlanningError
from logistics.loader import current_proposal_id, load_allocation_input, save_plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanRun:
    """One completed planning run: the stored plan's id, the plan, and the wall time it took."""

    plan_id: int
    plan: AllocationPlan
    seconds: float
    unchanged: bool = False  # the plan equals the current proposal, which was kept (no new alerts)


def plan_once(sessions: sessionmaker[Session], time_limit_s: float = 30.0) -> PlanRun:
    """Load, solve and save one plan; the solve holds no database transaction open."""
    started = time.perf_counter()
    with sessions.begin() as session:
        data = load_allocation_input(session)
    plan = solve_allocation(data, time_limit_s=time_limit_s)
    with sessions.begin() as session:
        previous = current_proposal_id(session)
        plan_id = save_plan(session, plan)
    return PlanRun(plan_id, plan, time.perf_counter() - started, unchanged=plan_id == previous)


def run_loop(
    sessions: sessionmaker[Session], interval_s: float, time_limit_s: float, stop: threading.Event
) -> int:
    """Re-plan every `interval_s` s until `stop` is set; a failed run is logged, not fatal. Returns runs."""
    runs = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            run = plan_once(sessions, time_limit_s)
        except (PlanningError, SQLAlchemyError) as exc:
            if stop.is_set():  # Ctrl-C also reaches the CBC child, so a run cut short by it is no failure
                log.info("planning run interrupted by the stop: %s", exc)
                break
            # The next run may succeed (a lock released, a quieter moment); the stored plan stays as it was.
            log.error("planning run failed: %s", exc)
        else:
            runs += 1
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
        stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
    return runs


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
