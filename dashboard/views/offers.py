"""What people offer and the hours they gave: "My offer" (/me/offer), "My hours" (/me/hours) with the declines
they may take back, and for coordinators every member's load against their offer (/coordinator/members)
and the same offer form for anyone (/coordinator/members/<id>/offer).

A form value that is not a number is a 400 here; gateway.store.members checks the rest (ranges, sectors,
the year's split, windows, away periods) and its InvalidInput re-shows the form with the message and a 400,
the offer unchanged. Loads are listed by name, never sorted by how much anyone did.
"""

from __future__ import annotations

import math
from typing import Any, Final

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from dashboard.read import board as board_read
from dashboard.read import hours as hours_read
from dashboard.read import workload
from dashboard.web.auth import current_account, role_required
from dashboard.web.store import get_session, get_store
from gateway.contract import clock
from gateway.contract.errors import InvalidInput
from gateway.store import declines, members
from gateway.store.models import Member
from gateway.store.models.vocab import VEHICLE_KINDS
from gateway.store.offers import BASELINE_SECTOR_HOURS, BASELINE_YEAR_HOURS, OFFER_SECTORS

bp = Blueprint("offers", __name__)
SECTOR_FIELD: Final = "sector_"  # sector_food, sector_health, ...: the yearly hours of each
BLANK_WINDOWS, BLANK_AWAY = 2, 1  # empty rows the form adds, to fill in without a script
MAX_ROWS: Final = 60  # a posted list longer than this is refused before anything is parsed
DAY_NAMES: Final = tuple(enumerate(members.DAYS))


def _own_member_id() -> int:
    """The member the signed-in account is (404 if it is linked to none)."""
    account = current_account()
    assert account is not None  # role_required ran first
    if account.member_id is None:
        abort(
            404,
            description="this account is not linked to a member (coordinators: see /coordinator/members)",
        )
    return account.member_id


def _member(member_id: int) -> Member:
    member = get_session().get(Member, member_id)
    if member is None:
        abort(404, description="no such member")
    return member


@bp.get("/me/hours")
@role_required("crew", "driver")
def my_hours() -> str:
    """My week, month and year by sector against my offer, this week's work, and my declines still holding."""
    member = _member(_own_member_id())
    session = get_session()
    return render_template(
        "hours.html",
        summary=hours_read.member_hours(session, member),
        declines=hours_read.member_declines(session, member.id),
        baseline=BASELINE_SECTOR_HOURS,
        baseline_year=BASELINE_YEAR_HOURS,
        fitting=board_read.fitting_tasks(session, member, clock.now())[:8],
    )


@bp.post("/me/declines/<id:decline_id>/ask-again")
@role_required("crew", "driver")
def ask_again(decline_id: int) -> Response:
    """I declined this but may do it after all: the planners may ask me again."""
    member_id = _own_member_id()
    with get_store().sessions.begin() as session:
        declines.ask_again(session, decline_id, member_id)
    flash("Noted: you may be asked for it again.", "ok")
    return redirect(url_for("offers.my_hours") + "#declines")


@bp.get("/me/offer")
@role_required("crew", "driver")
def my_offer() -> str:
    """The form with my offer as it stands."""
    return _offer_page(_own_member_id(), url_for("offers.save_my_offer"))


@bp.post("/me/offer")
@role_required("crew", "driver")
def save_my_offer() -> Response | tuple[str, int]:
    """Store my offer; a bad value re-shows the form with the message and a 400."""
    member_id = _own_member_id()
    return _save(member_id, url_for("offers.save_my_offer"), url_for("offers.my_hours"))


@bp.get("/coordinator/members")
@role_required("coordinator")
def member_list() -> str:
    """Every member by name (or community) with their offer, the hours they gave this year and those planned
    ahead, and who is near their limit; filtered by community, role and skill. Never sorted by hours."""
    session = get_session()
    communities = workload.community_choices(session)
    skills = workload.skill_choices(session)
    try:
        wanted = workload.parse_filter(request.args, communities, set(skills))
        found = workload.workloads(session, wanted)
    except workload.WorkloadFilterError as exc:
        abort(400, description=str(exc))
    return render_template(
        "members.html",
        loads=found.rows,
        total=found.total,
        pages=found.pages,
        wanted=wanted,
        communities=communities,
        skills=skills,
        roles=workload.ROLES,
        sectors=OFFER_SECTORS,
        near=round(100 * workload.NEAR_LIMIT),
    )


@bp.get("/coordinator/members/<id:member_id>/offer")
@role_required("coordinator")
def member_offer(member_id: int) -> str:
    """A member's offer, for a coordinator to edit (say, for someone without a phone)."""
    return _offer_page(member_id, url_for("offers.save_member_offer", member_id=member_id))


@bp.post("/coordinator/members/<id:member_id>/offer")
@role_required("coordinator")
def save_member_offer(member_id: int) -> Response | tuple[str, int]:
    """Store a member's offer for them."""
    action = url_for("offers.save_member_offer", member_id=member_id)
    return _save(member_id, action, url_for("offers.member_list"))


def _offer_page(member_id: int, action: str, error: str | None = None) -> str:
    offer = hours_read.offer_of(get_session(), member_id)
    if offer is None:
        abort(404, description="no such member")
    values = posted_values(request.form) if error else offer_values(offer)
    account = current_account()
    return render_template(
        "offer.html",
        offer=offer,
        values=values,
        action=action,
        error=error,
        sectors=OFFER_SECTORS,
        days=DAY_NAMES,
        vehicle_kinds=VEHICLE_KINDS,
        own=account is not None and account.member_id == member_id,
    )


def _save(member_id: int, action: str, done: str) -> Response | tuple[str, int]:
    _member(member_id)
    try:
        fields = parse_offer(request.form)
        with get_store().sessions.begin() as session:
            members.update_offer(session, member_id, **fields)
    except InvalidInput as exc:
        return _offer_page(member_id, action, str(exc)), 400
    flash("Offer saved. Planners ask for no more than this.", "ok")
    return redirect(done)


# --- the form: strings in, typed values out (gateway.store.members checks what they mean) ---------------


def _number(form: MultiDict[str, str], name: str, what: str, default: float | None = None) -> float:
    raw = form.get(name, "").strip().replace(",", ".")
    if not raw and default is not None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{what} must be a number, not {raw[:20]!r}") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{what} must be a number, not {raw[:20]!r}")
    return value


def _rows(form: MultiDict[str, str], *names: str) -> list[tuple[str, ...]]:
    """Parallel lists (one entry per form row), stripped, rows left wholly empty dropped."""
    columns = [form.getlist(n) for n in names]
    if any(len(c) > MAX_ROWS for c in columns):
        raise InvalidInput(f"at most {MAX_ROWS} rows")
    width = max((len(c) for c in columns), default=0)
    rows = [tuple((c[i] if i < len(c) else "").strip() for c in columns) for i in range(width)]
    return [r for r in rows if any(r)]


def parse_offer(form: MultiDict[str, str]) -> dict[str, Any]:
    """The fields of gateway.store.members.update_offer from the posted form; InvalidInput for a value
    that is not what its field takes (a word where a number goes, half a window)."""
    fields: dict[str, Any] = {
        "hours_per_week": _number(form, "hours_per_week", "hours per week"),
        "hours_per_year": _number(form, "hours_per_year", "hours per year"),
        "lat": _number(form, "lat", "home latitude"),
        "lon": _number(form, "lon", "home longitude"),
        "preferred_sectors": form.getlist("preferred"),
        "skills": form.get("skills", "").replace(";", ",").split(","),
    }
    if form.get("baseline_split"):
        fields["sector_hours"] = None
    else:
        fields["sector_hours"] = {
            key[len(SECTOR_FIELD) :]: _number(form, key, f"hours for {key[len(SECTOR_FIELD) :][:40]}", 0.0)
            for key in form
            if key.startswith(SECTOR_FIELD)
        }
    fields["availability"] = [
        _window(day, start, end) for day, start, end in _rows(form, "day", "start", "end")
    ]
    fields["away"] = [{"from": first, "to": last} for first, last in _rows(form, "away_from", "away_to")]
    kind = form.get("vehicle_kind", "").strip()
    fields["vehicle"] = (
        {"kind": kind, "capacity_kg": _number(form, "vehicle_capacity_kg", "vehicle capacity (kg)")}
        if kind
        else None
    )
    return fields


def _window(day: str, start: str, end: str) -> dict[str, Any]:
    if not (day and start and end):
        raise InvalidInput("a weekly window needs a day, a start and an end")
    if not (day.isascii() and day.isdigit() and len(day) == 1):
        raise InvalidInput("a weekly window's day must be Monday to Sunday")
    return {"day": int(day), "start": start, "end": end}


def offer_values(offer: hours_read.Offer) -> dict[str, Any]:
    """What the form shows for a stored offer (numbers as the person would type them)."""
    return {
        "hours_per_week": f"{offer.hours_per_week:g}",
        "hours_per_year": f"{offer.hours_per_year:g}",
        "baseline_split": offer.baseline_split,
        "sectors": {s: f"{offer.sector_hours.get(s, 0.0):g}" for s in OFFER_SECTORS},
        "preferred": set(offer.preferred_sectors),
        "windows": [
            (str(w.get("day", "")), str(w.get("start", "")), str(w.get("end", "")))
            for w in offer.availability
        ]
        + [("", "", "")] * BLANK_WINDOWS,
        "away": [(p.get("from", ""), p.get("to", "")) for p in offer.away] + [("", "")] * BLANK_AWAY,
        "skills": ", ".join(offer.skills),
        "lat": f"{offer.lat:g}",
        "lon": f"{offer.lon:g}",
        "vehicle_kind": offer.vehicle_kind or "",
        "vehicle_capacity_kg": f"{offer.vehicle_capacity_kg:g}" if offer.vehicle_capacity_kg else "",
    }


def posted_values(form: MultiDict[str, str]) -> dict[str, Any]:
    """What the form shows again after a refused save: what the person typed, so they fix one value."""
    try:
        windows = _rows(form, "day", "start", "end")
        away = _rows(form, "away_from", "away_to")
    except InvalidInput:
        windows, away = [], []
    return {
        "hours_per_week": form.get("hours_per_week", ""),
        "hours_per_year": form.get("hours_per_year", ""),
        "baseline_split": bool(form.get("baseline_split")),
        "sectors": {s: form.get(SECTOR_FIELD + s, "") for s in OFFER_SECTORS},
        "preferred": set(form.getlist("preferred")),
        "windows": windows + [("", "", "")] * BLANK_WINDOWS,
        "away": away + [("", "")] * BLANK_AWAY,
        "skills": form.get("skills", ""),
        "lat": form.get("lat", ""),
        "lon": form.get("lon", ""),
        "vehicle_kind": form.get("vehicle_kind", ""),
        "vehicle_capacity_kg": form.get("vehicle_capacity_kg", ""),
    }
