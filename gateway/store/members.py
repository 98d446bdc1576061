"""A member's own offer, as they (or a coordinator) edit it: hours a week and a year, the split by sector,
preferred sectors, weekly windows, time away, skills, home and vehicle.

Every value is checked before anything is written, and a bad one raises InvalidInput naming the field and
what is wrong, so a form can show the message and the person's offer stays as it was. The planners read
these columns as hard limits (gateway.store.offers): what is stored here is what a person may be asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.errors import InvalidInput, NotFound
from gateway.contract.topics import is_slug
from gateway.store.models import Member, MemberSkill, Vehicle
from gateway.store.models.vocab import VEHICLE_KINDS, WORK_SECTORS
from gateway.store.offers import offer_sector, validate_sector_hours

FIELDS: Final = frozenset(
    {
        "hours_per_week",
        "hours_per_year",
        "sector_hours",
        "preferred_sectors",
        "availability",
        "away",
        "skills",
        "lat",
        "lon",
        "vehicle",
    }
)
MAX_WINDOWS: Final = 50
MAX_AWAY: Final = 50
MAX_SKILLS: Final = 30
MAX_CAPACITY_KG: Final = 100_000.0
DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def update_offer(session: Session, member_id: int, **fields: Any) -> Member:
    """Change the fields given of `member_id`'s offer (the others stay). `sector_hours`, `preferred_sectors`,
    `availability` and `away` may be None (the baseline split, no preference, unrestricted, never away);
    `vehicle` is {"kind", "capacity_kg"} or None (lends none). NotFound for an unknown member, InvalidInput
    for a bad value (nothing is changed then)."""
    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        raise InvalidInput(f"unknown offer field {unknown[0][:40]!r}")
    member = session.get(Member, member_id)
    if member is None:
        raise NotFound("no such member")
    checked = _checked(member, fields)
    for name, value in checked.items():
        if name == "skills":
            _set_skills(member, value)
        elif name == "vehicle":
            _set_vehicle(session, member, value)
        else:
            setattr(member, name, value)
    session.flush()
    return member


def _checked(member: Member, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Every given field validated and normalised; InvalidInput for the first one that is wrong."""
    out: dict[str, Any] = {}
    if "hours_per_week" in fields:
        out["hours_per_week"] = number(fields["hours_per_week"], "hours per week", 0, 168)
    if "hours_per_year" in fields:
        out["hours_per_year"] = number(fields["hours_per_year"], "hours per year", 0, 8760)
    year = out.get("hours_per_year", member.hours_per_year)
    if "sector_hours" in fields:
        out["sector_hours"] = sector_split(fields["sector_hours"], year)
    elif member.sector_hours and "hours_per_year" in out:  # the stored split must still fit the year
        sector_split(member.sector_hours, year)
    if "preferred_sectors" in fields:
        out["preferred_sectors"] = preferred(fields["preferred_sectors"])
    if "availability" in fields:
        out["availability"] = windows(fields["availability"])
    if "away" in fields:
        out["away"] = away_periods(fields["away"])
    if "skills" in fields:
        out["skills"] = skills(fields["skills"])
    if "lat" in fields:
        out["lat"] = number(fields["lat"], "home latitude", -90, 90)
    if "lon" in fields:
        out["lon"] = number(fields["lon"], "home longitude", -180, 180)
    if "vehicle" in fields:
        out["vehicle"] = vehicle(fields["vehicle"])
    return out


def number(value: Any, what: str, low: float, high: float) -> float:
    """A finite number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a number")
    if not low <= value <= high:
        raise InvalidInput(f"{what} must be from {low:g} to {high:g}, not {value:g}")
    return float(value)


def sector_split(value: Any, year_hours: float) -> dict[str, float] | None:
    """The yearly hours by sector (None: the baseline scaled to the year), in the offer's sectors: a work
    sector people offer no hours to (water, energy) counts in "other", as the planners count it."""
    if value is None:
        return None
    merged: dict[str, float] = {}
    for sector, hours in validate_sector_hours(value, year_hours).items():
        key = offer_sector(sector)
        merged[key] = merged.get(key, 0.0) + hours
    return merged or None  # no sector given: the baseline, as for None


def preferred(value: Any) -> list[str] | None:
    """Preferred sectors: None or an empty list (no preference), else distinct work sectors."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput("preferred sectors must be a list of sectors")
    found: list[str] = []
    for sector in value:
        if sector not in WORK_SECTORS:
            raise InvalidInput(f"unknown preferred sector {str(sector)[:40]!r}")
        if sector not in found:
            found.append(sector)
    return found or None


def clock(text: Any) -> float | None:
    """Hours of an "HH:MM" time of day (24:00 allowed as the end of a day); None if it is not one."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":" or not text.replace(":", "").isdigit():
        return None
    hours, minutes = int(text[:2]), int(text[3:])
    value = hours + minutes / 60
    return value if minutes < 60 and value <= 24 else None


def windows(value: Any) -> list[dict[str, Any]] | None:
    """Weekly windows [{"day": 0-6 (Monday 0), "start": "HH:MM", "end": "HH:MM"}] on the store's clock
    (UTC), each ending after it starts, in day and start order; None or [] means unrestricted."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput("availability must be a list of weekly windows")
    if len(value) > MAX_WINDOWS:
        raise InvalidInput(f"at most {MAX_WINDOWS} weekly windows")
    found = []
    for window in value:
        if not isinstance(window, Mapping):
            raise InvalidInput("a weekly window has a day, a start and an end")
        day = window.get("day")
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise InvalidInput("a weekly window's day must be Monday to Sunday (0 to 6)")
        start, end = clock(window.get("start")), clock(window.get("end"))
        if start is None or end is None:
            raise InvalidInput(f"the window on {DAYS[day]}: start and end are times HH:MM, 00:00 to 24:00")
        if end <= start:
            raise InvalidInput(
                f"the window on {DAYS[day]} ends ({window['end']}) before it starts ({window['start']})"
            )
        found.append({"day": day, "start": window["start"], "end": window["end"]})
    found.sort(key=lambda w: (w["day"], w["start"], w["end"]))
    return found or None


def away_periods(value: Any) -> list[dict[str, str]] | None:
    """Time away [{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}], both days included, "to" not before "from",
    in date order; None or [] means never away."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput("time away must be a list of periods")
    if len(value) > MAX_AWAY:
        raise InvalidInput(f"at most {MAX_AWAY} periods away")
    found = []
    for period in value:
        if not isinstance(period, Mapping):
            raise InvalidInput("a period away has a first and a last day")
        first, last = _day(period.get("from")), _day(period.get("to"))
        if first is None or last is None:
            raise InvalidInput("a period away needs both days as dates YYYY-MM-DD")
        if last < first:
            raise InvalidInput(f"away to {last.isoformat()} is before away from {first.isoformat()}")
        found.append({"from": first.isoformat(), "to": last.isoformat()})
    found.sort(key=lambda p: (p["from"], p["to"]))
    return found or None


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        return None


def skills(value: Any) -> list[str]:
    """Skills as distinct slugs (pump-mechanic, electrician, ...), sorted."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput("skills must be a list")
    found = sorted({str(s).strip() for s in value if str(s).strip()})
    bad = [s for s in found if not is_slug(s)]
    if bad:
        raise InvalidInput(f"skills are words like pump-mechanic (a-z, 0-9, dashes), not {bad[0][:40]!r}")
    if len(found) > MAX_SKILLS:
        raise InvalidInput(f"at most {MAX_SKILLS} skills")
    return found


def vehicle(value: Any) -> dict[str, Any] | None:
    """The vehicle a member lends: {"kind": one of VEHICLE_KINDS, "capacity_kg": > 0}, or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput("a vehicle has a kind and a capacity")
    kind = value.get("kind")
    if kind not in VEHICLE_KINDS:
        raise InvalidInput(f"vehicle kind must be one of {', '.join(VEHICLE_KINDS)}")
    capacity = number(value.get("capacity_kg"), "vehicle capacity (kg)", 0, MAX_CAPACITY_KG)
    if capacity <= 0:
        raise InvalidInput("vehicle capacity (kg) must be more than 0")
    return {"kind": kind, "capacity_kg": capacity}


def _set_skills(member: Member, wanted: Sequence[str]) -> None:
    """Drop the skills no longer listed, add the new ones (rows keyed by skill are kept, not re-made)."""
    keep = set(wanted)
    member.skills = [s for s in member.skills if s.skill in keep]
    have = {s.skill for s in member.skills}
    member.skills.extend(MemberSkill(skill=s) for s in wanted if s not in have)


def lent_vehicle(session: Session, member_id: int) -> Vehicle | None:
    """The member's active vehicle (the oldest, if they lend several)."""
    return session.scalar(
        select(Vehicle)
        .where(Vehicle.member_id == member_id, Vehicle.active.is_(True))
        .order_by(Vehicle.id)
        .limit(1)
    )


def _set_vehicle(session: Session, member: Member, wanted: Mapping[str, Any] | None) -> None:
    """Update the vehicle the member lends, lend a new one, or (None) lend none any more: their vehicles are
    kept for the routes that name them, but inactive, so the router no longer plans with them."""
    current = lent_vehicle(session, member.id)
    if wanted is None:
        for row in session.scalars(select(Vehicle).where(Vehicle.member_id == member.id, Vehicle.active)):
            row.active = False
        return
    if current is None:
        current = Vehicle(
            name=f"{member.name}'s {wanted['kind']}"[:200],
            kind=wanted["kind"],
            capacity_kg=wanted["capacity_kg"],
            member_id=member.id,
            community_id=member.community_id,
        )
        session.add(current)
    current.kind, current.capacity_kg = wanted["kind"], wanted["capacity_kg"]
