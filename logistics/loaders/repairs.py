"""Repair assignment's door to the store: open tasks and crew in; assignments, escalations, alerts out.

Crew come with what they offer (weekly pledge, the year's hours by sector, preferred sectors, weekly
windows and away periods) and what they already gave or promised, read from the hours ledger
(gateway.store.hours): this week's load in every role, this year's by sector, and the intervals of work
still ahead. Declines that still hold (gateway.store.declines) keep a task from the person who declined it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract import clock
from gateway.contract.alerts import crew_task_link, place_fields
from gateway.contract.payloads import VERSION, format_ts
from gateway.contract.topics import community_alerts_topic, member_alerts_topic
from gateway.store import declines, hours, offers
from gateway.store import tasks as lifecycle
from gateway.store.models import Community, Member, MemberSkill, RepairTask, Site, utcnow
from gateway.store.outbox import enqueue
from gateway.store.tasks import TO_PLAN, TaskAction
from logistics.repairs.data import (
    DEFAULT_TASK_HOURS,
    Assignment,
    CrewMember,
    RepairInput,
    RepairJob,
    RepairPlan,
    Unassignable,
    availability_intervals,
)

log = logging.getLogger(__name__)


def load_repair_input(
    session: Session,
    now: datetime | None = None,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    horizon_h: float = 24.0,
    region_fallback: bool = True,
) -> RepairInput:
    """Open and escalated tasks, active crew with skills, offers, loads, free time and active declines.

    `baselines` maps community slugs to per-sector yearly hours, the default offer of members of that
    community who set no split of their own (unknown slugs raise ValueError).
    """
    now = now or clock.now()  # the people's clock (simulated in the demo and the week)
    sites = {s.id: s for s in session.scalars(select(Site))}
    communities = {c.id: c for c in session.scalars(select(Community).order_by(Community.id))}
    by_slug = {c.slug: c.id for c in communities.values()}
    unknown = set(baselines or {}) - by_slug.keys()
    if unknown:
        raise ValueError(f"baselines name unknown communities: {sorted(unknown)}")
    defaults = {by_slug[slug]: dict(b) for slug, b in (baselines or {}).items()}
    return RepairInput(
        tasks=_open_jobs(session, sites, now),
        crew=_crew(session, now, horizon_h, defaults),
        communities={c.id: (c.lat, c.lon) for c in communities.values()},
        region_fallback=region_fallback,
        horizon_h=horizon_h,
        now=now,
    )


def _open_jobs(session: Session, sites: Mapping[int, Site], now: datetime) -> list[RepairJob]:
    """The tasks to (re)assign, each with whose decline of it still holds (they are not asked again)."""
    tasks_rows = session.scalars(
        select(RepairTask).where(RepairTask.status.in_(TO_PLAN)).order_by(RepairTask.id)
    ).all()
    declined = declines.declined_tasks(declines.active(session, now))
    return [
        RepairJob(
            id=t.id,
            title=t.title,
            community_id=sites[t.site_id].community_id,
            lat=sites[t.site_id].lat,
            lon=sites[t.site_id].lon,
            required_skills=frozenset(str(s) for s in t.required_skills or ()),
            urgency=t.urgency,
            sector=offers.REPAIR_SECTOR,
            declined_by=frozenset(declined.get(t.id, ())),
            hours=float(t.estimated_hours or DEFAULT_TASK_HOURS),
        )
        for t in tasks_rows
    ]


def _crew(
    session: Session, now: datetime, horizon_h: float, defaults: Mapping[int, Mapping[str, float]]
) -> list[CrewMember]:
    """Active crew members with their skills, offer, loads and free time."""
    members = session.scalars(
        select(Member).where(Member.active.is_(True), Member.is_crew.is_(True)).order_by(Member.id)
    ).all()
    skills: dict[int, set[str]] = defaultdict(set)
    for member_id, skill in session.execute(select(MemberSkill.member_id, MemberSkill.skill)):
        skills[member_id].add(skill)
    week = week_loads(session, now, horizon_h)
    year = year_loads(session, now)
    busy = hours.busy_intervals(session, now)
    return [
        CrewMember(
            id=m.id,
            name=m.name,
            community_id=m.community_id,
            lat=m.lat,
            lon=m.lon,
            skills=frozenset(skills[m.id]),
            week_pledge_h=float(m.hours_per_week or 0.0),
            week_load_h=week.get(m.id, 0.0),
            year_offer_h=member_offer(m, defaults.get(m.community_id)),
            year_load_h=year.get(m.id, {}),
            preferred_sectors=frozenset(str(s) for s in m.preferred_sectors or ()),
            windows=availability_intervals(m.availability, m.away, now, horizon_h),
            busy=tuple((_hours_from(now, s), _hours_from(now, e)) for s, e in busy.get(m.id, ())),
        )
        for m in members
    ]


def week_loads(session: Session, now: datetime, horizon_h: float) -> dict[int, float]:
    """Member id -> hours counted in the week of `now`, or in the next one when the horizon reaches it and
    more is counted there: work planned now may fall in either week, so it must fit the fuller one."""
    this_week = hours.week_start(now)
    loads = hours.weekly_load(session, this_week)
    following = this_week + timedelta(days=7)
    while following < now + timedelta(hours=horizon_h):
        for member_id, load in hours.weekly_load(session, following).items():
            loads[member_id] = max(loads.get(member_id, 0.0), load)
        following += timedelta(days=7)
    return loads


def year_loads(session: Session, now: datetime) -> dict[int, dict[str, float]]:
    """Member id -> offer sector -> hours counted this year (water, energy and the rest count in other)."""
    loads: dict[int, dict[str, float]] = defaultdict(dict)
    for member_id, by_sector in hours.yearly_sector_load(session, hours.year_start(now)).items():
        for sector, load in by_sector.items():
            bucket = offers.offer_sector(sector)
            loads[member_id][bucket] = loads[member_id].get(bucket, 0.0) + load
    return dict(loads)


def member_offer(member: Member, community_default: Mapping[str, float] | None) -> dict[str, float]:
    """The member's yearly hours by sector: their own split, else the community's, else the baseline
    scaled to their year's hours."""
    if member.sector_hours:
        return offers.sector_hours(member.sector_hours)
    own = offers.sector_hours(None, member.hours_per_year)
    return own | dict(community_default or {})


def _hours_from(now: datetime, at: datetime) -> float:
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return (at - now).total_seconds() / 3600


def save_repair_plan(
    session: Session,
    plan: RepairPlan,
    loaded: Mapping[int, float] | None = None,
    horizon_h: float = 24.0,
) -> tuple[int, int]:
    """Write assignments (status, member, explanation, event, member alert, the hours offered over the
    planned interval) and escalations, one transaction.

    A task that changed since it was loaded (taken, closed) is left alone. With `loaded` (member id -> the
    week load the plan was made with), a member whose load changed meanwhile (the router, in its own
    thread, offered them a route) is locked and left out: their tasks wait for the next run, a second
    later, which sees both. Returns (assigned, escalated).
    """
    now = utcnow()
    origin = plan.now or clock.now()  # the work clock the plan's relative hours count from
    slugs = dict(session.execute(select(Community.id, Community.slug)).all())
    chosen = list(plan.assignments)
    if loaded is not None and chosen:
        members = {a.member_id for a in chosen}
        hours.lock_members(session, members)
        current = week_loads(session, origin, horizon_h)
        moved = {m for m in members if abs(current.get(m, 0.0) - loaded.get(m, 0.0)) > 1e-6}
        if moved:
            log.info("%s members' hours changed while planning; their tasks wait a run", len(moved))
            chosen = [a for a in chosen if a.member_id not in moved]
    assigned = sum(_assign(session, a, origin, now) for a in chosen)
    escalated = sum(_escalate(session, u, slugs, now) for u in plan.unassigned)
    return assigned, escalated


def _assign(session: Session, a: Assignment, origin: datetime, now: datetime) -> bool:
    """Assign the task and alert the member, unless it changed while planning."""
    task = session.get(RepairTask, a.task_id)
    if task is None or not lifecycle.allows(task.status, TaskAction.ASSIGN):
        log.info("task %s changed while planning; not assigned", a.task_id)
        return False
    starts = origin + timedelta(hours=a.starts_at_h)
    ends = origin + timedelta(hours=a.ends_at_h)
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
        "starts_at": format_ts(starts),
        "ends_at": format_ts(ends),
    }
    site = session.get(Site, task.site_id)
    if site is not None:
        body.update(place_fields(site.name, site.lat, site.lon, crew_task_link(task.id)))
    enqueue(session, member_alerts_topic(a.member_id), body)
    lifecycle.apply(
        session,
        task,
        TaskAction.ASSIGN,
        member_id=a.member_id,
        reason=a.explanation,
        explanation=a.explanation,
        at=now,
        window=(starts, ends),
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
