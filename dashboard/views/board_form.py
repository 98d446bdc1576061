"""The post-a-task form as a task draft: dates, times, weekdays and slot rows in, the same mapping the API
takes out, so gateway.store.board.parse_draft checks both the same way.

A slot row is (how many, skill or blank, no experience needed yes/no): "1 solar-installer, 1 electrician,
2 anyone" is three rows. Times are UTC, as everywhere on the board.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final

from werkzeug.datastructures import MultiDict

from gateway.contract.errors import InvalidInput
from gateway.store.board import FIRST_YEAR, LAST_YEAR

SLOT_ROWS: Final = 4  # empty rows the form shows
MAX_ROWS: Final = 20
MAX_PER_ROW: Final = 20
CLOCK: Final = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FIELDS: Final = ("title", "sector", "community", "place", "description", "urgency", "hours_per_slot")


def _day(value: str, name: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{name}: give a day as YYYY-MM-DD") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput(f"{name}: give a day in the years {FIRST_YEAR} to {LAST_YEAR}")
    return day


def _clock(value: str, name: str) -> str:
    value = value.strip()
    if not CLOCK.match(value):
        raise InvalidInput(f"{name}: give a time as HH:MM (24-hour, UTC)")
    return value


def _at(day: date, clock: str) -> str:
    if clock == "24:00":
        return f"{day + timedelta(days=1)}T00:00:00Z"
    return f"{day}T{clock}:00Z"


def slot_rows(form: MultiDict[str, str]) -> list[tuple[str, str, str]]:
    """The (count, skill, newcomer) rows as typed, for showing the form again."""
    counts, skills, newcomers = (form.getlist(n) for n in ("slot_count", "slot_skill", "slot_newcomer"))
    if max(len(counts), len(skills), len(newcomers)) > MAX_ROWS:
        raise InvalidInput(f"at most {MAX_ROWS} slot rows")
    width = max(len(counts), len(skills), len(newcomers))
    rows = [
        (
            counts[i] if i < len(counts) else "",
            skills[i] if i < len(skills) else "",
            newcomers[i] if i < len(newcomers) else "",
        )
        for i in range(width)
    ]
    return rows


def slots(form: MultiDict[str, str]) -> list[dict[str, Any]]:
    """One slot mapping per place the rows ask for."""
    found: list[dict[str, Any]] = []
    for i, (count, skill, newcomer) in enumerate(slot_rows(form), 1):
        count, skill = count.strip(), skill.strip().lower()
        if not count and not skill:
            continue
        if not re.fullmatch(r"[0-9]{1,2}", count) or not 1 <= int(count) <= MAX_PER_ROW:
            raise InvalidInput(f"slot row {i}: how many people, 1 to {MAX_PER_ROW}")
        place = {"skill": skill or None, "newcomer": newcomer == "yes"}
        found.extend(dict(place) for _ in range(int(count)))
    return found


def draft(form: MultiDict[str, str], *, allow_coordinator: bool) -> dict[str, Any]:
    """The task mapping of a posted form (parse_draft checks it); InvalidInput names the field at fault."""
    raw: dict[str, Any] = {name: form.get(name, "").strip() for name in FIELDS}
    if not raw["hours_per_slot"]:
        raw.pop("hours_per_slot")
    start, end = _clock(form.get("start", ""), "from"), _clock(form.get("end", ""), "to")
    first = _day(form.get("date", ""), "date")
    if form.get("mode", "once") == "weekly":
        days = form.getlist("days")
        if not days or any(d not in {str(n) for n in range(7)} for d in days):
            raise InvalidInput("weekly: tick at least one day of the week")
        if end == "24:00":
            raise InvalidInput("to: a weekly task ends by 23:59 (24:00 is for a one-off task)")
        last = _day(form.get("until", ""), "until")
        if last < first:
            raise InvalidInput("until: the last day comes on or after the first")
        raw["starts_at"], raw["ends_at"] = _at(first, "00:00"), _at(last, "24:00")
        raw["recurrence"] = {"days": sorted({int(d) for d in days}), "start": start, "end": end}
    else:
        raw["starts_at"], raw["ends_at"] = _at(first, start), _at(first, end)
    raw["slots"] = slots(form)
    kind = form.get("poster_kind", "member")
    if kind == "coordinator" and not allow_coordinator:
        raise InvalidInput("poster: only a coordinator posts as the coordinators")
    raw["poster_kind"] = kind
    raw["poster_name"] = form.get("poster_name", "").strip()
    if kind in ("guild", "assembly") and not raw["poster_name"]:
        raise InvalidInput(f"poster: name the {kind} that posts it")
    return raw


def edit_values(task: Mapping[str, Any]) -> dict[str, str]:
    """An edit form's fields from a task (starts_at and ends_at as aware datetimes)."""
    values = {name: str(task.get(name, "")) for name in ("title", "place", "description", "urgency")}
    values["hours_per_slot"] = f"{task['hours_per_slot']:g}"
    values["date"] = f"{task['starts_at']:%Y-%m-%d}"
    values["start"] = f"{task['starts_at']:%H:%M}"
    start, end = task["starts_at"], task["ends_at"]
    midnight = end.date() > start.date() and (end.hour, end.minute) == (0, 0)
    values["end"] = "24:00" if midnight else f"{end:%H:%M}"
    values["overnight"] = "yes" if end.date() > start.date() and not midnight else ""
    return values


def changes(form: MultiDict[str, str], task: Mapping[str, Any], *, one_off: bool) -> dict[str, Any]:
    """What an edit form changes: only the fields whose value differs from the task's (`edit_values`);
    the day and times only for a one-off task (a schedule is posted again instead)."""
    before = edit_values(task)
    raw: dict[str, Any] = {}
    for name in ("title", "place", "description", "urgency", "hours_per_slot"):
        if name in form and form[name].strip() != before[name]:
            raw[name] = form[name].strip()
    if before["overnight"]:
        return raw  # the form cannot say "to 02:00 the next day": such a task's time changes by the API
    if one_off and any(form.get(n, before[n]).strip() != before[n] for n in ("date", "start", "end")):
        day = _day(form.get("date", before["date"]), "date")
        start = _clock(form.get("start", before["start"]), "from")
        end = _clock(form.get("end", before["end"]), "to")
        raw["starts_at"], raw["ends_at"] = _at(day, start), _at(day, end)
    return raw
