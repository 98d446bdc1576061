"""The task board as pages and the API show it: open tasks with their coming shifts and how many places are
filled, never by whom; a task's places for one reader (which of them are the reader's own); a person's places.

Counts only: the public board says "2 of 4 filled", and a reader sees their own signups and no one else's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.board import LIVE, URGENCY_NAMES, URGENT_WINDOW_H, declined_by_task
from gateway.store.models import (
    BoardTask,
    Community,
    Member,
    MemberSkill,
    RepairTask,
    Site,
    SlotSignup,
    TaskShift,
    TaskSlot,
)
from gateway.store.models.vocab import BoardTaskStatus, ShiftStatus, SignupState
from gateway.store.tasks import TO_PLAN
from logistics.common.geo import haversine_km

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DEFAULT_DAYS = 14  # the board shows the coming two weeks unless asked for other dates
MAX_DAYS = 62
SHIFTS_SHOWN = 3  # a listing row shows the next few occurrences; the task page shows them all


@dataclass(frozen=True)
class Filters:
    """What the reader asked the board for; all optional. `skill` "none" means places that need no skill."""

    sector: str | None = None
    skill: str | None = None
    community: str | None = None
    within_km: float | None = None
    origin: tuple[float, float] | None = None  # the reader's home, for distances
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SlotView:
    """One place of a task: what it needs."""

    id: int
    skill: str | None
    newcomer: bool
    note: str

    @property
    def label(self) -> str:
        """ "electrician", "no experience needed" or "anyone"."""
        if self.skill:
            return self.skill
        return "no experience needed" if self.newcomer else "anyone"


@dataclass(frozen=True)
class ShiftView:
    """One occurrence with its places: filled ones are counted, the reader's own are marked."""

    id: int
    starts_at: datetime
    ends_at: datetime
    filled: frozenset[int]  # slot ids someone took (taken or done)
    mine: dict[int, tuple[int, str]] = field(default_factory=dict)  # slot id -> (signup id, state), reader's
    asked: frozenset[int] = frozenset()  # slot ids suggested to someone who has not answered (still takeable)

    def filled_count(self, slots: int) -> int:
        """How many of the `slots` places are filled."""
        return min(len(self.filled), slots)


@dataclass(frozen=True)
class TaskView:
    """A task as listed: where, when, the places and their coming shifts."""

    id: int
    title: str
    description: str
    sector: str
    community: str
    community_name: str
    place: str
    lat: float
    lon: float
    starts_at: datetime
    ends_at: datetime
    recurrence: dict[str, object] | None
    hours_per_slot: float
    urgency: int
    status: str
    poster: str
    posted_by_account: str
    cancel_reason: str
    slots: tuple[SlotView, ...]
    shifts: tuple[ShiftView, ...]
    km: float | None = None

    @property
    def urgency_name(self) -> str:
        return URGENCY_NAMES[self.urgency]

    @property
    def when(self) -> str:
        """ "every Tue, Thu 09:00-12:00 UTC" or "Mon 7 Dec 09:00-12:00 UTC"."""
        if self.recurrence:
            days = ", ".join(DAY_NAMES[int(d)] for d in self.recurrence.get("days", []))  # type: ignore[attr-defined]
            return f"every {days} {self.recurrence.get('start')}-{self.recurrence.get('end')} UTC"
        return f"{self.starts_at:%a %d %b %H:%M}-{self.ends_at:%H:%M} UTC"

    @property
    def open_places(self) -> int:
        """Places still free over the shifts listed."""
        return sum(len(self.slots) - s.filled_count(len(self.slots)) for s in self.shifts)

    @property
    def places(self) -> int:
        return len(self.slots) * len(self.shifts)


def _poster(task: BoardTask) -> str:
    """Who posted it, as the public may read it: a guild's or assembly's name, never a person's."""
    if task.poster_kind in ("guild", "assembly") and task.poster_name:
        return f"{task.poster_name} ({task.poster_kind})"
    return {"coordinator": "the coordinators", "guild": "a guild", "assembly": "an assembly"}.get(
        task.poster_kind, "a member"
    )


def _window(filters: Filters, now: datetime) -> tuple[datetime, datetime]:
    since = max(filters.since or now, now)
    until = filters.until or since + timedelta(days=DEFAULT_DAYS)
    return since, min(until, since + timedelta(days=MAX_DAYS))


def list_tasks(
    session: Session, filters: Filters, now: datetime, *, reader_id: int | None = None, limit: int = 200
) -> list[TaskView]:
    """Open tasks with a shift in the filters' window, soonest and most urgent first, with counts of filled
    places; only those with a free place matching the filters' skill, within their distance."""
    since, until = _window(filters, now)
    query = (
        select(BoardTask, Community.slug, Community.name)
        .join(Community, Community.id == BoardTask.community_id)
        .where(BoardTask.status == BoardTaskStatus.OPEN, BoardTask.ends_at > since)
    )
    if filters.sector:
        query = query.where(BoardTask.sector == filters.sector)
    if filters.community:
        query = query.where(Community.slug == filters.community)
    rows = session.execute(query).all()
    tasks = {t.id: (t, slug, name) for t, slug, name in rows}
    if not tasks:
        return []
    views = _views(session, tasks, since, until, reader_id, filters.origin)
    found = []
    for view in views:
        if not view.shifts:
            continue
        if filters.skill and not any(
            _matches(s, filters.skill) and s.id not in shift.filled
            for shift in view.shifts
            for s in view.slots
        ):
            continue
        if filters.within_km is not None and (view.km is None or view.km > filters.within_km):
            continue
        found.append(view)
    found.sort(key=lambda v: (v.shifts[0].starts_at, -v.urgency, v.id))
    return found[:limit]


def _matches(slot: SlotView, skill: str) -> bool:
    return slot.skill is None if skill == "none" else slot.skill == skill


def _views(
    session: Session,
    tasks: dict[int, tuple[BoardTask, str, str]],
    since: datetime,
    until: datetime,
    reader_id: int | None,
    origin: tuple[float, float] | None,
    shifts_shown: int | None = SHIFTS_SHOWN,
) -> list[TaskView]:
    ids = list(tasks)
    slots: dict[int, list[SlotView]] = defaultdict(list)
    for s in session.scalars(select(TaskSlot).where(TaskSlot.task_id.in_(ids)).order_by(TaskSlot.position)):
        slots[s.task_id].append(SlotView(s.id, s.skill, s.newcomer, s.note))
    shifts: dict[int, list[TaskShift]] = defaultdict(list)
    for shift in session.scalars(
        select(TaskShift)
        .where(TaskShift.task_id.in_(ids), TaskShift.status == ShiftStatus.OPEN)
        .where(TaskShift.ends_at > since, TaskShift.starts_at < until)
        .order_by(TaskShift.starts_at)
    ):
        if shifts_shown is None or len(shifts[shift.task_id]) < shifts_shown:
            shifts[shift.task_id].append(shift)
    shift_ids = [s.id for group in shifts.values() for s in group]
    filled: dict[int, set[int]] = defaultdict(set)
    asked: dict[int, set[int]] = defaultdict(set)
    mine: dict[int, dict[int, tuple[int, str]]] = defaultdict(dict)
    if shift_ids:
        for signup_id, shift_id, slot_id, member_id, state in session.execute(
            select(
                SlotSignup.id, SlotSignup.shift_id, SlotSignup.slot_id, SlotSignup.member_id, SlotSignup.state
            ).where(SlotSignup.shift_id.in_(shift_ids), SlotSignup.state.in_(LIVE))
        ):
            (asked if state == SignupState.SUGGESTED else filled)[shift_id].add(slot_id)
            if reader_id is not None and member_id == reader_id:
                mine[shift_id][slot_id] = (signup_id, state)
    views = []
    for task_id, (task, slug, name) in tasks.items():
        views.append(
            TaskView(
                id=task.id,
                title=task.title,
                description=task.description,
                sector=task.sector,
                community=slug,
                community_name=name,
                place=task.place,
                lat=task.lat,
                lon=task.lon,
                starts_at=task.starts_at,
                ends_at=task.ends_at,
                recurrence=task.recurrence,
                hours_per_slot=task.hours_per_slot,
                urgency=task.urgency,
                status=task.status,
                poster=_poster(task),
                posted_by_account=task.posted_by_account,
                cancel_reason=task.cancel_reason,
                slots=tuple(slots[task_id]),
                shifts=tuple(
                    ShiftView(
                        s.id,
                        s.starts_at,
                        s.ends_at,
                        frozenset(filled[s.id]),
                        mine[s.id],
                        frozenset(asked[s.id]),
                    )
                    for s in shifts[task_id]
                ),
                km=round(haversine_km(origin[0], origin[1], task.lat, task.lon), 1) if origin else None,
            )
        )
    return views


def task_view(
    session: Session,
    task_id: int,
    now: datetime,
    *,
    reader_id: int | None = None,
    origin: tuple[float, float] | None = None,
    days: int = 35,
) -> TaskView | None:
    """One task with all its shifts of the coming `days` (any status of the task: a cancelled one says so)."""
    row = session.execute(
        select(BoardTask, Community.slug, Community.name)
        .join(Community, Community.id == BoardTask.community_id)
        .where(BoardTask.id == task_id)
    ).first()
    if row is None:
        return None
    task, slug, name = row
    views = _views(
        session, {task.id: (task, slug, name)}, now, now + timedelta(days=days), reader_id, origin, None
    )
    return views[0]


@dataclass(frozen=True)
class MyPlace:
    """One of my places: a suggestion to answer, or a place I took."""

    signup_id: int
    state: str
    explanation: str
    task_id: int
    title: str
    sector: str
    community_name: str
    place: str
    lat: float
    lon: float
    skill: str | None
    starts_at: datetime
    ends_at: datetime
    hours: float
    task_status: str


def my_places(session: Session, member_id: int, now: datetime) -> list[MyPlace]:
    """My suggestions and taken places in shifts not yet over, in time order."""
    rows = session.execute(
        select(SlotSignup, TaskShift, TaskSlot, BoardTask, Community.name)
        .join(TaskShift, TaskShift.id == SlotSignup.shift_id)
        .join(TaskSlot, TaskSlot.id == SlotSignup.slot_id)
        .join(BoardTask, BoardTask.id == TaskShift.task_id)
        .join(Community, Community.id == BoardTask.community_id)
        .where(SlotSignup.member_id == member_id, TaskShift.ends_at > now)
        .where(SlotSignup.state.in_((SignupState.SUGGESTED, SignupState.TAKEN)))
        .order_by(TaskShift.starts_at, SlotSignup.id)
    ).all()
    return [
        MyPlace(
            signup.id,
            signup.state,
            signup.explanation,
            task.id,
            task.title,
            task.sector,
            community_name,
            task.place,
            task.lat,
            task.lon,
            slot.skill,
            shift.starts_at,
            shift.ends_at,
            task.hours_per_slot,
            task.status,
        )
        for signup, shift, slot, task, community_name in rows
    ]


def fitting_tasks(
    session: Session, member: Member, now: datetime, *, within_km: float = 25.0
) -> list[TaskView]:
    """Open tasks near `member` with a free place they have the skill for, their preferred sectors first;
    a task they declined is not put before them again while the decline holds."""
    skills = set(session.scalars(select(MemberSkill.skill).where(MemberSkill.member_id == member.id)))
    views = list_tasks(
        session,
        Filters(within_km=within_km, origin=(member.lat, member.lon)),
        now,
        reader_id=member.id,
    )
    preferred = set(member.preferred_sectors or [])
    declined = {task for task, people in declined_by_task(session, now).items() if member.id in people}

    def free_for_me(view: TaskView) -> bool:
        return any(
            slot.id not in shift.filled and (slot.skill is None or slot.skill in skills)
            for shift in view.shifts
            for slot in view.slots
        )

    fitting = [v for v in views if v.id not in declined and free_for_me(v)]
    fitting.sort(key=lambda v: (v.sector not in preferred, v.shifts[0].starts_at, v.km or 0.0))
    return fitting


def urgent_soon(view: TaskView, now: datetime) -> bool:
    """A shift of the task starts within the urgent window with a place nobody holds."""
    soon = now + timedelta(hours=URGENT_WINDOW_H)
    return any(now <= s.starts_at <= soon and len(s.filled) < len(view.slots) for s in view.shifts)


@dataclass(frozen=True)
class RepairView:
    """A repair raised by a sensor that nobody has yet: maintenance work on the same board."""

    id: int
    title: str
    site_name: str
    community: str
    community_name: str
    lat: float
    lon: float
    skills: tuple[str, ...]
    urgency: int
    hours: float
    km: float | None = None


def open_repairs(session: Session, filters: Filters, *, limit: int = 50) -> list[RepairView]:
    """Open and escalated repairs (nobody assigned) matching the filters: maintenance, the skill asked
    for, the community, the distance; most urgent first."""
    if filters.sector not in (None, "maintenance"):
        return []
    query = (
        select(RepairTask, Site.name, Site.lat, Site.lon, Community.slug, Community.name)
        .join(Site, Site.id == RepairTask.site_id)
        .join(Community, Community.id == Site.community_id)
        .where(RepairTask.status.in_(TO_PLAN))
        .order_by(RepairTask.urgency.desc(), RepairTask.id)
    )
    if filters.community:
        query = query.where(Community.slug == filters.community)
    found = []
    for task, site, lat, lon, slug, name in session.execute(query).all():
        skills = tuple(sorted(str(x) for x in task.required_skills or ()))
        if (filters.skill == "none" and skills) or (
            filters.skill not in (None, "none") and filters.skill not in skills
        ):
            continue
        km = (
            round(haversine_km(filters.origin[0], filters.origin[1], lat, lon), 1) if filters.origin else None
        )
        if filters.within_km is not None and (km is None or km > filters.within_km):
            continue
        found.append(
            RepairView(
                task.id,
                task.title,
                site,
                slug,
                name,
                lat,
                lon,
                skills,
                task.urgency,
                task.estimated_hours,
                km,
            )
        )
    return found[:limit]


def skills_wanted(session: Session) -> list[str]:
    """Every skill an open task asks for (the filter's choices)."""
    return list(
        session.scalars(
            select(TaskSlot.skill)
            .join(BoardTask, BoardTask.id == TaskSlot.task_id)
            .where(BoardTask.status == BoardTaskStatus.OPEN, TaskSlot.skill.is_not(None))
            .group_by(TaskSlot.skill)
            .order_by(TaskSlot.skill)
        )
    )


def board_counts(session: Session, now: datetime, days: int = DEFAULT_DAYS) -> dict[str, tuple[int, int]]:
    """Per sector: (places filled, places) in open shifts of the coming `days`, for the map's summary."""
    until = now + timedelta(days=days)
    per_task_slots = dict(
        session.execute(select(TaskSlot.task_id, func.count()).group_by(TaskSlot.task_id)).all()
    )
    shifts = session.execute(
        select(TaskShift.id, TaskShift.task_id, BoardTask.sector)
        .join(BoardTask, BoardTask.id == TaskShift.task_id)
        .where(BoardTask.status == BoardTaskStatus.OPEN, TaskShift.status == ShiftStatus.OPEN)
        .where(TaskShift.ends_at > now, TaskShift.starts_at < until)
    ).all()
    filled = (
        dict(
            session.execute(
                select(SlotSignup.shift_id, func.count())
                .where(SlotSignup.shift_id.in_([s.id for s in shifts]))
                .where(SlotSignup.state.in_((SignupState.TAKEN, SignupState.DONE)))
                .group_by(SlotSignup.shift_id)
            ).all()
        )
        if shifts
        else {}
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for shift_id, task_id, sector in shifts:
        counts[sector][0] += int(filled.get(shift_id, 0))
        counts[sector][1] += int(per_task_slots.get(task_id, 0))
    return {sector: (c[0], c[1]) for sector, c in counts.items()}


__all__: Sequence[str] = (
    "DEFAULT_DAYS",
    "Filters",
    "MyPlace",
    "RepairView",
    "ShiftView",
    "SlotView",
    "TaskView",
    "board_counts",
    "fitting_tasks",
    "list_tasks",
    "my_places",
    "open_repairs",
    "skills_wanted",
    "task_view",
    "urgent_soon",
)
