"""The task board matcher's door to the store: open places and members in; suggestions, urgent alerts and
the board's housekeeping out.

Members come as the repair assigner reads them (logistics/loaders/repairs.py): weekly pledge, the year's
hours by sector, preferred sectors, weekly windows minus away days minus work already planned, and the
declines that still hold. A suggestion is written through gateway.store.board, which checks the place
again (still free, not declined, within the person's offer), so a plan made on a moment-old reading never
puts anyone beyond what they offered.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract import clock
from gateway.contract.errors import Conflict, NotFound
from gateway.store import board, hours
from gateway.store.board import LIVE
from gateway.store.models import BoardTask, Member, MemberSkill, SlotSignup, TaskShift, TaskSlot
from gateway.store.models.vocab import BoardTaskStatus, ShiftStatus
from logistics.common.geo import haversine_km
from logistics.loaders.repairs import member_offer, year_loads
from logistics.repairs.data import availability_intervals, subtract
from logistics.tasks import MatchInput, MatchPlan, OpenPlace, Volunteer

log = logging.getLogger(__name__)
SUGGEST_DAYS = 7  # places starting within a week are suggested; later ones wait (plans change)
MAX_PENDING = 3  # nobody has more than this many suggestions waiting for an answer
URGENT_KM = 15.0  # an urgent place is told to suited people this close
URGENT_PEOPLE = 5  # ... at most this many, the nearest first


@dataclass(frozen=True)
class Housekeeping:
    """What time passing did to the board in one run."""

    shifts_added: int
    lapsed: int
    counted: int


def housekeep(session: Session, now: datetime) -> Housekeeping:
    """Shifts of recurring tasks added ahead, unanswered suggestions lapsed, past shifts counted as done."""
    return Housekeeping(
        board.extend_shifts(session, now),
        board.lapse_unanswered(session, now),
        board.finish_past(session, now),
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def open_places(session: Session, now: datetime, days: float = SUGGEST_DAYS) -> list[OpenPlace]:
    """Every free place of an open shift starting in the coming `days` (and not within the urgent window,
    where suggestions would lapse at once: those are told as urgent instead). Nobody is asked again for a
    place they let lapse, nor for a task they declined."""
    soonest = now + timedelta(hours=board.URGENT_WINDOW_H)
    rows = session.execute(
        select(TaskShift, BoardTask)
        .join(BoardTask, BoardTask.id == TaskShift.task_id)
        .where(BoardTask.status == BoardTaskStatus.OPEN, TaskShift.status == ShiftStatus.OPEN)
        .where(TaskShift.starts_at > soonest, TaskShift.starts_at <= now + timedelta(days=days))
        .order_by(TaskShift.starts_at, TaskShift.id)
    ).all()
    if not rows:
        return []
    task_ids = {task.id for _shift, task in rows}
    slots: dict[int, list[TaskSlot]] = defaultdict(list)
    for slot in session.scalars(
        select(TaskSlot).where(TaskSlot.task_id.in_(task_ids)).order_by(TaskSlot.position)
    ):
        slots[slot.task_id].append(slot)
    held = set(
        session.execute(
            select(SlotSignup.shift_id, SlotSignup.slot_id).where(
                SlotSignup.shift_id.in_([shift.id for shift, _task in rows]), SlotSignup.state.in_(LIVE)
            )
        ).all()
    )
    declined = board.declined_by_task(session, now)
    unanswered: dict[tuple[int, int], set[int]] = defaultdict(set)  # a suggestion that lapsed is not repeated
    for shift_id, slot_id, member_id in session.execute(
        select(SlotSignup.shift_id, SlotSignup.slot_id, SlotSignup.member_id).where(
            SlotSignup.shift_id.in_([shift.id for shift, _task in rows]), SlotSignup.state == "lapsed"
        )
    ):
        unanswered[shift_id, slot_id].add(member_id)
    return [
        OpenPlace(
            shift_id=shift.id,
            slot_id=slot.id,
            task_id=task.id,
            community_id=task.community_id,
            sector=task.sector,
            skill=slot.skill,
            newcomer=slot.newcomer,
            lat=task.lat,
            lon=task.lon,
            starts_at=_aware(shift.starts_at),
            ends_at=_aware(shift.ends_at),
            hours=task.hours_per_slot,
            urgency=task.urgency,
            excluded=frozenset(declined.get(task.id, ())) | frozenset(unanswered[shift.id, slot.id]),
            title=task.title,
        )
        for shift, task in rows
        for slot in slots[task.id]
        if (shift.id, slot.id) not in held
    ]


def volunteers(session: Session, now: datetime, until: datetime) -> list[Volunteer]:
    """Active members with a weekly pledge, and fewer than MAX_PENDING suggestions waiting."""
    members = session.scalars(
        select(Member).where(Member.active.is_(True), Member.hours_per_week > 0).order_by(Member.id)
    ).all()
    pending: dict[int, int] = defaultdict(int)
    for (member_id,) in session.execute(
        select(SlotSignup.member_id).where(SlotSignup.state == "suggested")
    ).all():
        pending[member_id] += 1
    skills: dict[int, set[str]] = defaultdict(set)
    for member_id, skill in session.execute(select(MemberSkill.member_id, MemberSkill.skill)):
        skills[member_id].add(skill)
    weeks = []
    week = hours.week_start(now)
    while week < until:
        weeks.append(week)
        week += timedelta(days=7)
    loads = hours.weekly_loads(session, weeks)
    year = year_loads(session, now)
    busy = hours.busy_intervals(session, now)
    horizon_h = (until - now).total_seconds() / 3600
    found = []
    for m in members:
        if pending[m.id] >= MAX_PENDING:
            continue
        free_h = subtract(
            availability_intervals(m.availability, m.away, now, horizon_h),
            [(_hours(now, s), _hours(now, e)) for s, e in busy.get(m.id, ())],
        )
        found.append(
            Volunteer(
                id=m.id,
                community_id=m.community_id,
                lat=m.lat,
                lon=m.lon,
                skills=frozenset(skills[m.id]),
                hours_per_week=float(m.hours_per_week or 0.0),
                week_load={w.date(): loads[w].get(m.id, 0.0) for w in weeks},
                year_offer=member_offer(m, None),
                year_load=year.get(m.id, {}),
                preferred_sectors=frozenset(str(s) for s in m.preferred_sectors or ()),
                free=tuple((now + timedelta(hours=s), now + timedelta(hours=e)) for s, e in free_h),
            )
        )
    return found


def _hours(now: datetime, at: datetime) -> float:
    return (_aware(at) - now).total_seconds() / 3600


def load_match_input(session: Session, now: datetime | None = None, days: float = SUGGEST_DAYS) -> MatchInput:
    """The open places of the coming `days` and the members who may be asked for them."""
    now = now or clock.now()
    places = open_places(session, now, days)
    people = volunteers(session, now, now + timedelta(days=days + 1)) if places else []
    return MatchInput(places=places, volunteers=people, now=now, period_days=max(7, int(days)))


def save_match_plan(session: Session, plan: MatchPlan, now: datetime) -> int:
    """Write each suggestion that still fits (the store checks the place and the person again); one that
    no longer does waits for the next run. Returns how many were written."""
    by_member: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for s in plan.suggestions:
        by_member[s.member_id].append((s.shift_id, s.slot_id, s.explanation))
    written = 0
    hours.lock_members(session, by_member)
    for member_id, places in sorted(by_member.items()):
        member = session.get(Member, member_id)
        if member is None:
            continue
        for shift_id, slot_id, explanation in places[:MAX_PENDING]:
            shift, slot = session.get(TaskShift, shift_id), session.get(TaskSlot, slot_id)
            if shift is None or slot is None:
                continue
            task = session.get(BoardTask, shift.task_id)
            assert task is not None
            reason = board.why_not(session, member, shift, slot, task, now=now)
            if reason is not None:
                log.info("place %s/%s no longer fits member %s: %s", shift_id, slot_id, member_id, reason)
                continue
            try:  # suggest checks before it writes: a refusal leaves nothing behind (no savepoint, which
                # SQLite would turn into a read snapshot that a concurrent writer makes unwritable)
                board.suggest(session, shift_id, slot_id, member_id, explanation, now=now)
            except (Conflict, NotFound) as exc:
                log.info("place %s/%s not suggested: %s", shift_id, slot_id, exc)
                continue
            written += 1
    return written


def alert_urgent(session: Session, now: datetime, people: Sequence[Member] | None = None) -> int:
    """Tell suited people near each place that starts soon with nobody in it (once per shift). Returns how
    many people were told."""
    urgent = board.urgent_unfilled(session, now)
    if not urgent:
        return 0
    candidates = list(people) if people is not None else _active(session)
    told = 0
    alerted: dict[int, set[int]] = defaultdict(set)  # shift -> people told: once each, whatever the slot
    for shift, slot, task in urgent:
        near = sorted(
            (haversine_km(m.lat, m.lon, task.lat, task.lon), m.id, m)
            for m in candidates
            if haversine_km(m.lat, m.lon, task.lat, task.lon) <= URGENT_KM
        )
        chosen = [
            m.id
            for _km, _id, m in near
            if m.id not in alerted[shift.id] and board.why_not(session, m, shift, slot, task, now=now) is None
        ][:URGENT_PEOPLE]
        alerted[shift.id].update(chosen)
        told += board.alert_urgent(session, shift, slot, task, chosen, now=now)
    return told


def _active(session: Session) -> Iterable[Member]:
    return session.scalars(select(Member).where(Member.active.is_(True), Member.hours_per_week > 0)).all()
