"""Run the planner against the store: load, solve outside any transaction, save; once, or in a loop woken
by the internal events (MQTT) and by its timer."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract import clock
from gateway.contract.client import connect, make_client
from gateway.contract.events import (
    BoardChanged,
    InternalEvent,
    RouteChanged,
    ShipmentChanged,
    TaskChanged,
    TaskCreated,
    decode_event,
)
from gateway.contract.reasons import ProtocolError
from gateway.contract.target import MqttTarget
from gateway.contract.topics import INTERNAL_EVENTS, QOS
from gateway.store import planner
from gateway.store.tasks import decline as decline_task
from logistics.allocation import report
from logistics.allocation.data import AllocationInput, AllocationPlan
from logistics.allocation.regional import plan_between_nodes
from logistics.allocation.solve import solve_allocation
from logistics.common.errors import PlanningError
from logistics.loaders.allocation import load_allocation_input, save_plan
from logistics.loaders.federation import load_regional, role_holder, save_regional_plan, utcnow
from logistics.loaders.repairs import load_repair_input, save_repair_plan
from logistics.loaders.routing import load_routing_input, save_routes
from logistics.loaders.tasks import Housekeeping, alert_urgent, housekeep, load_match_input, save_match_plan
from logistics.repairs.data import RepairPlan
from logistics.repairs.solve import solve_repairs
from logistics.routing.data import RoutingPlan
from logistics.routing.districts import solve_region
from logistics.tasks import MatchPlan, solve_match

log = logging.getLogger(__name__)
CONNECT_WAIT_S = 3.0  # at start, the loop waits this long for its subscription, then plans without it
STOP_CHECK_S = 0.1  # how often a waiting thread looks at the stop flag (memory only, never the store)
ROUTING_TIME_S = 10.0  # routing in the loop gets at most this long
ROUTING_WORKERS = 2  # districts of a large region routed this many at once (the machine's 2 cores)
MATCH_TIME_S = 10.0  # the board's matcher in the loop gets at most this long
BOARD_WAKES = ("posted", "changed", "declined", "released", "cancelled")  # what the matcher re-plans on
STALL_ITERATIONS = 3000  # and stops sooner once this many search steps bring no better routes
CONTROL_POLL_S = 2.0  # while waiting, the loop looks this often for a coordinator's "re-plan now"


@dataclass(frozen=True)
class PlanRun:
    """One completed planning run: the stored plan's id, the plan, and the wall time it took."""

    plan_id: int
    plan: AllocationPlan
    seconds: float
    unchanged: bool = False  # nothing was written: no shipment revised, added or cancelled, no alert
    data: AllocationInput | None = None  # what it was planned from (for the run's report)


# A large region's allocation is many LP rounds (2,000 communities: 50-90 s on a loaded 2-core machine):
# a limit below this per place would fail every run of it, and a failed run plans nothing.
ALLOCATION_S_PER_PLACE = 0.1


def allocation_limit_s(time_limit_s: float, places: int) -> float:
    """The allocation's time limit: the one asked for, but at least ALLOCATION_S_PER_PLACE per place."""
    return max(time_limit_s, ALLOCATION_S_PER_PLACE * places)


def plan_once(sessions: sessionmaker[Session], time_limit_s: float = 30.0, lead_s: float = 0.0) -> PlanRun:
    """Load (the stock expected `lead_s` ahead), solve and save one plan; the solve holds no database
    transaction open."""
    started = time.perf_counter()
    with sessions.begin() as session:
        data = load_allocation_input(session, lead_s=lead_s)
    plan = solve_allocation(data, time_limit_s=allocation_limit_s(time_limit_s, len(data.places)))
    with sessions.begin() as session:
        saved = save_plan(session, plan)
    return PlanRun(saved.plan_id, plan, time.perf_counter() - started, unchanged=saved.unchanged, data=data)


@dataclass(frozen=True)
class DeliveryRun:
    """One delivery planning run as the desk records it: the allocation, the routing (None if it failed)
    and the stored summary's id."""

    plan: PlanRun
    routes: RouteRun | None
    run_id: int


def deliveries_once(
    sessions: sessionmaker[Session],
    time_limit_s: float = 30.0,
    lead_s: float = 0.0,
    trigger: str = "timer",
    route_time_s: float = ROUTING_TIME_S,
    stop: threading.Event | None = None,
    route: bool = True,
) -> DeliveryRun:
    """Allocate, route (unless not `route`: `rhizome plan` once) and record the run for the coordinator's
    desk: coverage of each shortage, what could not be reached and why, what no route carries and why
    (gateway.store.planner). A failed allocation is recorded too, then raised."""
    started_at = datetime.now(UTC)
    try:
        run = plan_once(sessions, time_limit_s, lead_s)
    except (PlanningError, SQLAlchemyError) as exc:
        _record_failure(sessions, started_at, trigger, exc)
        raise
    routes = _route_logged(sessions, route_time_s, stop or threading.Event()) if route else None
    with sessions.begin() as session:
        run_id = _record(session, started_at, trigger, run, routes)
    return DeliveryRun(run, routes, run_id)


def _record(
    session: Session, started_at: datetime, trigger: str, run: PlanRun, routes: RouteRun | None
) -> int:
    """The run's summary row: counts, coverage by good and community, shortfalls, unrouted goods."""
    assert run.data is not None
    found = report.shortfalls(run.data, run.plan)
    summary: dict[str, Any] = dict(run.plan.summary())
    summary |= {
        "kg": report.planned_kg(run.data, run.plan),
        "unchanged": run.unchanged,
        "seconds": round(run.seconds, 2),
        "reasons": report.reason_counts(found),
        "by_good": report.coverage_by(found, "good"),
        "by_community": report.coverage_by(found, "community"),
    }
    if routes is not None:
        summary["routes"] = {
            "new": routes.written,
            "standing": routes.standing,
            "superseded": routes.superseded,
            "withdrawn": routes.withdrawn,
            "km": round(routes.plan.distance, 1) if routes.plan is not None else 0.0,
        }
    else:
        summary["routes"] = None  # routing did not run (or failed: the log says why)
    return planner.record_run(
        session,
        started_at,
        trigger,
        "planned",
        plan_id=run.plan_id,
        summary=summary,
        shortfalls=report.as_rows(found),
        unrouted=planner.unrouted(session, run.plan_id),
    )


def _record_failure(
    sessions: sessionmaker[Session], started_at: datetime, trigger: str, exc: Exception
) -> None:
    """A failed run is on the desk too (its summary, not a stack trace); never raises over the failure."""
    try:
        with sessions.begin() as session:
            planner.record_run(session, started_at, trigger, "failed", error=str(exc))
    except SQLAlchemyError as again:
        log.warning("the failed run could not be recorded either: %s", again)


@dataclass(frozen=True)
class AssignRun:
    """One repair assignment run: the plan, what was written, and the wall time it took."""

    plan: RepairPlan
    assigned: int
    escalated: int
    seconds: float


@dataclass(frozen=True)
class RouteRun:
    """One routing run: the plan of the work not on a standing route (None: nothing to route or no driver
    with time), what was written, and how evenly the drivers' weeks are filled."""

    plan: RoutingPlan | None
    written: int
    seconds: float
    superseded: int = 0  # proposed routes replaced by a revised one for the same driver
    withdrawn: int = 0  # proposed routes taken back, nothing for their driver instead
    standing: int = 0  # proposed routes still valid, left as they are
    max_load_ratio: float = 0.0  # the fullest driver's week / pledge, new routes counted
    load_gini: float = 0.0  # how unevenly the drivers' load ratios fall (0: evenly)


def route_once(
    sessions: sessionmaker[Session],
    time_limit_s: float = 30.0,
    now: datetime | None = None,
    max_iterations: int | None = None,
) -> RouteRun:
    """Route the work not on a standing route over the drivers' free time; retire the proposed routes that
    no longer hold; store routes, hours offers and notices. The solve holds no transaction open.
    (`now` and `max_iterations` make a run reproducible in tests.)"""
    started = time.perf_counter()
    with sessions.begin() as session:
        job = load_routing_input(session, now=now)
    if job is None:
        return RouteRun(None, 0, time.perf_counter() - started)
    plan = None
    if job.data is not None:
        plan = solve_region(
            job.data,
            time_limit_s=time_limit_s,
            stall_iterations=STALL_ITERATIONS,
            max_iterations=max_iterations,
            workers=ROUTING_WORKERS,
        )
    with sessions.begin() as session:
        hold = planner.controls(session).require_approval  # read with the save: a change now counts
        saved = save_routes(session, job, plan, hold)
    max_ratio, spread = job.figures(plan)
    return RouteRun(
        plan,
        saved.written,
        time.perf_counter() - started,
        superseded=saved.superseded,
        withdrawn=saved.withdrawn,
        standing=saved.standing,
        max_load_ratio=max_ratio,
        load_gini=spread,
    )


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
        loaded = {m.id: m.week_load_h for m in data.crew}
        assigned, escalated = save_repair_plan(session, plan, loaded)
    return AssignRun(plan, assigned, escalated, time.perf_counter() - started)


@dataclass(frozen=True)
class MatchRun:
    """One board run: time passing (shifts added, suggestions lapsed, shifts done), the match, what was
    written, the urgent places told, and the wall time."""

    housekeeping: Housekeeping
    plan: MatchPlan
    suggested: int
    urgent_told: int
    seconds: float


def match_once(sessions: sessionmaker[Session], time_limit_s: float = MATCH_TIME_S) -> MatchRun:
    """Keep the board's time (shifts ahead, lapses, hours of past shifts), tell urgent places to suited
    people near them, and suggest people for the coming week's open places: load, solve outside any
    transaction, write what still fits."""
    started = time.perf_counter()
    now = clock.now()
    with sessions.begin() as session:
        kept = housekeep(session, now)
        told = alert_urgent(session, now)
    with sessions.begin() as session:
        data = load_match_input(session, now)
    plan = solve_match(data, time_limit_s=time_limit_s)
    with sessions.begin() as session:
        suggested = save_match_plan(session, plan, now)
    return MatchRun(kept, plan, suggested, told, time.perf_counter() - started)


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


class Wakeups:
    """What wakes the loop's two threads before their timer: set by internal events and by the catch-up
    after each (re)subscription; each run clears its flag first, so it covers everything committed before."""

    def __init__(self) -> None:
        self.tasks = threading.Event()  # the repair assigner runs
        self.deliveries = threading.Event()  # allocation and routing run
        self.board = threading.Event()  # the board's matcher runs

    def catch_up(self) -> None:
        """Events may have been missed (the broker was away): every thread runs once."""
        self.tasks.set()
        self.deliveries.set()
        self.board.set()

    def on_event(self, event: InternalEvent) -> None:
        """Wake the thread the event concerns; the planner's own assignments and escalations wake nobody."""
        if isinstance(event, TaskCreated) or (isinstance(event, TaskChanged) and event.status == "open"):
            self.tasks.set()  # a new task, or one declined and open again
        elif (isinstance(event, ShipmentChanged) and event.status in ("delivered", "failed")) or (
            isinstance(event, RouteChanged) and event.status in ("declined", "withdrawn")
        ):
            self.deliveries.set()  # stock moved, or goods are needed again: plan and route them
        elif isinstance(event, BoardChanged) and event.status in BOARD_WAKES:
            self.board.set()  # a place opened (new task, a no, a place given back): match it


class EventSubscription:
    """The planner's own MQTT client on the internal events (a clean session: what is sent while it is away
    is lost, so every (re)subscription is followed by one catch-up run of both threads)."""

    def __init__(self, target: MqttTarget, wakeups: Wakeups, client_id: str | None = None) -> None:
        self.target = target
        self.wakeups = wakeups
        self.subscribed = threading.Event()
        self.received = 0
        self.client = make_client(target, client_id or f"rhizome-planner-{secrets.token_hex(4)}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself while the broker is down or restarts."""
        connect(self.client, self.target)
        self.client.loop_start()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the planner: %s", reason)
            return
        client.subscribe(INTERNAL_EVENTS, qos=QOS)

    def _on_subscribe(self, _c: Any, _ud: Any, _mid: int, reasons: Any, _props: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("broker refused the planner's subscription to %s: %s", INTERNAL_EVENTS, reasons)
            return
        log.info("planner subscribed to %s on %s:%s", INTERNAL_EVENTS, self.target.host, self.target.port)
        self.wakeups.catch_up()  # first: run_loop's first runs, which clear the flags, wait for `subscribed`
        self.subscribed.set()

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self.subscribed.is_set():
            log.warning("planner lost the broker (%s): reconnecting; the timed runs go on", reason)
        self.subscribed.clear()

    def _on_message(self, _c: Any, _ud: Any, message: Any) -> None:
        try:
            event = decode_event(message.payload)
        except ProtocolError as exc:
            log.warning("internal event dropped: %s", exc)
            return
        self.received += 1
        self.wakeups.on_event(event)


@dataclass(frozen=True)
class RegionalRole:
    """This node's part in planning between community nodes: who may hold the role, in order, and how long
    a holder may go unheard before the next one takes over."""

    node: str
    order: tuple[str, ...]
    lease_s: float
    interval_s: float


@dataclass(frozen=True)
class RegionalRun:
    """One run of the regional planning role on this node."""

    holder: str | None
    proposed: (
        int | None
    )  # shipments in the new plan fact; None when this node did not plan or nothing changed
    seconds: float


def regional_once(
    sessions: sessionmaker[Session], role: RegionalRole, time_limit_s: float = 30.0
) -> RegionalRun:
    """If this node holds the planning role, plan between the nodes from their latest summaries and propose
    the plan as a fact (unless it is the plan already proposed)."""
    started = time.perf_counter()
    now = utcnow()
    with sessions.begin() as session:
        holder = role_holder(session, role.order, role.lease_s, role.node, now)
        if holder != role.node:
            return RegionalRun(holder, None, time.perf_counter() - started)
        summaries, moving = load_regional(session, now, role.node, role.lease_s)
    shipments, _plan = plan_between_nodes(summaries, moving, time_limit_s)
    with sessions.begin() as session:
        saved = save_regional_plan(session, role.node, shipments, utcnow())
    return RegionalRun(holder, None if saved is None else len(shipments), time.perf_counter() - started)


def _regional_loop(sessions: sessionmaker[Session], role: RegionalRole, stop: threading.Event) -> None:
    held = False
    # A node just started has heard nobody yet and would take the role for itself: it first listens for a
    # lease, the time any holder alive has to make itself heard.
    if stop.wait(role.lease_s):
        return
    while not stop.is_set():
        try:
            run = regional_once(sessions, role)
        except (PlanningError, SQLAlchemyError) as exc:
            log.error("regional planning run failed: %s", exc)
        else:
            if (run.holder == role.node) != held:
                held = run.holder == role.node
                log.info(
                    "regional planning role: %s", "held by this node" if held else f"held by {run.holder}"
                )
            if run.proposed is not None:
                log.info("regional plan proposed: %s shipments between communities", run.proposed)
        stop.wait(role.interval_s)


def run_loop(
    sessions: sessionmaker[Session],
    interval_s: float,
    time_limit_s: float,
    stop: threading.Event,
    lead_s: float = 0.0,
    target: MqttTarget | None = None,
    client_id: str | None = None,
    regional: RegionalRole | None = None,
) -> int:
    """Re-plan every `interval_s` s until `stop` is set; failures are logged, not fatal. Returns runs.

    Each run allocates surplus and routes the proposal's shipments. Repair tasks are assigned by a thread of
    their own, so a new fault's task or a decline reaches a crew member within a second even while a planning
    run (seconds of routing) is under way. With a broker `target`, the internal events wake them: a new or
    declined task the assigner, a delivery done or failed or a route declined the next planning run (a failed
    delivery's goods are planned and routed again, or the shipment says why not). Both also run every
    `interval_s` s: crew members who became free take waiting tasks, and nothing an event missed waits longer.
    """
    wakeups = Wakeups()
    subscription = None
    if target is None:
        log.warning("no MQTT broker: the planner learns of changes only at its runs every %s s", interval_s)
    else:
        subscription = EventSubscription(target, wakeups, client_id)
        subscription.start()
        if not subscription.subscribed.wait(CONNECT_WAIT_S):
            log.warning(
                "broker %s:%s not reachable yet: planning on the timer until it is", target.host, target.port
            )
    assigner = threading.Thread(
        target=_assign_on_wake,
        args=(sessions, time_limit_s, stop, wakeups.tasks, interval_s),
        name="repair-assigner",
    )
    assigner.start()
    matcher = threading.Thread(
        target=_match_on_wake, args=(sessions, stop, wakeups.board, interval_s), name="board-matcher"
    )
    matcher.start()
    threads = [assigner, matcher]
    if regional is not None:
        planner = threading.Thread(
            target=_regional_loop, args=(sessions, regional, stop), name="regional-planner"
        )
        planner.start()
        threads.append(planner)
    runs = 0
    trigger = "start"
    paused = False
    try:
        while not stop.is_set():
            started = time.monotonic()
            wakeups.deliveries.clear()  # this run covers every delivery recorded before it
            now_paused = _paused(sessions)
            if now_paused != paused:
                paused = now_paused
                _note_pause(sessions, paused, trigger)
            if not paused:  # a coordinator's pause stops allocation and routing; repairs and the board go on
                _replan_requested(sessions)  # this run answers a coordinator's pending request
                if _planned(sessions, time_limit_s, lead_s, trigger, stop):
                    runs += 1
                elif stop.is_set():
                    break
            left = interval_s - (time.monotonic() - started)
            trigger = _wait_for_work(sessions, wakeups.deliveries, stop, left, paused)
    finally:
        stop.set()  # the loop ends only on a stop; make sure the assigner sees it too
        for thread in threads:
            thread.join()
        if subscription is not None:
            subscription.close()
    return runs


def _planned(
    sessions: sessionmaker[Session], time_limit_s: float, lead_s: float, trigger: str, stop: threading.Event
) -> bool:
    """One delivery run inside the loop, logged: True if it planned."""
    try:
        run = deliveries_once(
            sessions, time_limit_s, lead_s, trigger, min(time_limit_s, ROUTING_TIME_S), stop
        )
    except (PlanningError, SQLAlchemyError) as exc:
        if stop.is_set():  # Ctrl-C also reaches the CBC child, so a run cut short by it is no failure
            log.info("planning run interrupted by the stop: %s", exc)
        else:  # the next run may succeed (a lock released, a quieter moment); the stored plan stays as is
            log.error("planning run failed: %s", exc)
        return False
    _log_plan(run.plan)
    return True


def _paused(sessions: sessionmaker[Session]) -> bool:
    """Whether a coordinator paused delivery planning (a store outage counts as not paused: logged)."""
    try:
        with sessions.begin() as session:
            return planner.controls(session).paused
    except SQLAlchemyError as exc:
        log.warning("planner controls unreadable, planning as usual: %s", exc)
        return False


def _note_pause(sessions: sessionmaker[Session], paused: bool, trigger: str) -> None:
    """Log (and, for a pause, record on the desk) that planning stopped or goes on."""
    if not paused:
        log.info("delivery planning resumed by a coordinator")
        return
    log.info("delivery planning paused by a coordinator: no allocation or routing until resumed")
    try:
        with sessions.begin() as session:
            planner.record_run(session, datetime.now(UTC), trigger, "paused")
    except SQLAlchemyError as exc:
        log.warning("the pause could not be recorded: %s", exc)


def _wait_for_work(
    sessions: sessionmaker[Session],
    wake: threading.Event,
    stop: threading.Event,
    seconds: float,
    paused: bool,
) -> str:
    """Wait up to `seconds` for a delivery event or a coordinator (a re-plan request, a pause or a resume:
    the controls are polled every CONTROL_POLL_S); returns what ends the wait: "event", "coordinator" or
    "timer"."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return "timer"
        if _wait(wake, stop, min(left, CONTROL_POLL_S)):
            log.info("deliveries recorded or a route declined: re-planning now")
            return "event"
        if _coordinator_asks(sessions, paused):
            return "coordinator"
    return "timer"


def _coordinator_asks(sessions: sessionmaker[Session], paused: bool) -> bool:
    """Whether the controls changed under a waiting loop: paused or resumed, or a re-plan asked for."""
    try:
        with sessions() as session:
            now = planner.controls(session)
    except SQLAlchemyError as exc:
        log.warning("planner controls unreadable: %s", exc)
        return False
    if now.paused != paused:
        return True
    if not paused and now.replan_requested_at is not None:
        log.info("a coordinator asked for a re-plan: re-planning now")
        return True
    return False


def _replan_requested(sessions: sessionmaker[Session]) -> bool:
    """Take a pending re-plan request (the run about to start answers it)."""
    try:
        with sessions.begin() as session:
            return planner.take_replan_request(session)
    except SQLAlchemyError as exc:
        log.warning("planner controls unreadable: %s", exc)
        return False


def _log_plan(run: PlanRun) -> None:
    summary = run.plan.summary()
    log.info(
        "plan %s%s %s: %s shipments to %s places, min coverage %s (reachable %s), %s unreachable, %s s",
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


def _wait(wake: threading.Event, stop: threading.Event, seconds: float) -> bool:
    """Sleep up to `seconds`: True as soon as `wake` is set, False on the timeout or the stop."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if wake.wait(min(left, STOP_CHECK_S)):
            return not stop.is_set()
    return False


def _assign_on_wake(
    sessions: sessionmaker[Session],
    time_limit_s: float,
    stop: threading.Event,
    wake: threading.Event,
    every_s: float,
) -> None:
    """Assign open tasks at start, on each wake (a task event, a catch-up) and every `every_s` s (crew
    members who became free meanwhile may take waiting tasks), until `stop` is set."""
    while not stop.is_set():
        wake.clear()  # this run covers every task committed before it
        _assign_logged(sessions, time_limit_s, stop)
        if _wait(wake, stop, every_s):
            log.debug("task event: assigning")


def _match_on_wake(
    sessions: sessionmaker[Session], stop: threading.Event, wake: threading.Event, every_s: float
) -> None:
    """Run the board at start, on each wake (a place opened) and every `every_s` s (time passing: urgent
    places, lapsed suggestions, shifts done), until `stop` is set."""
    while not stop.is_set():
        wake.clear()
        _match_logged(sessions, stop)
        if _wait(wake, stop, every_s):
            log.debug("board event: matching")


def _match_logged(sessions: sessionmaker[Session], stop: threading.Event) -> None:
    """One board run inside the loop: logged, never fatal."""
    try:
        run = match_once(sessions, MATCH_TIME_S)
    except (PlanningError, SQLAlchemyError) as exc:
        if not stop.is_set():
            log.error("board matching failed: %s", exc)
        return
    except Exception:  # a bug in one planner must not stop the others
        log.exception("board matching failed unexpectedly; the next run tries again")
        return
    kept = run.housekeeping
    if run.suggested or run.urgent_told or kept.shifts_added or kept.lapsed or kept.counted:
        log.info(
            "board: %s suggested for %s open places (%s unmatched), %s told of urgent places, %s shifts "
            "added, %s suggestions lapsed, %s places done, %s s",
            run.suggested,
            len(run.plan.suggestions) + len(run.plan.unmatched),
            len(run.plan.unmatched),
            run.urgent_told,
            kept.shifts_added,
            kept.lapsed,
            kept.counted,
            round(run.seconds, 2),
        )


def _route_logged(
    sessions: sessionmaker[Session], time_limit_s: float, stop: threading.Event
) -> RouteRun | None:
    """One routing run inside the loop: logged, never fatal (None when it failed)."""
    try:
        run = route_once(sessions, time_limit_s)
    except (PlanningError, SQLAlchemyError) as exc:
        if not stop.is_set():
            log.error("routing failed: %s", exc)
        return None
    except Exception:  # a bug in one planner must not stop the others: logged loudly, the loop goes on
        log.exception("routing failed unexpectedly; the next run tries again")
        return None
    if run.plan is not None or run.superseded or run.withdrawn:
        summary = run.plan.summary() if run.plan is not None else {"routes": 0, "unassigned": 0}
        log.info(
            "routes: %s new (%s written), %s standing, %s superseded, %s withdrawn, %s km, "
            "%s shipments unassigned, max load ratio %s, load gini %s, %s s",
            summary["routes"],
            run.written,
            run.standing,
            run.superseded,
            run.withdrawn,
            round(run.plan.distance, 1) if run.plan is not None else 0.0,
            summary["unassigned"],
            round(run.max_load_ratio, 3),
            round(run.load_gini, 3),
            round(run.seconds, 2),
        )
    return run


def _assign_logged(sessions: sessionmaker[Session], time_limit_s: float, stop: threading.Event) -> None:
    """One repair assignment run inside the loop: logged, never fatal."""
    try:
        run = assign_once(sessions, time_limit_s)
    except (PlanningError, SQLAlchemyError) as exc:
        if not stop.is_set():
            log.error("repair assignment failed: %s", exc)
        return
    except Exception:  # a bug in one planner must not stop the others: logged loudly, the loop goes on
        log.exception("repair assignment failed unexpectedly; the next run tries again")
        return
    if run.assigned or run.escalated or run.plan.unassigned:
        log.info(
            "repairs: %s assigned, %s newly escalated, %s waiting, %s s",
            run.assigned,
            run.escalated,
            len(run.plan.unassigned),
            round(run.seconds, 2),
        )


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
