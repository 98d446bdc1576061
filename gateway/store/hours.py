"""The one ledger of people's hours: the only writer of HoursEntry rows, and the reads planners and pages use.

Every piece of work a person is asked for writes one entry: `offered` when a planner proposes it (so the next
run counts it against their week), `reserved` when they accept, `done` with the actual hours when it is over
(a repair from acceptance to "fixed", a route from its first pickup to its last stop), `released` when they
decline it or the planner withdraws it. A person's load in a period is the sum of their offered, reserved and
done entries that start in it (done ones count their actual hours), whatever their roles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from gateway.contract import clock
from gateway.contract.errors import InvalidInput
from gateway.store.models import HoursEntry, Member
from gateway.store.models.vocab import WORK_SECTORS, HoursState, WorkKind

COUNTED: Final = (HoursState.OFFERED, HoursState.RESERVED, HoursState.DONE)
OPEN: Final = (HoursState.OFFERED, HoursState.RESERVED)  # work still ahead: it holds the person's time


def lock_members(session: Session, member_ids: Iterable[int]) -> None:
    """Row-lock these members until the transaction ends: the routing and the repair savers both offer
    hours, each after checking the person's load; taken in id order by both, the locks keep two saves in
    flight from both passing the check (PostgreSQL; SQLite serialises writers anyway)."""
    ids = sorted(set(member_ids))
    if ids:
        session.execute(select(Member.id).where(Member.id.in_(ids)).order_by(Member.id).with_for_update())


def week_start(at: datetime) -> datetime:
    """Monday 00:00 UTC of the week `at` falls in: pledges are per week."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def year_start(at: datetime) -> datetime:
    """1 January 00:00 UTC of `at`'s year: offers by sector are per year."""
    return at.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


def _entry(session: Session, work: WorkKind, work_id: int) -> HoursEntry | None:
    """The live entry of a piece of work (one person holds it at a time), newest first."""
    return session.scalar(
        select(HoursEntry)
        .where(HoursEntry.work == work, HoursEntry.work_id == work_id)
        .where(HoursEntry.state != HoursState.RELEASED)
        .order_by(HoursEntry.id.desc())
        .limit(1)
    )


def offer(
    session: Session,
    member_id: int,
    work: WorkKind,
    work_id: int,
    sector: str,
    hours: float,
    starts_at: datetime,
    ends_at: datetime,
) -> HoursEntry:
    """A planner asks `member_id` for this work in [starts_at, ends_at]: the hours count from now on.

    Asking the same person again for the same work (a task re-assigned to them after they asked for it
    again) reopens their entry instead of adding a second one."""
    if sector not in WORK_SECTORS:
        raise InvalidInput(f"unknown sector {sector!r}")
    if not hours >= 0 or ends_at < starts_at:
        raise InvalidInput(f"hours {hours!r} over [{starts_at}, {ends_at}] is not a planned interval")
    entry = session.scalar(
        select(HoursEntry).where(
            HoursEntry.work == work, HoursEntry.work_id == work_id, HoursEntry.member_id == member_id
        )
    )
    if entry is None:
        entry = HoursEntry(member_id=member_id, work=work.value, work_id=work_id)
        session.add(entry)
    entry.sector, entry.state, entry.hours = sector, HoursState.OFFERED.value, float(hours)
    entry.starts_at, entry.ends_at = starts_at, ends_at
    entry.actual_hours, entry.started_at = None, None
    session.flush()
    return entry


def reserve(session: Session, work: WorkKind, work_id: int) -> HoursEntry | None:
    """The person accepted: their offered hours are reserved."""
    entry = _entry(session, work, work_id)
    if entry is not None and entry.state == HoursState.OFFERED:
        entry.state = HoursState.RESERVED.value
    return entry


def start(session: Session, work: WorkKind, work_id: int, at: datetime | None = None) -> HoursEntry | None:
    """The work began (a route's first pickup; a repair's acceptance): actual hours run from here."""
    entry = _entry(session, work, work_id)
    if entry is not None and entry.state in OPEN and entry.started_at is None:
        entry.started_at = at or clock.now()
        entry.state = HoursState.RESERVED.value
    return entry


def finish(
    session: Session,
    work: WorkKind,
    work_id: int,
    at: datetime | None = None,
    from_planned_start: bool = False,
) -> HoursEntry | None:
    """The work is over: done, with the hours from its start to `at` (the planned hours if it never
    recorded a start). With `from_planned_start` (a repair, whose start is its acceptance), the hours
    count from the planned start when the person accepted earlier and finished after it: accepting on
    Monday a task planned for Tuesday is not a day of work."""
    entry = _entry(session, work, work_id)
    if entry is None or entry.state not in OPEN:
        return entry
    at = at or clock.now()
    began = entry.started_at
    if from_planned_start and began is not None:
        planned = _aware(entry.starts_at)
        if _aware(began) < planned < at:
            began = planned
    actual = entry.hours if began is None else max(0.0, (at - _aware(began)).total_seconds() / 3600)
    entry.state, entry.actual_hours = HoursState.DONE.value, round(actual, 4)
    return entry


def release(session: Session, work: WorkKind, work_id: int) -> HoursEntry | None:
    """Declined or withdrawn: the hours no longer count."""
    entry = _entry(session, work, work_id)
    if entry is not None and entry.state in OPEN:
        entry.state = HoursState.RELEASED.value
    return entry


def _aware(value: datetime) -> datetime:
    """SQLite hands naive datetimes back from some paths; the store writes UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _counted_hours() -> ColumnElement[float]:
    """Hours an entry counts: actual once done, planned before."""
    return case(
        (HoursEntry.state == HoursState.DONE, func.coalesce(HoursEntry.actual_hours, HoursEntry.hours)),
        else_=HoursEntry.hours,
    )


def load(
    session: Session, start_at: datetime, end_at: datetime, member_id: int | None = None
) -> dict[int, float]:
    """Member id -> hours counted for work starting in [start_at, end_at) (only `member_id`'s if given)."""
    query = (
        select(HoursEntry.member_id, func.sum(_counted_hours()))
        .where(HoursEntry.state.in_(COUNTED), HoursEntry.starts_at >= start_at, HoursEntry.starts_at < end_at)
        .group_by(HoursEntry.member_id)
    )
    if member_id is not None:
        query = query.where(HoursEntry.member_id == member_id)
    rows = session.execute(query)
    return {member_id: float(total or 0.0) for member_id, total in rows}


def weekly_load(
    session: Session, start_at: datetime, end_at: datetime | None = None, member_id: int | None = None
) -> dict[int, float]:
    """Member id -> hours counted in the week starting `start_at` (or up to `end_at`)."""
    return load(session, start_at, end_at or start_at + timedelta(days=7), member_id)


def weekly_loads(session: Session, weeks: Sequence[datetime]) -> dict[datetime, dict[int, float]]:
    """Week start -> member id -> hours counted that week, for each of `weeks`."""
    return {w: weekly_load(session, w) for w in weeks}


def yearly_sector_load(session: Session, start_at: datetime) -> dict[int, dict[str, float]]:
    """Member id -> sector -> hours counted for work starting in the year from `start_at`."""
    return load_by_sector(session, start_at, start_at.replace(year=start_at.year + 1))


def load_by_sector(
    session: Session, start_at: datetime, end_at: datetime, member_id: int | None = None
) -> dict[int, dict[str, float]]:
    """Member id -> sector -> hours counted for work starting in [start_at, end_at) (one member's, if
    given)."""
    query = (
        select(HoursEntry.member_id, HoursEntry.sector, func.sum(_counted_hours()))
        .where(HoursEntry.state.in_(COUNTED), HoursEntry.starts_at >= start_at, HoursEntry.starts_at < end_at)
        .group_by(HoursEntry.member_id, HoursEntry.sector)
    )
    if member_id is not None:
        query = query.where(HoursEntry.member_id == member_id)
    hours: dict[int, dict[str, float]] = defaultdict(dict)
    for who, sector, total in session.execute(query):
        hours[who][sector] = float(total or 0.0)
    return dict(hours)


def busy_intervals(
    session: Session, since: datetime, member_id: int | None = None
) -> dict[int, list[tuple[datetime, datetime]]]:
    """Member id -> the planned intervals of their work still ahead (offered or reserved) ending after
    `since`, in order: planners place new work outside them. Only `member_id`'s if given."""
    query = (
        select(HoursEntry.member_id, HoursEntry.starts_at, HoursEntry.ends_at)
        .where(HoursEntry.state.in_(OPEN), HoursEntry.ends_at > since)
        .order_by(HoursEntry.member_id, HoursEntry.starts_at)
    )
    if member_id is not None:
        query = query.where(HoursEntry.member_id == member_id)
    busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for who, starts_at, ends_at in session.execute(query):
        busy[who].append((starts_at, ends_at))
    return dict(busy)


def entries_of(session: Session, member_id: int, since: datetime) -> list[HoursEntry]:
    """A person's own entries starting from `since`, oldest first (their page shows them)."""
    return list(
        session.scalars(
            select(HoursEntry)
            .where(HoursEntry.member_id == member_id, HoursEntry.starts_at >= since)
            .order_by(HoursEntry.starts_at, HoursEntry.id)
        )
    )
