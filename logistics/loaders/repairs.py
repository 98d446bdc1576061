"""Repair assignment's door to the store: open tasks and crew in; assignments, escalations, alerts out."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.contract.payloads import VERSION, format_ts
from gateway.contract.topics import community_alerts_topic, member_alerts_topic
from gateway.store import tasks as lifecycle
from gateway.store.models import (
    Community,
    ContributedHours,
    Member,
    MemberSkill,
    RepairTask,
    Site,
    TaskEvent,
    utcnow,
)
from gateway.store.models.vocab import TaskEventKind
from gateway.store.outbox import enqueue
from gateway.store.tasks import HOLDS_A_SLOT, TO_PLAN, TaskAction
from logistics.repairs.data import (
    Assignment,
    CrewMember,
    RepairInput,
    RepairJob,
    RepairPlan,
    Unassignable,
    hours_until_available,
)

log = logging.getLogger(__name__)


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
    tasks = _open_jobs(session, sites)
    crew = _crew(session, now, max_concurrent, horizon_h, window_days)
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


def _open_jobs(session: Session, sites: Mapping[int, Site]) -> list[RepairJob]:
    """The tasks to (re)assign, each with who already declined it (they are not asked again)."""
    tasks_rows = session.scalars(
        select(RepairTask).where(RepairTask.status.in_(TO_PLAN)).order_by(RepairTask.id)
    ).all()
    declined: dict[int, set[int]] = defaultdict(set)
    for task_id, member_id in session.execute(
        select(TaskEvent.task_id, TaskEvent.member_id).where(TaskEvent.event == TaskEventKind.DECLINED)
    ):
        if member_id is not None:
            declined[task_id].add(member_id)
    return [
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


def _crew(
    session: Session, now: datetime, max_concurrent: int, horizon_h: float, window_days: int
) -> list[CrewMember]:
    """Active crew members with their skills, free slots, next availability and recent hours by sector."""
    members = session.scalars(
        select(Member).where(Member.active.is_(True), Member.is_crew.is_(True)).order_by(Member.id)
    ).all()
    skills: dict[int, set[str]] = defaultdict(set)
    for member_id, skill in session.execute(select(MemberSkill.member_id, MemberSkill.skill)):
        skills[member_id].add(skill)
    busy = _busy_members(session)
    hours = _recent_hours(session, (now - timedelta(days=window_days)).date())
    return [
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


def _busy_members(session: Session) -> dict[int, int]:
    """Member id -> tasks of theirs that take up a slot."""
    rows = session.execute(
        select(RepairTask.assigned_member_id, func.count())
        .where(RepairTask.status.in_(HOLDS_A_SLOT), RepairTask.assigned_member_id.is_not(None))
        .group_by(RepairTask.assigned_member_id)
    )
    return {member_id: count for member_id, count in rows if member_id is not None}


def _recent_hours(session: Session, since: date) -> dict[int, dict[str, float]]:
    """Member id -> sector -> hours contributed since `since` (an empty mapping for anyone with none)."""
    hours: dict[int, dict[str, float]] = defaultdict(dict)
    for member_id, sector, total in session.execute(
        select(ContributedHours.member_id, ContributedHours.sector, func.sum(ContributedHours.hours))
        .where(ContributedHours.period_start >= since)
        .group_by(ContributedHours.member_id, ContributedHours.sector)
    ):
        hours[member_id][sector] = float(total or 0.0)
    return hours


def save_repair_plan(session: Session, plan: RepairPlan) -> tuple[int, int]:
    """Write assignments (status, member, explanation, event, member alert) and escalations, one transaction.

    A task that changed since it was loaded (taken, closed) is left alone. Returns (assigned, escalated).
    """
    now = utcnow()
    slugs = dict(session.execute(select(Community.id, Community.slug)).all())
    assigned = sum(_assign(session, a, now) for a in plan.assignments)
    escalated = sum(_escalate(session, u, slugs, now) for u in plan.unassigned)
    return assigned, escalated


def _assign(session: Session, a: Assignment, now: datetime) -> bool:
    """Assign the task and alert the member, unless it changed while planning."""
    task = session.get(RepairTask, a.task_id)
    if task is None or not lifecycle.allows(task.status, TaskAction.ASSIGN):
        log.info("task %s changed while planning; not assigned", a.task_id)
        return False
    body = {
        "v": VERSION,
        "event": "task_assigned",
        "ts": format_ts(now),
        "task": task.id,
        "title": task.title,
        "site": task.site_id,
        "urgency": task.urgency,
        "skills": sorted(str(s) for s in task.required_skills or ()),
        "explanation": a.explanation,
        "escalated": a.escalated,
    }
    enqueue(session, member_alerts_topic(a.member_id), body)
    lifecycle.apply(
        session,
        task,
        TaskAction.ASSIGN,
        member_id=a.member_id,
        reason=a.explanation,
        explanation=a.explanation,
        at=now,
    )
    return True


def _escalate(session: Session, u: Unassignable, slugs: Mapping[int, str], now: datetime) -> bool:
    """Escalate an open task nobody can take and alert the communities it is widened to (once)."""
    task = session.get(RepairTask, u.task_id)
    if task is None or not lifecycle.allows(task.status, TaskAction.ESCALATE):
        return False  # already escalated (and announced) or no longer open
    body = {
        "v": VERSION,
        "event": "task_escalated",
        "ts": format_ts(now),
        "task": task.id,
        "title": task.title,
        "urgency": task.urgency,
        "skills": sorted(str(s) for s in task.required_skills or ()),
        "reason": u.reason,
    }
    for community in u.widened_to:
        enqueue(session, community_alerts_topic(slugs[community]), body)
    lifecycle.apply(session, task, TaskAction.ESCALATE, reason=u.reason, at=now)
    return True
