"""The open task board: posting work of every sector, its occurrences, and people opting in or answering the
matcher's suggestions. The only writer of board_tasks, task_slots, task_shifts and slot_signups.

A task is a window or a weekly schedule; each occurrence is a shift, each place for a person a slot. A
person is in a slot of a shift by a signup: `suggested` (the matcher asked them; the hours count as offered
until they answer), `taken` (they opted in or accepted: reserved), `done` (the shift is over: the hours are
given), or out of it again (`declined`, `released`, `lapsed`). Nobody is put in a place without saying yes.
Every place a person takes is checked against what they offered: their skill, their weekly pledge, their
year's hours in the sector, their away days and the work they already hold at that time. Changes and
cancellations reach the people signed up on their member alerts topic.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.alerts import board_task_link, place_fields
from gateway.contract.errors import Conflict, InvalidInput, NotFound
from gateway.contract.events import BoardChanged
from gateway.contract.payloads import format_ts
from gateway.contract.text import has_control
from gateway.contract.topics import member_alerts_topic
from gateway.store import declines, hours
from gateway.store import tasks as repairs
from gateway.store.models import (
    BoardTask,
    Community,
    Decline,
    Member,
    MemberSkill,
    RepairTask,
    Site,
    SlotSignup,
    TaskShift,
    TaskSlot,
)
from gateway.store.models.vocab import (
    BOARD_SECTORS,
    POSTER_KINDS,
    BoardTaskStatus,
    ShiftStatus,
    SignupState,
    TaskStatus,
    WorkKind,
)
from gateway.store.offers import offer_sector, sector_hours
from gateway.store.outbox import enqueue, enqueue_event

SHIFT_HORIZON_DAYS: Final = 35  # recurring occurrences exist this far ahead (a month's planning and a week)
MAX_SERIES_DAYS: Final = 366  # a schedule runs at most a year; post it again after that
MAX_SLOTS: Final = 20
MAX_SHIFT_HOURS: Final = 24.0
SUGGESTION_TTL_H: Final = 24.0  # a suggestion nobody answered lapses after this, so someone else can be asked
URGENT_WINDOW_H: Final = 2.0  # a place starting this soon with nobody in it is urgent
MAX_TEXT: Final = 200
MAX_DESCRIPTION: Final = 4000
MAX_REASON: Final = 500
URGENCY_NAMES: Final = ("low", "normal", "high", "urgent")
LIVE: Final = (SignupState.SUGGESTED, SignupState.TAKEN, SignupState.DONE)  # holds the place
HOLDING: Final = (SignupState.SUGGESTED, SignupState.TAKEN)  # still ahead
SKILL_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
CLOCK_RE: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
FIRST_YEAR, LAST_YEAR = 2000, 2100  # a time outside these is a typing mistake (and 9999 overflows)
CHANGEABLE: Final = ("title", "description", "place", "urgency", "hours_per_slot", "starts_at", "ends_at")


@dataclass(frozen=True)
class SlotDraft:
    """One place a task asks for."""

    skill: str | None = None
    newcomer: bool = False
    note: str = ""


@dataclass(frozen=True)
class Recurrence:
    """Every one of `days` (0 = Monday) from `start` to `end` o'clock, UTC."""

    days: tuple[int, ...]
    start: time
    end: time

    def to_json(self) -> dict[str, Any]:
        """As stored in board_tasks.recurrence."""
        return {
            "days": list(self.days),
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
        }

    @property
    def hours(self) -> float:
        """One occurrence's length."""
        return (_minutes(self.end) - _minutes(self.start)) / 60


@dataclass(frozen=True)
class TaskDraft:
    """A task as posted, checked: what `post` writes."""

    title: str
    sector: str
    community: str
    starts_at: datetime
    ends_at: datetime
    slots: tuple[SlotDraft, ...]
    recurrence: Recurrence | None = None
    hours_per_slot: float | None = None
    urgency: int = 1
    place: str = ""
    description: str = ""
    poster_kind: str = "member"
    poster_name: str = ""
    lat: float | None = None
    lon: float | None = None
    site: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def occurrence_hours(self) -> float:
        """The length of one occurrence (the whole window for a one-off task)."""
        if self.recurrence is not None:
            return self.recurrence.hours
        return (self.ends_at - self.starts_at).total_seconds() / 3600


# --- validation ------------------------------------------------------------------------------------------


def parse_draft(raw: Mapping[str, Any]) -> TaskDraft:
    """The one check of a posted task (form, API and CLI all come here). InvalidInput names the field."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("a task is an object with title, sector, community, starts_at, ends_at and slots")
    known = {
        "title",
        "sector",
        "community",
        "starts_at",
        "ends_at",
        "slots",
        "recurrence",
        "hours_per_slot",
        "urgency",
        "place",
        "description",
        "poster_kind",
        "poster_name",
        "lat",
        "lon",
        "site",
    }
    unknown = sorted(str(k)[:40] for k in raw if k not in known)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; a task has {', '.join(sorted(known))}")
    title = text(raw.get("title"), "title", MAX_TEXT, required=True)
    sector = str(raw.get("sector") or "")
    if sector not in BOARD_SECTORS:
        raise InvalidInput(f"sector must be one of {', '.join(BOARD_SECTORS)}")
    community = text(raw.get("community"), "community", 48, required=True)
    starts_at = timestamp(raw.get("starts_at"), "starts_at")
    ends_at = timestamp(raw.get("ends_at"), "ends_at")
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at")
    recurrence = parse_recurrence(raw.get("recurrence"))
    if recurrence is None:
        if (ends_at - starts_at).total_seconds() / 3600 > MAX_SHIFT_HOURS:
            raise InvalidInput(
                f"a one-off task lasts at most {MAX_SHIFT_HOURS:.0f} h; for longer work give a schedule"
            )
    elif (ends_at.date() - starts_at.date()).days > MAX_SERIES_DAYS:
        raise InvalidInput(f"a schedule runs at most {MAX_SERIES_DAYS} days; post it again after that")
    slots = parse_slots(raw.get("slots"))
    draft = TaskDraft(
        title=title,
        sector=sector,
        community=community,
        starts_at=starts_at,
        ends_at=ends_at,
        slots=slots,
        recurrence=recurrence,
        urgency=urgency(raw.get("urgency", 1)),
        place=text(raw.get("place"), "place", MAX_TEXT),
        description=text(raw.get("description"), "description", MAX_DESCRIPTION),
        poster_kind=_poster_kind(raw.get("poster_kind")),
        poster_name=text(raw.get("poster_name"), "poster_name", MAX_TEXT),
        lat=_coordinate(raw.get("lat"), "lat", 90),
        lon=_coordinate(raw.get("lon"), "lon", 180),
        site=text(raw.get("site"), "site", 48) or None,
    )
    if (draft.lat is None) != (draft.lon is None):
        raise InvalidInput("give both lat and lon, or neither (the community's centre is used)")
    if recurrence is not None and not _occurrences(draft.starts_at, draft.ends_at, recurrence, None):
        raise InvalidInput("the schedule has no occurrence between starts_at and ends_at")
    per_slot = raw.get("hours_per_slot")
    if per_slot not in (None, ""):
        value = number(per_slot, "hours_per_slot", 0.25, MAX_SHIFT_HOURS)
        if value > draft.occurrence_hours + 1e-9:
            raise InvalidInput(
                f"hours_per_slot {value:g} is longer than one occurrence ({draft.occurrence_hours:g} h)"
            )
        draft = _replace(draft, hours_per_slot=value)
    return draft


def _span_h(start: datetime, end: datetime) -> float:
    return (_aware(end) - _aware(start)).total_seconds() / 3600


def _check_window(
    starts_at: datetime, ends_at: datetime, recurrence: Recurrence | None, now: datetime
) -> None:
    """The rules of a task's time, for a change as for a post: after its start, not over, a one-off within
    MAX_SHIFT_HOURS, a schedule within MAX_SERIES_DAYS with at least one occurrence still to come."""
    starts_at, ends_at = _aware(starts_at), _aware(ends_at)
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at")
    if ends_at <= now:
        raise InvalidInput("the task would be over already: give a time still to come")
    if recurrence is None:
        if (ends_at - starts_at).total_seconds() / 3600 > MAX_SHIFT_HOURS:
            raise InvalidInput(
                f"a one-off task lasts at most {MAX_SHIFT_HOURS:.0f} h; for longer work give a schedule"
            )
        return
    if (ends_at.date() - starts_at.date()).days > MAX_SERIES_DAYS:
        raise InvalidInput(f"a schedule runs at most {MAX_SERIES_DAYS} days; post it again after that")
    if not [w for w in _occurrences(starts_at, ends_at, recurrence, None) if w[1] > now]:
        raise InvalidInput("the schedule has no occurrence still to come between starts_at and ends_at")


def _replace(draft: TaskDraft, **changes: Any) -> TaskDraft:
    return replace(draft, **changes)


def text(value: Any, name: str, limit: int, *, required: bool = False) -> str:
    """A trimmed string of at most `limit` characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text")
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{name} is required")
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    if has_control(value):
        raise InvalidInput(f"{name} holds a control character; write plain text (line breaks are fine)")
    return value


def number(value: Any, name: str, low: float, high: float) -> float:
    """A number in [low, high], from JSON or a form field."""
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number") from None
    if not low <= result <= high:
        raise InvalidInput(f"{name} must be from {low:g} to {high:g}")
    return result


def timestamp(value: Any, name: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 0 < len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{name} must be an ISO time like 2026-12-08T09:00") from None
    else:
        raise InvalidInput(f"{name} must be an ISO time like 2026-12-08T09:00")
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise InvalidInput(f"{name} must be in the years {FIRST_YEAR} to {LAST_YEAR}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def urgency(value: Any) -> int:
    """0-3, or its name (low, normal, high, urgent)."""
    if isinstance(value, str) and value.strip().lower() in URGENCY_NAMES:
        return URGENCY_NAMES.index(value.strip().lower())
    if isinstance(value, str) and re.fullmatch(r"[0-9]", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
        raise InvalidInput(f"urgency must be 0-3 or one of {', '.join(URGENCY_NAMES)}")
    return value


def parse_recurrence(value: Any) -> Recurrence | None:
    """{"days": [1], "start": "09:00", "end": "12:00"}, or None for a one-off window."""
    if value in (None, "", {}):
        return None
    if not isinstance(value, Mapping) or set(value) - {"days", "start", "end"}:
        raise InvalidInput('recurrence must be {"days": [0-6], "start": "HH:MM", "end": "HH:MM"}')
    days = value.get("days")
    if (
        not isinstance(days, list | tuple)
        or not days
        or any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in days)
    ):
        raise InvalidInput("recurrence days must be a list of weekdays, 0 (Monday) to 6 (Sunday)")
    start, end = _clock(value.get("start"), "start"), _clock(value.get("end"), "end")
    if _minutes(end) <= _minutes(start):
        raise InvalidInput("a recurring task ends after it starts on the same day")
    return Recurrence(tuple(sorted(set(days))), start, end)


def parse_slots(value: Any) -> tuple[SlotDraft, ...]:
    """1 to MAX_SLOTS places: [{"skill": "electrician"}, {"skill": null, "newcomer": true}, ...]."""
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput("a task needs at least one slot (a place for one person)")
    if len(value) > MAX_SLOTS:
        raise InvalidInput(f"a task has at most {MAX_SLOTS} slots")
    slots = []
    for i, raw in enumerate(value, 1):
        if not isinstance(raw, Mapping) or set(raw) - {"skill", "newcomer", "note"}:
            raise InvalidInput(f"slot {i} must be {{'skill': ..., 'newcomer': ..., 'note': ...}}")
        skill = raw.get("skill") or None
        if skill is not None and (not isinstance(skill, str) or not SKILL_RE.match(skill.strip().lower())):
            raise InvalidInput(f"slot {i}: a skill is a short name like solar-installer (a-z, 0-9, -)")
        newcomer = raw.get("newcomer", False)
        if not isinstance(newcomer, bool):
            raise InvalidInput(f"slot {i}: newcomer is true or false")
        if newcomer and skill is not None:
            raise InvalidInput(f"slot {i}: a place for newcomers needs no skill")
        note = text(raw.get("note"), f"slot {i} note", MAX_TEXT)
        slots.append(SlotDraft(skill.strip().lower() if skill else None, newcomer, note))
    return tuple(slots)


def _poster_kind(value: Any) -> str:
    kind = value or "member"
    if kind not in POSTER_KINDS:
        raise InvalidInput(f"poster_kind must be one of {', '.join(POSTER_KINDS)}")
    return str(kind)


def _coordinate(value: Any, name: str, limit: float) -> float | None:
    return None if value in (None, "") else number(value, name, -limit, limit)


def _clock(value: Any, name: str) -> time:
    match = CLOCK_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"recurrence {name} must be HH:MM")
    return time(int(match[1]), int(match[2]))


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


# --- posting, changing, cancelling -----------------------------------------------------------------------


def post(
    session: Session, draft: TaskDraft, *, member_id: int | None, account: str, now: datetime
) -> BoardTask:
    """Write a checked task with its slots and the shifts of the coming SHIFT_HORIZON_DAYS."""
    community = session.scalar(select(Community).where(Community.slug == draft.community))
    if community is None:
        raise InvalidInput(f"no community {draft.community!r}")
    site = None
    if draft.site is not None:
        site = session.scalar(select(Site).where(Site.slug == draft.site, Site.community_id == community.id))
        if site is None:
            raise InvalidInput(f"no site {draft.site!r} in {community.slug}")
    if draft.ends_at <= now:
        raise InvalidInput("the task is already over")
    lat, lon = (
        (draft.lat, draft.lon)
        if draft.lat is not None and draft.lon is not None
        else ((site.lat, site.lon) if site is not None else (community.lat, community.lon))
    )
    task = BoardTask(
        title=draft.title,
        description=draft.description,
        sector=draft.sector,
        community_id=community.id,
        site_id=site.id if site is not None else None,
        place=draft.place,
        lat=lat,
        lon=lon,
        starts_at=draft.starts_at,
        ends_at=draft.ends_at,
        recurrence=draft.recurrence.to_json() if draft.recurrence else None,
        hours_per_slot=round(draft.hours_per_slot or draft.occurrence_hours, 4),
        urgency=draft.urgency,
        status=BoardTaskStatus.OPEN.value,
        poster_kind=draft.poster_kind,
        poster_name=draft.poster_name,
        posted_by_member_id=member_id,
        posted_by_account=account[:48],
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    for position, slot in enumerate(draft.slots, 1):
        session.add(
            TaskSlot(
                task_id=task.id, position=position, skill=slot.skill, newcomer=slot.newcomer, note=slot.note
            )
        )
    _add_shifts(session, task, now)
    session.flush()
    changed(session, task.id, "posted", None, now)
    return task


def occurrences(task: BoardTask, until: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """The task's windows, in order (a recurring task's up to `until`)."""
    recurrence = parse_recurrence(task.recurrence)
    if recurrence is None:
        return [(task.starts_at, task.ends_at)]
    return _occurrences(task.starts_at, task.ends_at, recurrence, until)


def _occurrences(
    first: datetime, last: datetime, recurrence: Recurrence, until: datetime | None
) -> list[tuple[datetime, datetime]]:
    """The windows on the recurrence's days that lie wholly within [first, last]: the form's last day ends at
    the next midnight, so nothing of the day after it may count."""
    windows = []
    day: date = first.date()
    end_day = last.date()
    while day <= end_day:
        if day.weekday() in recurrence.days:
            start = datetime.combine(day, recurrence.start, UTC)
            end = datetime.combine(day, recurrence.end, UTC)
            if until is not None and start > until:
                break
            if start >= first and end <= last:
                windows.append((start, end))
        day += timedelta(days=1)
    return windows


def _add_shifts(session: Session, task: BoardTask, now: datetime) -> int:
    """Shifts for the task's occurrences up to SHIFT_HORIZON_DAYS ahead that do not exist yet."""
    have = set(session.scalars(select(TaskShift.starts_at).where(TaskShift.task_id == task.id)))
    added = 0
    for start, end in occurrences(task, now + timedelta(days=SHIFT_HORIZON_DAYS)):
        if start in have or end <= now:
            continue
        session.add(TaskShift(task_id=task.id, starts_at=start, ends_at=end, status=ShiftStatus.OPEN.value))
        added += 1
    return added


def extend_shifts(session: Session, now: datetime) -> int:
    """Materialise recurring tasks' occurrences as time moves on; returns how many shifts were added."""
    added = 0
    for task in session.scalars(
        select(BoardTask).where(
            BoardTask.status == BoardTaskStatus.OPEN,
            BoardTask.recurrence.is_not(None),
            BoardTask.ends_at > now,
        )
    ):
        added += _add_shifts(session, task, now)
    session.flush()
    return added


def get_task(session: Session, task_id: int, *, lock: bool = False) -> BoardTask:
    """The task, or NotFound."""
    query = select(BoardTask).where(BoardTask.id == task_id)
    task = session.scalar(query.with_for_update() if lock else query)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


def change(session: Session, task_id: int, raw: Mapping[str, Any], *, now: datetime) -> BoardTask:
    """Change what a task says (title, description, place, urgency, hours, window). A change of time or hours
    frees the places people held in the shifts it moves (they are told, and may take them again); any change
    is told to everyone signed up."""
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInput(f"say what changes: any of {', '.join(CHANGEABLE)}")
    unknown = sorted(str(k)[:40] for k in raw if k not in CHANGEABLE)
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} cannot be changed; change any of {', '.join(CHANGEABLE)}")
    task = get_task(session, task_id, lock=True)
    if task.status != BoardTaskStatus.OPEN:
        raise Conflict(f"the task is {task.status}: it cannot be changed")
    timing = False
    if "title" in raw:
        task.title = text(raw["title"], "title", MAX_TEXT, required=True)
    if "description" in raw:
        task.description = text(raw["description"], "description", MAX_DESCRIPTION)
    if "place" in raw:
        task.place = text(raw["place"], "place", MAX_TEXT)
    if "urgency" in raw:
        task.urgency = urgency(raw["urgency"])
    starts_at = timestamp(raw["starts_at"], "starts_at") if "starts_at" in raw else task.starts_at
    ends_at = timestamp(raw["ends_at"], "ends_at") if "ends_at" in raw else task.ends_at
    recurrence = parse_recurrence(task.recurrence) if task.recurrence else None
    before_h = recurrence.hours if recurrence else _span_h(task.starts_at, task.ends_at)
    if (_aware(starts_at), _aware(ends_at)) != (_aware(task.starts_at), _aware(task.ends_at)):
        _check_window(starts_at, ends_at, recurrence, now)
        task.starts_at, task.ends_at, timing = starts_at, ends_at, True
    occurrence_h = recurrence.hours if recurrence else _span_h(starts_at, ends_at)
    if "hours_per_slot" not in raw and abs(task.hours_per_slot - before_h) < 1e-9:
        task.hours_per_slot = occurrence_h  # it was the whole window (the default): it follows the window
    if "hours_per_slot" in raw:
        value = number(raw["hours_per_slot"], "hours_per_slot", 0.25, MAX_SHIFT_HOURS)
        if value != task.hours_per_slot:
            task.hours_per_slot, timing = value, True
    if task.hours_per_slot > occurrence_h + 1e-9:
        raise InvalidInput(
            f"hours_per_slot {task.hours_per_slot:g} is longer than one occurrence ({occurrence_h:g} h)"
        )
    task.updated_at = now
    wanted = set(occurrences(task, now + timedelta(days=SHIFT_HORIZON_DAYS)))
    told: set[int] = set()
    for shift in _future_shifts(session, task.id, now):
        moved = (shift.starts_at, shift.ends_at) not in wanted
        if moved:
            shift.status = ShiftStatus.CANCELLED.value
        for signup in _live(session, shift.id):
            if moved or timing:
                _out(session, signup, SignupState.RELEASED, now)
            told.add(signup.member_id)
    if timing:
        _add_shifts(session, task, now)
    what = (
        "its time changed: your place is free again, take it anew if it still suits you"
        if timing
        else "it was updated"
    )
    for member_id in sorted(told):
        _alert(session, member_id, "task_changed", f"{task.title}: {what}", task, now=now)
    session.flush()
    changed(session, task.id, "changed", None, now)
    return task


def cancel(session: Session, task_id: int, reason: str, *, now: datetime) -> int:
    """Cancel a task: its coming shifts are off, everyone signed up is told and their hours released.
    Returns how many people were told."""
    reason = text(reason, "reason", MAX_REASON)
    task = get_task(session, task_id, lock=True)
    if task.status != BoardTaskStatus.OPEN:
        raise Conflict(f"the task is already {task.status}")
    task.status, task.cancelled_at, task.cancel_reason, task.updated_at = (
        BoardTaskStatus.CANCELLED.value,
        now,
        reason,
        now,
    )
    told: set[int] = set()
    for shift in _future_shifts(session, task.id, now):
        shift.status = ShiftStatus.CANCELLED.value
        for signup in _live(session, shift.id):
            _out(session, signup, SignupState.RELEASED, now)
            told.add(signup.member_id)
    because = f" ({reason})" if reason else ""
    for member_id in sorted(told):
        _alert(session, member_id, "task_cancelled", f"{task.title} is cancelled{because}", task, now=now)
    session.flush()
    changed(session, task.id, "cancelled", None, now)
    return len(told)


def _future_shifts(session: Session, task_id: int, now: datetime) -> list[TaskShift]:
    return list(
        session.scalars(
            select(TaskShift)
            .where(
                TaskShift.task_id == task_id, TaskShift.status == ShiftStatus.OPEN, TaskShift.ends_at > now
            )
            .order_by(TaskShift.starts_at)
        )
    )


def _live(session: Session, shift_id: int, slot_id: int | None = None) -> list[SlotSignup]:
    query = select(SlotSignup).where(SlotSignup.shift_id == shift_id, SlotSignup.state.in_(HOLDING))
    if slot_id is not None:
        query = query.where(SlotSignup.slot_id == slot_id)
    return list(session.scalars(query.order_by(SlotSignup.id)))


# --- people in places ------------------------------------------------------------------------------------


def _place(session: Session, shift_id: int, slot_id: int) -> tuple[TaskShift, TaskSlot, BoardTask]:
    shift = session.get(TaskShift, shift_id)
    slot = session.get(TaskSlot, slot_id)
    if shift is None or slot is None or slot.task_id != shift.task_id:
        raise NotFound(f"no slot {slot_id} in shift {shift_id}")
    return shift, slot, get_task(session, shift.task_id)


def _skills(session: Session, member_id: int) -> set[str]:
    return set(session.scalars(select(MemberSkill.skill).where(MemberSkill.member_id == member_id)))


def why_not(
    session: Session,
    member: Member,
    shift: TaskShift,
    slot: TaskSlot,
    task: BoardTask,
    *,
    now: datetime,
    ignore_signup: int | None = None,
) -> str | None:
    """Why `member` cannot take this place now, in words they can act on; None when it fits their offer."""
    if task.status != BoardTaskStatus.OPEN or shift.status != ShiftStatus.OPEN:
        return f"the task is {task.status if task.status != 'open' else 'off on that day'}"
    if shift.starts_at <= now:
        return "it has already started"
    if not member.active:
        return "your membership is paused"
    if slot.skill is not None and slot.skill not in _skills(session, member.id):
        return f"this place needs the skill {slot.skill}; add it to your offer if you have it"
    day = shift.starts_at.date()
    for period in member.away or ():
        try:
            if date.fromisoformat(str(period["from"])) <= day <= date.fromisoformat(str(period["to"])):
                return f"you said you are away from {period['from']} to {period['to']}"
        except (KeyError, TypeError, ValueError):
            continue
    amount = task.hours_per_slot
    week = hours.week_start(shift.starts_at)
    held = hours.weekly_load(session, week, member_id=member.id).get(member.id, 0.0)
    held -= _own_hours(session, ignore_signup)
    if held + amount > member.hours_per_week + 1e-9:
        return (
            f"it would take you to {held + amount:g} h in the week of {week.date()}, past the"
            f" {member.hours_per_week:g} h a week you offered (you may raise it on My offer)"
        )
    bucket = offer_sector(task.sector)
    offered = sector_hours(member.sector_hours, member.hours_per_year).get(bucket, 0.0)
    year = hours.year_start(shift.starts_at)
    given = hours.load_by_sector(session, year, year.replace(year=year.year + 1), member.id).get(
        member.id, {}
    )
    used = sum(h for s, h in given.items() if offer_sector(s) == bucket) - _own_hours(session, ignore_signup)
    if used + amount > offered + 1e-9:
        return (
            f"it would take you past the {offered:g} h you offered to {bucket} this year"
            f" ({used:g} h already counted; you may change it on My offer)"
        )
    for start, end in hours.busy_intervals(session, now, member.id).get(member.id, ()):
        if (
            _aware(start) < shift.ends_at
            and shift.starts_at < _aware(end)
            and not _is_own(session, ignore_signup, start)
        ):
            return f"you already hold other work from {readable(start)} to {readable(end)}"
    return None


def _own_hours(session: Session, signup_id: int | None) -> float:
    """The hours a person's own suggestion already counts (accepting it must not count them twice)."""
    if signup_id is None:
        return 0.0
    signup = session.get(SlotSignup, signup_id)
    if signup is None or signup.state != SignupState.SUGGESTED:
        return 0.0
    shift = session.get(TaskShift, signup.shift_id)
    task = session.get(BoardTask, shift.task_id) if shift is not None else None
    return task.hours_per_slot if task is not None else 0.0


def _is_own(session: Session, signup_id: int | None, start: datetime) -> bool:
    if signup_id is None:
        return False
    signup = session.get(SlotSignup, signup_id)
    shift = session.get(TaskShift, signup.shift_id) if signup is not None else None
    return shift is not None and _aware(shift.starts_at) == _aware(start)


def readable(at: datetime) -> str:
    """A time as people read it in an alert: "Mon 07 Dec 09:00 UTC"."""
    return f"{_aware(at):%a %d %b %H:%M} UTC"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def take(session: Session, member_id: int, shift_id: int, slot_id: int, *, now: datetime) -> SlotSignup:
    """A person opts in to a place. A pending suggestion of the same place to someone else gives way (the one
    who asked for it wins; the other is told). Conflict says why it does not fit."""
    hours.lock_members(session, [member_id])
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound(f"no member {member_id}")
    shift, slot, task = _place(session, shift_id, slot_id)
    holders = _live(session, shift.id, slot.id)
    mine = next((s for s in holders if s.member_id == member_id), None)
    if mine is not None and mine.state == SignupState.TAKEN:
        raise Conflict("you already have this place")
    if mine is not None:  # their own suggestion: taking it is accepting it
        return accept(session, mine.id, member_id, now=now)
    if any(s.state == SignupState.TAKEN for s in holders) or _done(session, shift.id, slot.id):
        raise Conflict("someone already took this place; look for another slot")
    reason = why_not(session, member, shift, slot, task, now=now)
    if reason is not None:
        raise Conflict(f"you cannot take it: {reason}")
    for other in holders:  # a suggestion to someone else who has not answered
        _out(session, other, SignupState.RELEASED, now)
        _alert(
            session,
            other.member_id,
            "task_changed",
            f"{task.title}: someone else took the place you were asked for; no need to answer",
            task,
            shift=shift,
            slot=slot,
            now=now,
        )
    session.flush()
    signup = SlotSignup(
        shift_id=shift.id,
        slot_id=slot.id,
        member_id=member_id,
        state=SignupState.TAKEN.value,
        explanation="you took it",
        created_at=now,
        updated_at=now,
        answered_at=now,
    )
    session.add(signup)
    session.flush()
    _offer_hours(session, signup, task, shift)
    hours.reserve(session, WorkKind.TASK, signup.id)
    changed(session, task.id, "taken", member_id, now)
    return signup


def take_series(
    session: Session, member_id: int, slot_id: int, *, now: datetime
) -> tuple[list[SlotSignup], list[tuple[TaskShift, str]]]:
    """Take the same place in every coming occurrence that fits; the ones skipped come back with why."""
    slot = session.get(TaskSlot, slot_id)
    if slot is None:
        raise NotFound(f"no slot {slot_id}")
    taken: list[SlotSignup] = []
    skipped: list[tuple[TaskShift, str]] = []
    for shift in _future_shifts(session, slot.task_id, now):
        if shift.starts_at <= now:
            continue
        try:
            taken.append(take(session, member_id, shift.id, slot.id, now=now))
        except Conflict as exc:
            skipped.append((shift, str(exc).removeprefix("you cannot take it: ")))
    if not taken and skipped:
        raise Conflict(f"none of the dates fit: {skipped[0][1]}")
    if not taken:
        raise Conflict("this task has no coming dates to take")
    return taken, skipped


def _done(session: Session, shift_id: int, slot_id: int) -> bool:
    return (
        session.scalar(
            select(SlotSignup.id).where(
                SlotSignup.shift_id == shift_id,
                SlotSignup.slot_id == slot_id,
                SlotSignup.state == SignupState.DONE,
            )
        )
        is not None
    )


def suggest(
    session: Session, shift_id: int, slot_id: int, member_id: int, explanation: str, *, now: datetime
) -> SlotSignup:
    """The matcher asks `member_id` for a place: the hours count as offered until they answer. The caller
    locked the member and checked the load; this checks the place is still free and they did not decline."""
    shift, slot, task = _place(session, shift_id, slot_id)
    if _live(session, shift.id, slot.id) or _done(session, shift.id, slot.id):
        raise Conflict("the place is no longer free")
    if member_id in declined_by_task(session, now, task.id).get(task.id, set()):
        raise Conflict("they declined this task")
    signup = SlotSignup(
        shift_id=shift.id,
        slot_id=slot.id,
        member_id=member_id,
        state=SignupState.SUGGESTED.value,
        explanation=explanation[:MAX_REASON],
        created_at=now,
        updated_at=now,
    )
    session.add(signup)
    session.flush()
    _offer_hours(session, signup, task, shift)
    when = readable(shift.starts_at)
    _alert(
        session,
        member_id,
        "task_suggested",
        f"Could you help with {task.title} on {when}? {explanation}",
        task,
        shift=shift,
        slot=slot,
        now=now,
    )
    return signup


def _offer_hours(session: Session, signup: SlotSignup, task: BoardTask, shift: TaskShift) -> None:
    starts = shift.starts_at
    ends = (
        min(shift.ends_at, starts + timedelta(hours=task.hours_per_slot))
        if task.hours_per_slot
        else shift.ends_at
    )
    sector = task.sector
    hours.offer(
        session,
        signup.member_id,
        WorkKind.TASK,
        signup.id,
        sector,
        task.hours_per_slot,
        starts,
        max(ends, starts),
    )


def _signup(session: Session, signup_id: int, member_id: int) -> SlotSignup:
    signup = session.scalar(select(SlotSignup).where(SlotSignup.id == signup_id).with_for_update())
    if signup is None or signup.member_id != member_id:
        raise NotFound("no such place among yours")
    return signup


def accept(session: Session, signup_id: int, member_id: int, *, now: datetime) -> SlotSignup:
    """Yes to a suggestion: the place is theirs and the hours reserved (still within what they offered)."""
    signup = _signup(session, signup_id, member_id)
    if signup.state != SignupState.SUGGESTED:
        raise Conflict(f"this place is {signup.state}: there is nothing to accept")
    shift, slot, task = _place(session, signup.shift_id, signup.slot_id)
    member = session.get(Member, member_id)
    assert member is not None  # the signup's foreign key
    reason = why_not(session, member, shift, slot, task, now=now, ignore_signup=signup.id)
    if reason is not None:
        raise Conflict(f"you cannot take it now: {reason}")
    signup.state, signup.answered_at, signup.updated_at = SignupState.TAKEN.value, now, now
    hours.reserve(session, WorkKind.TASK, signup.id)
    changed(session, task.id, "accepted", member_id, now)
    return signup


def decline(
    session: Session, signup_id: int, member_id: int, *, now: datetime, reason: str = ""
) -> SlotSignup:
    """No to a suggestion (no reason needed): the place is free, and they are not asked for this task again
    for a week unless they ask for it after all."""
    reason = text(reason, "reason", MAX_REASON)
    signup = _signup(session, signup_id, member_id)
    if signup.state != SignupState.SUGGESTED:
        raise Conflict(
            f"this place is {signup.state}: there is nothing to decline (release a place you took)"
        )
    _out(session, signup, SignupState.DECLINED, now)
    shift = session.get(TaskShift, signup.shift_id)
    assert shift is not None
    declines.record_board_task(session, shift.task_id, member_id, reason, now)
    changed(session, shift.task_id, "declined", member_id, now)
    return signup


def release(session: Session, signup_id: int, member_id: int, *, now: datetime) -> SlotSignup:
    """Give back a place one took: it is open again for others and the hours no longer count."""
    signup = _signup(session, signup_id, member_id)
    if signup.state != SignupState.TAKEN:
        raise Conflict(f"this place is {signup.state}: only a place you took can be given back")
    shift = session.get(TaskShift, signup.shift_id)
    if shift is not None and shift.ends_at <= now:
        raise Conflict("the shift is over")
    _out(session, signup, SignupState.RELEASED, now)
    if shift is not None:
        changed(session, shift.task_id, "released", member_id, now)
    return signup


def _out(session: Session, signup: SlotSignup, state: SignupState, now: datetime) -> None:
    if signup.state in (SignupState.SUGGESTED, SignupState.TAKEN):
        hours.release(session, WorkKind.TASK, signup.id)
    signup.state, signup.updated_at = state.value, now
    if state in (SignupState.DECLINED, SignupState.RELEASED) and signup.answered_at is None:
        signup.answered_at = now
    session.flush()


def declined_by_task(session: Session, now: datetime, task_id: int | None = None) -> dict[int, set[int]]:
    """Board task id -> members whose decline of it still holds (only `task_id`'s, if given)."""
    query = select(Decline.board_task_id, Decline.member_id).where(
        Decline.board_task_id.is_not(None), Decline.until > now, Decline.withdrawn_at.is_(None)
    )
    if task_id is not None:
        query = query.where(Decline.board_task_id == task_id)
    result: dict[int, set[int]] = {}
    for task_id, member_id in session.execute(query):
        if task_id is not None:
            result.setdefault(task_id, set()).add(member_id)
    return result


# --- time passing ----------------------------------------------------------------------------------------


def lapse_unanswered(session: Session, now: datetime) -> int:
    """Suggestions unanswered for SUGGESTION_TTL_H, or with the shift less than URGENT_WINDOW_H away, lapse:
    the place is free for someone else (not a decline: they may be asked again)."""
    stale = session.scalars(
        select(SlotSignup)
        .join(TaskShift, TaskShift.id == SlotSignup.shift_id)
        .where(SlotSignup.state == SignupState.SUGGESTED)
        .where(
            (SlotSignup.created_at <= now - timedelta(hours=SUGGESTION_TTL_H))
            | (TaskShift.starts_at <= now + timedelta(hours=URGENT_WINDOW_H))
        )
    ).all()
    for signup in stale:
        _out(session, signup, SignupState.LAPSED, now)
    return len(stale)


def finish_past(session: Session, now: datetime) -> int:
    """Shifts that ended: the people in them gave their hours (done), the shift is done; a task whose last
    occurrence ended is done. Returns how many signups were counted."""
    counted = 0
    for shift in session.scalars(
        select(TaskShift).where(TaskShift.status == ShiftStatus.OPEN, TaskShift.ends_at <= now)
    ).all():
        for signup in _live(session, shift.id):
            if signup.state == SignupState.TAKEN:
                # never started: done with the planned hours (the place's hours, not the whole window)
                hours.finish(session, WorkKind.TASK, signup.id, shift.ends_at)
                signup.state, signup.updated_at = SignupState.DONE.value, now
                counted += 1
            else:
                _out(session, signup, SignupState.LAPSED, now)
        shift.status = ShiftStatus.DONE.value
    for task in session.scalars(
        select(BoardTask).where(BoardTask.status == BoardTaskStatus.OPEN, BoardTask.ends_at <= now)
    ).all():
        task.status, task.updated_at = BoardTaskStatus.DONE.value, now
    session.flush()
    return counted


def urgent_unfilled(session: Session, now: datetime) -> list[tuple[TaskShift, TaskSlot, BoardTask]]:
    """Places starting within URGENT_WINDOW_H with nobody in them, whose shift was not alerted yet."""
    soon = now + timedelta(hours=URGENT_WINDOW_H)
    shifts = session.scalars(
        select(TaskShift)
        .join(BoardTask, BoardTask.id == TaskShift.task_id)
        .where(BoardTask.status == BoardTaskStatus.OPEN, TaskShift.status == ShiftStatus.OPEN)
        .where(TaskShift.starts_at > now, TaskShift.starts_at <= soon, TaskShift.urgent_alerted_at.is_(None))
        .order_by(TaskShift.starts_at, TaskShift.id)
    ).all()
    result = []
    for shift in shifts:
        task = session.get(BoardTask, shift.task_id)
        assert task is not None
        held = {s.slot_id for s in _live(session, shift.id)}
        for slot in session.scalars(
            select(TaskSlot).where(TaskSlot.task_id == task.id).order_by(TaskSlot.position)
        ):
            if slot.id not in held:
                result.append((shift, slot, task))
    return result


def alert_urgent(
    session: Session,
    shift: TaskShift,
    slot: TaskSlot,
    task: BoardTask,
    member_ids: Iterable[int],
    *,
    now: datetime,
) -> int:
    """Tell these people (the caller chose them: suited, near, free) that a place starts soon with nobody in
    it; the shift is marked so they are told once. Returns how many were told."""
    need = f" (needs {slot.skill})" if slot.skill else " (no experience needed)" if slot.newcomer else ""
    when = readable(shift.starts_at)
    told = 0
    for member_id in sorted(set(member_ids)):
        _alert(
            session,
            member_id,
            "slot_urgent",
            f"Starting soon, nobody yet: {task.title} at {when}{need}",
            task,
            shift=shift,
            slot=slot,
            now=now,
        )
        told += 1
    shift.urgent_alerted_at = now
    return told


def changed(session: Session, task_id: int, status: str, member_id: int | None, now: datetime) -> None:
    """Tell the planner and the open pages (internal event board_changed), once per task, change and person
    in a transaction: a cancellation that tells thirty people is one event per person, not per row."""
    transaction = session.get_transaction()
    held = session.info.get("rhizome.board_changed")
    if held is None or held[0] is not transaction:  # a new transaction starts a new record
        held = session.info["rhizome.board_changed"] = (transaction, set())
    seen: set[tuple[int, str, int | None]] = held[1]
    if (task_id, status, member_id) in seen:
        return
    seen.add((task_id, status, member_id))
    enqueue_event(session, BoardChanged(task_id=task_id, status=status, member_id=member_id, at=now))


def _place_name(session: Session, task: BoardTask) -> str:
    """Where the board task happens, in words: its site's name, else the place its author wrote."""
    site = session.get(Site, task.site_id) if task.site_id is not None else None
    return site.name if site is not None else task.place or task.title


def _alert(
    session: Session,
    member_id: int,
    kind: str,
    message: str,
    task: BoardTask,
    *,
    shift: TaskShift | None = None,
    slot: TaskSlot | None = None,
    now: datetime,
) -> None:
    enqueue(
        session,
        member_alerts_topic(member_id),
        {
            "type": kind,
            "text": message[:MAX_REASON],
            "task_id": task.id,
            "shift_id": shift.id if shift is not None else None,
            "slot_id": slot.id if slot is not None else None,
            "at": format_ts(now),
            **place_fields(_place_name(session, task), task.lat, task.lon, board_task_link(task.id)),
        },
    )
    changed(session, task.id, "alerted", member_id, now)


# --- repairs on the board, and the private calendar ---------------------------------------------------------


def take_repair(session: Session, member_id: int, task_id: int, *, now: datetime) -> RepairTask:
    """A crew member takes an open repair from the board: assigned to them and accepted in one step, through
    the repair lifecycle (gateway.store.tasks), if they have the skills and the week's hours."""
    hours.lock_members(session, [member_id])
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound(f"no member {member_id}")
    if not member.is_crew or not member.active:
        raise Conflict("repairs go to crew members: ask a coordinator to add you to a crew")
    task = session.scalar(select(RepairTask).where(RepairTask.id == task_id).with_for_update())
    if task is None:
        raise NotFound(f"no repair task {task_id}")
    if task.status not in (TaskStatus.OPEN, TaskStatus.ESCALATED):
        raise Conflict("someone already has this repair")
    missing = sorted(set(map(str, task.required_skills or ())) - _skills(session, member_id))
    if missing:
        raise Conflict(f"this repair needs {', '.join(missing)}")
    week = hours.week_start(now)
    held = hours.weekly_load(session, week, member_id=member_id).get(member_id, 0.0)
    if held + task.estimated_hours > member.hours_per_week + 1e-9:
        raise Conflict(f"it would take you past the {member.hours_per_week:g} h a week you offered")
    repairs.apply(
        session,
        task,
        repairs.TaskAction.ASSIGN,
        member_id=member_id,
        explanation="you took it from the board",
        at=now,
    )
    repairs.apply(session, task, repairs.TaskAction.ACCEPT, member_id=member_id, at=now)
    return task


def calendar_token(session: Session, member: Member) -> str:
    """The secret of the member's private calendar address, made on first use."""
    if not member.calendar_token:
        member.calendar_token = secrets.token_urlsafe(24)
        session.flush()
    return member.calendar_token


def reset_calendar_token(session: Session, member: Member) -> str:
    """A new secret: the old address stops working (the member shared it by mistake)."""
    member.calendar_token = secrets.token_urlsafe(24)
    session.flush()
    return member.calendar_token


def member_by_token(session: Session, token: str) -> Member | None:
    """Whose calendar this secret opens, if anyone's."""
    if not token or len(token) > 64:
        return None
    member = session.scalar(select(Member).where(Member.calendar_token == token))
    if member is None or not secrets.compare_digest(member.calendar_token or "", token):
        return None
    return member


def signups_of(
    session: Session, member_id: int, since: datetime, states: Sequence[SignupState] = LIVE
) -> list[tuple[SlotSignup, TaskShift, TaskSlot, BoardTask]]:
    """A person's places in shifts ending after `since`, in time order (their page and calendar)."""
    rows = session.execute(
        select(SlotSignup, TaskShift, TaskSlot, BoardTask)
        .join(TaskShift, TaskShift.id == SlotSignup.shift_id)
        .join(TaskSlot, TaskSlot.id == SlotSignup.slot_id)
        .join(BoardTask, BoardTask.id == TaskShift.task_id)
        .where(SlotSignup.member_id == member_id, SlotSignup.state.in_(states), TaskShift.ends_at > since)
        .order_by(TaskShift.starts_at, SlotSignup.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]
