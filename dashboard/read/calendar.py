"""A member's private iCalendar feed (RFC 5545) of the places they took: one VEVENT per shift.

Calendar apps subscribe to the address and re-read it; an event whose place was given back or whose task was
cancelled stays in the feed as STATUS:CANCELLED for a while, so a subscribed calendar drops it rather than
keeping a stale appointment. Stdlib only: lines end in CRLF, are folded at 75 octets, and text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.text import without_control
from gateway.store.models import BoardTask, Community, Member, SlotSignup, TaskShift, TaskSlot
from gateway.store.models.vocab import SignupState

PRODID = "-//Rhizome//Task board//EN"
PAST_DAYS = 30  # recent places stay in the feed, so the calendar keeps what was done
GONE_DAYS = 14  # a place given back or cancelled this recently is sent as CANCELLED
SHOWN = (SignupState.TAKEN, SignupState.DONE)
GONE = (SignupState.RELEASED, SignupState.LAPSED)


def escape(value: str) -> str:
    """TEXT escaping of RFC 5545 3.3.11: backslash, semicolon, comma, newline; other control characters
    and Unicode line separators (which RFC 5545 forbids, and lenient readers split lines on) become spaces."""
    value = without_control(value.replace("\r\n", "\n"))
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 3.1), never inside a UTF-8 character."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line
    parts, start, limit = [], 0, 75
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte: step back
            end -= 1
        parts.append(data[start:end].decode("utf-8"))
        start, limit = end, 74  # continuation lines begin with one space
    return "\r\n ".join(parts)


def stamp(at: datetime) -> str:
    """A UTC DATE-TIME: 20261207T090000Z."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def member_calendar(
    session: Session, member: Member, now: datetime, *, host: str, task_url: Callable[[int], str]
) -> str:
    """The feed's text for `member`: places taken or done from PAST_DAYS ago on, and recent ones gone."""
    since = now - timedelta(days=PAST_DAYS)
    rows = session.execute(
        select(SlotSignup, TaskShift, TaskSlot, BoardTask, Community.name)
        .join(TaskShift, TaskShift.id == SlotSignup.shift_id)
        .join(TaskSlot, TaskSlot.id == SlotSignup.slot_id)
        .join(BoardTask, BoardTask.id == TaskShift.task_id)
        .join(Community, Community.id == BoardTask.community_id)
        .where(SlotSignup.member_id == member.id, TaskShift.ends_at > since)
        .where(SlotSignup.state.in_((*SHOWN, *GONE)))
        .order_by(TaskShift.starts_at, SlotSignup.id)
    ).all()
    gone_since = now - timedelta(days=GONE_DAYS)
    events = []
    for signup, shift, slot, task, community in rows:
        gone = signup.state in GONE
        if gone and _aware(signup.updated_at) < gone_since:
            continue
        events.append(_event(signup, shift, slot, task, community, now, host, task_url(task.id), gone))
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"X-WR-CALNAME:{escape('Rhizome: my places')}",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        *[line for event in events for line in event],
        "END:VCALENDAR",
    ]
    return "".join(fold(line) + "\r\n" for line in lines)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _event(
    signup: SlotSignup,
    shift: TaskShift,
    slot: TaskSlot,
    task: BoardTask,
    community: str,
    now: datetime,
    host: str,
    page_url: str,
    gone: bool,
) -> Iterable[str]:
    what = f" ({slot.skill})" if slot.skill else ""
    where = ", ".join(p for p in (task.place, community) if p)
    description = "\n".join(
        p for p in (task.description, f"{task.hours_per_slot:g} h, {task.sector}", page_url) if p
    )
    status = "CANCELLED" if gone or task.status == "cancelled" else "CONFIRMED"
    return [
        "BEGIN:VEVENT",
        f"UID:signup-{signup.id}@{host}",
        f"DTSTAMP:{stamp(now)}",
        f"LAST-MODIFIED:{stamp(signup.updated_at)}",
        f"DTSTART:{stamp(shift.starts_at)}",
        f"DTEND:{stamp(shift.ends_at)}",
        f"SUMMARY:{escape(task.title + what)}",
        f"LOCATION:{escape(where)}",
        f"GEO:{task.lat:.6f};{task.lon:.6f}",
        f"DESCRIPTION:{escape(description)}",
        f"CATEGORIES:{escape(task.sector)}",
        f"STATUS:{status}",
        f"SEQUENCE:{int(_aware(signup.updated_at).timestamp()) // 60 % 2_000_000_000}",
        "TRANSP:OPAQUE",
        "END:VEVENT",
    ]
