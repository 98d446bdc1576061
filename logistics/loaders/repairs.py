"""Repair assignment's door to the store: open tasks and crew in; assignments, escalations, alerts out."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.contract.protocol import (
    QOS,
    VERSION,
    community_alerts_topic,
    format_ts,
    member_alerts_topic,
)
from gateway.store.models import (
    Community,
    ContributedHours,
    Member,
    MemberSkill,
    OutboxMessage,
    RepairTask,
    Route,
    Shipment,
    Site,
    TaskEvent,
    utcnow,
)
from logistics.loaders import json_payload as _json
from logistics.repairs.data import CrewMember, RepairInput, RepairJob, RepairPlan, hours_until_available

log = logging.getLogger(__name__)
OPEN_TASK_STATUSES = ("open", "escalated")  # tasks the planner (re)assigns
ACTIVE_TASK_STATUSES = ("assigned", "accepted", "in_progress")  # tasks that take up a member's slot


def load_repair_input(
    session: Session,
    now: datetime | None = None,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    max_concurrent: int = 2,
    horizon_h: float = 24.0,
    window_days: int = 365,
    region_fallback: bool = True,
) -> RepairInput:
    """Open and escalated tasks, active crew with skills, free slots, availability and recent hours.

    `baselines` maps community slugs to per-sector yearly hours (unknown slugs raise ValueError).
    """
    now = now or utcnow()
    sites = {s.id: s for s in session.scalars(select(Site))}
    communities = {c.id: c for c in session.scalars(select(Community).order_by(Community.id))}
    tasks_rows = session.scalars(
        select(RepairTask).where(RepairTask.status.in_(OPEN_TASK_STATUSES)).order_by(RepairTask.id)
    ).all()
    declined: dict[int, set[int]] = defaultdict(set)
    for task_id, member_id in session.execute(
        select(TaskEvent.task_id, TaskEvent.member_id).where(TaskEvent.event == "declined")
    ):
        if member_id is not None:
            declined[task_id].add(member_id)
    tasks = [
        RepairJob(
            id=t.id,
            title=t.title,
            community_id=sites[t.site_id].community_id,
            lat=sites[t.site_id].lat,
            lon=sites[t.site_id].lon,
            required_skills=frozenset(str(s) for s in t.required_skills or ()),
            urgency=t.urgency,
            declined_by=frozenset(declined[t.id]),
        )
        for t in tasks_rows
    ]
    members = session.scalars(
        select(Member).where(Member.active.is_(True), Member.is_crew.is_(True)).order_by(Member.id)
    ).all()
    skills: dict[int, set[str]] = defaultdict(set)
    for member_id, skill in session.execute(select(MemberSkill.member_id, MemberSkill.skill)):
        skills[member_id].add(skill)
    busy = dict(
        session.execute(
            select(RepairTask.assigned_member_id, func.count())
            .where(RepairTask.status.in_(ACTIVE_TASK_STATUSES), RepairTask.assigned_member_id.is_not(None))
            .group_by(RepairTask.assigned_member_id)
        ).all()
    )
    since = (now - timedelta(days=window_days)).date()
    hours: dict[int, dict[str, float]] = defaultdict(dict)
    for member_id, sector, total in session.execute(
        select(ContributedHours.member_id, ContributedHours.sector, func.sum(ContributedHours.hours))
        .where(ContributedHours.period_start >= since)
        .group_by(ContributedHours.member_id, ContributedHours.sector)
    ):
        hours[member_id][sector] = float(total or 0.0)
    crew = [
        CrewMember(
            id=m.id,
            name=m.name,
            community_id=m.community_id,
            lat=m.lat,
            lon=m.lon,
            skills=frozenset(skills[m.id]),
            free_slots=max(0, max_concurrent - int(busy.get(m.id, 0))),
            available_in_h=hours_until_available(m.availability, now, horizon_h),
            recent_hours=hours[m.id],
        )
        for m in members
    ]
    by_slug = {c.slug: c.id for c in communities.values()}
    unknown = set(baselines or {}) - by_slug.keys()
    if unknown:
        raise ValueError(f"baselines name unknown communities: {sorted(unknown)}")
    return RepairInput(
        tasks=tasks,
        crew=crew,
        communities={c.id: (c.lat, c.lon) for c in communities.values()},
        baselines={by_slug[slug]: dict(b) for slug, b in (baselines or {}).items()},
        region_fallback=region_fallback,
    )


def save_repair_plan(session: Session, plan: RepairPlan) -> tuple[int, int]:
    """Write assignments (status, member, explanation, event, member alert) and escalations, one transaction.

    A task that changed since it was loaded (taken, closed) is left alone. Returns (assigned, escalated).
    """
    now = utcnow()
    ts = format_ts(now)
    slugs = dict(session.execute(select(Community.id, Community.slug)).all())
    assigned = escalated = 0
    for a in plan.assignments:
        task = session.get(RepairTask, a.task_id)
        if task is None or task.status not in OPEN_TASK_STATUSES:
            log.info("task %s changed while planning; not assigned", a.task_id)
            continue
        task.status = "assigned"
        task.assigned_member_id = a.member_id
        task.explanation = a.explanation
        session.add(
            TaskEvent(task_id=task.id, member_id=a.member_id, event="assigned", reason=a.explanation[:500])
        )
        body = {
            "v": VERSION,
            "event": "task_assigned",
            "ts": ts,
            "task": task.id,
            "title": task.title,
            "site": task.site_id,
            "urgency": task.urgency,
            "skills": sorted(str(s) for s in task.required_skills or ()),
            "explanation": a.explanation,
            "escalated": a.escalated,
        }
        session.add(OutboxMessage(topic=member_alerts_topic(a.member_id), payload=_json(body), qos=QOS))
        assigned += 1
    for u in plan.unassigned:
        task = session.get(RepairTask, u.task_id)
        if task is None or task.status != "open":
            continue  # already escalated (and announced) or no longer open
        task.status = "escalated"
        session.add(TaskEvent(task_id=task.id, event="escalated", reason=u.reason[:500]))
        body = {
            "v": VERSION,
            "event": "task_escalated",
            "ts": ts,
            "task": task.id,
            "title": task.title,
            "urgency": task.urgency,
            "skills": sorted(str(s) for s in task.required_skills or ()),
            "reason": u.reason,
        }
        for community in u.widened_to:
            topic = community_alerts_topic(slugs[community])
            session.add(OutboxMessage(topic=topic, payload=_json(body), qos=QOS))
        escalated += 1
    return assigned, escalated


def open_tasks_marker(session: Session) -> tuple[object, ...]:
    """Count, newest id and last update of open or escalated tasks: changes when a task needs planning."""
    row = session.execute(
        select(func.count(), func.max(RepairTask.id), func.max(RepairTask.updated_at)).where(
            RepairTask.status.in_(OPEN_TASK_STATUSES)
        )
    ).one()
    return tuple(row)


def deliveries_marker(session: Session) -> tuple[object, ...]:
    """How many shipments were delivered and how many failed, and how many routes were declined: changes
    when a driver records one, so the planner loop re-plans at once (a failed delivery's or a declined
    route's goods are needed again; a delivery changes stock)."""
    rows = session.execute(
        select(Shipment.status, func.count())
        .where(Shipment.status.in_(("delivered", "failed")))
        .group_by(Shipment.status)
    )
    declined = session.scalar(select(func.count()).where(Route.status == "declined")) or 0
    return (*sorted((status, int(count)) for status, count in rows), ("routes declined", int(declined)))


def decline_task(session: Session, task_id: int, member_id: int, reason: str = "") -> None:
    """Record that the assigned member declined: the task is open again and they are not asked again."""
    task = session.get(RepairTask, task_id)
    if task is None:
        raise ValueError(f"no repair task {task_id}")
    if task.assigned_member_id != member_id or task.status not in ("assigned", "accepted"):
        raise ValueError(f"task {task_id} is not assigned to member {member_id} (status {task.status})")
    task.status = "open"
    task.assigned_member_id = None
    task.explanation = None
    session.add(TaskEvent(task_id=task_id, member_id=member_id, event="declined", reason=reason[:500]))
