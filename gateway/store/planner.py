"""The delivery planner and the coordinator's desk meet here: the planner's controls (pause, re-plan now,
hold new routes for approval), each run's summary, and the release of held routes to their drivers.

The dashboard writes the controls and the planner reads them before each run (and polls the re-plan request
while it waits), so neither needs the other running. Every coordinator action is in the audit trail, in the
transaction of the change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, func, null, select, update
from sqlalchemy.orm import Session

from gateway.contract.topics import member_routes_topic
from gateway.store import audit
from gateway.store.models import Good, PlannerControl, PlanRun, Route, Shipment, utcnow
from gateway.store.models.vocab import PLAN_RUN_OUTCOMES, RouteStatus, ShipmentStatus
from gateway.store.outbox import enqueue

CONTROL_ID: Final = 1
RUNS_KEPT: Final = 500  # older run summaries are dropped: the desk shows the latest
TRIGGERS: Final = ("start", "timer", "event", "coordinator", "command")
MAX_ROWS: Final = 2000  # shortfall and unrouted rows kept per run (the page shows the first of them)
# A planned shipment on no route with no reason from the router: routing found no driver with free time.
NOT_ROUTED: Final = "no driver has free time in the next 36 hours (or routing has not run yet)"


@dataclass(frozen=True)
class Controls:
    """The planner's controls as read (the defaults when nobody has touched them: today's behaviour)."""

    paused: bool = False
    require_approval: bool = False
    replan_requested_at: datetime | None = None
    changed_by: str = ""
    changed_at: datetime | None = None
    approved_by: str = ""
    approved_at: datetime | None = None


def controls(session: Session) -> Controls:
    """The controls, without writing (no row yet: the defaults)."""
    row = session.get(PlannerControl, CONTROL_ID)
    if row is None:
        return Controls()
    return Controls(
        row.paused,
        row.require_approval,
        row.replan_requested_at,
        row.changed_by,
        row.changed_at,
        row.approved_by,
        row.approved_at,
    )


def _row(session: Session) -> PlannerControl:
    """The control row, locked for this transaction (made on first use)."""
    row = session.get(PlannerControl, CONTROL_ID, with_for_update=True)
    if row is None:
        row = PlannerControl(
            id=CONTROL_ID, paused=False, require_approval=False, changed_by="", approved_by=""
        )
        session.add(row)
        session.flush()
    return row


def _changed(row: PlannerControl, by: str) -> None:
    row.changed_by, row.changed_at = by[: audit.MAX_ACCOUNT], utcnow()


def set_paused(session: Session, paused: bool, by: str, address: str | None = None) -> bool:
    """Pause or resume delivery planning; False when it already was so (nothing written)."""
    row = _row(session)
    if row.paused == paused:
        return False
    row.paused = paused
    _changed(row, by)
    detail = "delivery planning paused" if paused else "delivery planning resumed"
    audit.record(session, "plan_paused" if paused else "plan_resumed", by, address=address, detail=detail)
    return True


def set_require_approval(session: Session, required: bool, by: str, address: str | None = None) -> bool:
    """Whether new routes wait for a coordinator's approval before drivers see them; False if unchanged."""
    row = _row(session)
    if row.require_approval == required:
        return False
    row.require_approval = required
    _changed(row, by)
    detail = "new routes wait for approval" if required else "new routes go to drivers at once"
    audit.record(session, "plan_approval_set", by, address=address, detail=detail)
    return True


def request_replan(session: Session, by: str, address: str | None = None) -> None:
    """Ask the planner to run now (it looks every few seconds); a paused planner keeps the request."""
    row = _row(session)
    row.replan_requested_at = utcnow()
    _changed(row, by)
    audit.record(session, "plan_requested", by, address=address, detail="re-plan now")


def take_replan_request(session: Session) -> bool:
    """The planner takes the pending re-plan request, if any (and it is not paused): True if there was one."""
    row = session.get(PlannerControl, CONTROL_ID)
    if row is None or row.replan_requested_at is None or row.paused:
        return False
    row = _row(session)
    if row.replan_requested_at is None:
        return False
    row.replan_requested_at = None
    return True


def record_run(
    session: Session,
    started_at: datetime,
    trigger: str,
    outcome: str,
    plan_id: int | None = None,
    summary: Mapping[str, Any] | None = None,
    shortfalls: Sequence[Mapping[str, Any]] = (),
    unrouted: Sequence[Mapping[str, Any]] = (),
    error: str = "",
) -> int:
    """Store one run's summary (and drop the oldest beyond RUNS_KEPT); returns its id."""
    if outcome not in PLAN_RUN_OUTCOMES:
        raise ValueError(f"unknown plan run outcome {outcome!r}")
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown plan run trigger {trigger!r}")
    row = PlanRun(
        started_at=started_at,
        finished_at=utcnow(),
        trigger=trigger,
        outcome=outcome,
        plan_id=plan_id,
        summary=dict(summary or {}),
        shortfalls=[dict(s) for s in shortfalls[:MAX_ROWS]],
        unrouted=[dict(u) for u in unrouted[:MAX_ROWS]],
        error=error[:500],
    )
    session.add(row)
    session.flush()
    cut = session.scalar(select(PlanRun.id).order_by(PlanRun.id.desc()).offset(RUNS_KEPT).limit(1))
    if cut is not None:
        session.execute(delete(PlanRun).where(PlanRun.id <= cut))
    return row.id


def unrouted(session: Session, plan_id: int | None) -> list[dict[str, Any]]:
    """The plan's goods no route carries, by the router's reason: shipments and kg, the most kg first."""
    if plan_id is None:
        return []
    rows = session.execute(
        select(Shipment.failure_reason, func.count(), func.sum(Shipment.quantity * Good.weight_kg_per_unit))
        .join(Good, Shipment.good_id == Good.id)
        .where(
            Shipment.plan_id == plan_id,
            Shipment.status == ShipmentStatus.PLANNED,
            Shipment.route_id.is_(None),
        )
        .group_by(Shipment.failure_reason)
    )
    found: dict[str, list[float]] = {}
    for reason, count, kg in rows:
        row = found.setdefault(reason or NOT_ROUTED, [0, 0.0])
        row[0] += int(count)
        row[1] += float(kg or 0.0)
    ordered = sorted(found.items(), key=lambda item: (-item[1][1], item[0]))
    return [{"reason": why, "shipments": int(n), "kg": round(kg, 3)} for why, (n, kg) in ordered]


def latest_run(session: Session, outcome: str | None = None) -> PlanRun | None:
    """The newest run (with `outcome`, when given)."""
    query = select(PlanRun).order_by(PlanRun.id.desc()).limit(1)
    if outcome is not None:
        query = query.where(PlanRun.outcome == outcome)
    return session.scalars(query).first()


def recent_runs(session: Session, limit: int = 10) -> list[PlanRun]:
    """The newest runs, newest first."""
    return list(session.scalars(select(PlanRun).order_by(PlanRun.id.desc()).limit(limit)))


def offer_or_hold(session: Session, route: Route, body: dict[str, Any], hold: bool) -> None:
    """Offer a new route to its driver (their routes topic) or, while approval is required, hold it with the
    notice they get once it is approved."""
    assert route.member_id is not None
    if hold:
        route.held_notice = body
    else:
        enqueue(session, member_routes_topic(route.member_id), body)


def was_held(route: Route) -> bool:
    """Whether the route was never shown to its driver (held and not approved)."""
    return route.held_notice is not None


def held_count(session: Session) -> int:
    """Proposed routes waiting for approval."""
    query = select(func.count()).where(Route.held_notice.is_not(None), Route.status == RouteStatus.PROPOSED)
    return int(session.scalar(query) or 0)


def approve(session: Session, by: str, address: str | None = None) -> int:
    """Release every held proposed route to its driver, with its notice; returns how many. A revision of a
    route its driver never saw is announced as a new route, not as replacing one."""
    rows = list(
        session.scalars(
            select(Route)
            .where(Route.held_notice.is_not(None), Route.status == RouteStatus.PROPOSED)
            .order_by(Route.id)
            .with_for_update()
        )
    )
    for route in rows:
        body = dict(route.held_notice or {})
        replaced = session.get(Route, body["replaces"]) if isinstance(body.get("replaces"), int) else None
        if replaced is not None and replaced.held_notice is not None:
            body.pop("replaces")
            body["event"] = "route_planned"
        if route.member_id is not None:
            enqueue(session, member_routes_topic(route.member_id), body)
    if rows:  # SQL NULL, not JSON null: "held" is `held_notice IS NOT NULL`
        released = [r.id for r in rows]
        session.execute(
            update(Route).where(Route.id.in_(released)).values(held_notice=null()),
            execution_options={"synchronize_session": False},
        )
        for route in rows:
            session.expire(route, ["held_notice"])
    control = _row(session)
    control.approved_by, control.approved_at = by[: audit.MAX_ACCOUNT], utcnow()
    audit.record(session, "plan_approved", by, address=address, detail=f"{len(rows)} routes released")
    return len(rows)
