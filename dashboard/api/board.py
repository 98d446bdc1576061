"""The task board as JSON (/api/board): the same reads and writes as the pages, with the same checks.

Reads follow the map (public when it is): tasks with their places counted, never named. Writes need a
signed-in session and its CSRF token in the X-CSRF-Token header (GET /api/board/mine returns it). Bad
input is a 400, a place that does not fit a 409, each with the store's message; never a 500.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for

from dashboard.read import board as board_read
from dashboard.web.accounts import Account
from dashboard.web.auth import current_account
from dashboard.web.csrf import csrf_token
from dashboard.web.store import get_session, get_store
from gateway.contract.clock import now as clock_now
from gateway.contract.errors import InvalidInput
from gateway.contract.payloads import format_ts
from gateway.store import board
from gateway.store.models import BoardTask, Member, TaskShift, TaskSlot
from gateway.store.models.vocab import BOARD_SECTORS

bp = Blueprint("api_board", __name__, url_prefix="/api/board")
FILTERS = ("sector", "skill", "community", "km", "from", "to")


def _account() -> Account:
    account = current_account()
    if account is None:
        abort(401, description="sign in first: writing to the board needs an account")
    return account


def _member() -> Member:
    account = _account()
    member = get_session().get(Member, account.member_id) if account.member_id is not None else None
    if member is None:
        abort(403, description="this account is not linked to a member, so it cannot take places")
    return member


def _body() -> Mapping[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="send a JSON object (Content-Type: application/json)")
    return body


def _may_edit(task: BoardTask, account: Account) -> bool:
    return account.role == "coordinator" or (
        bool(task.posted_by_account) and task.posted_by_account == account.username
    )


@bp.before_request
def _readers_only() -> None:
    if not current_app.config["PUBLIC_MAP"] and current_account() is None:
        abort(401, description="sign in first: this dashboard's map and API are not public")


def _filters(member: Member | None) -> board_read.Filters:
    args = request.args
    unknown = sorted(set(args) - set(FILTERS))
    if unknown:
        abort(400, description=f"unknown query parameter {unknown[0][:40]!r}; filters: {', '.join(FILTERS)}")
    sector = args.get("sector") or None
    if sector is not None and sector not in BOARD_SECTORS:
        abort(400, description=f"sector must be one of {', '.join(BOARD_SECTORS)}")
    skill = (args.get("skill") or "").strip().lower() or None
    if skill is not None and skill != "none" and not board.SKILL_RE.match(skill):
        abort(400, description="skill is a short name like electrician, or none")
    km = None
    if args.get("km"):
        try:
            km = float(args["km"])
        except ValueError:
            abort(400, description="km must be a number")
        if not math.isfinite(km) or not 0 < km <= 500:
            abort(400, description="km must be between 0 and 500")
        if member is None:
            abort(400, description="a distance needs a home: sign in with a member's account")
    since, until = _day(args.get("from")), _day(args.get("to"))
    if until is not None:
        until += timedelta(days=1)
        if since is not None and until <= since:
            abort(400, description="to must be on or after from")
        if (until - (since or clock_now())).days > board_read.MAX_DAYS:
            abort(400, description=f"at most {board_read.MAX_DAYS} days at a time: bring to closer")
    origin = (member.lat, member.lon) if member is not None else None
    return board_read.Filters(sector, skill, args.get("community") or None, km, origin, since, until)


def _day(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        abort(400, description="from and to are days as YYYY-MM-DD")
    if not board.FIRST_YEAR <= day.year <= board.LAST_YEAR:
        abort(400, description=f"from and to are days in the years {board.FIRST_YEAR} to {board.LAST_YEAR}")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _reader() -> Member | None:
    account = current_account()
    if account is None or account.member_id is None:
        return None
    return get_session().get(Member, account.member_id)


def task_record(view: board_read.TaskView) -> dict[str, Any]:
    """A task as JSON: places counted per shift; `mine` only ever holds the reader's own signups."""
    return {
        "id": view.id,
        "title": view.title,
        "description": view.description,
        "sector": view.sector,
        "community": view.community,
        "community_name": view.community_name,
        "place": view.place,
        "lat": view.lat,
        "lon": view.lon,
        "when": view.when,
        "starts_at": format_ts(view.starts_at),
        "ends_at": format_ts(view.ends_at),
        "recurrence": view.recurrence,
        "hours_per_slot": view.hours_per_slot,
        "urgency": view.urgency_name,
        "status": view.status,
        "poster": view.poster,
        "km": view.km,
        "url": url_for("board.task", task_id=view.id),
        "slots": [
            {"id": s.id, "skill": s.skill, "newcomer": s.newcomer, "note": s.note, "label": s.label}
            for s in view.slots
        ],
        "shifts": [
            {
                "id": sh.id,
                "starts_at": format_ts(sh.starts_at),
                "ends_at": format_ts(sh.ends_at),
                "filled": sh.filled_count(len(view.slots)),
                "asked": len(sh.asked),
                "places": len(view.slots),
                "free_slot_ids": [s.id for s in view.slots if s.id not in sh.filled],
                "mine": [
                    {"slot_id": k, "signup_id": v[0], "state": v[1]} for k, v in sorted(sh.mine.items())
                ],
            }
            for sh in view.shifts
        ],
    }


@bp.get("")
def tasks() -> Response:
    """Open tasks with a place in the dates asked for (default: the coming two weeks)."""
    member = _reader()
    views = board_read.list_tasks(
        get_session(), _filters(member), clock_now(), reader_id=member.id if member else None
    )
    return jsonify(tasks=[task_record(v) for v in views], count=len(views))


@bp.get("/<id:task_id>")
def task(task_id: int) -> Response:
    """One task with its shifts of the coming five weeks."""
    member = _reader()
    view = board_read.task_view(
        get_session(),
        task_id,
        clock_now(),
        reader_id=member.id if member else None,
        origin=(member.lat, member.lon) if member else None,
    )
    if view is None:
        abort(404, description=f"no task {task_id}")
    return jsonify(task_record(view))


@bp.post("")
def post() -> tuple[Response, int]:
    """Post a task (the body is what parse_draft takes: title, sector, community, starts_at, ends_at, slots,
    and optionally recurrence, hours_per_slot, urgency, place, description, poster_kind, poster_name)."""
    account = _account()
    draft = board.parse_draft(_body())
    if draft.poster_kind == "coordinator" and account.role != "coordinator":
        raise InvalidInput("poster_kind: only a coordinator posts as the coordinators")
    with get_store().sessions.begin() as session:
        created = board.post(
            session, draft, member_id=account.member_id, account=account.username, now=clock_now()
        )
        task_id = created.id
    return _task_answer(task_id), 201


@bp.patch("/<id:task_id>")
def change(task_id: int) -> Response:
    """Change a task (its poster or a coordinator): any of title, description, place, urgency,
    hours_per_slot, starts_at, ends_at. Those signed up are told."""
    _editable(task_id)
    body = _body()
    with get_store().sessions.begin() as session:
        board.change(session, task_id, body, now=clock_now())
    return _task_answer(task_id)


@bp.post("/<id:task_id>/cancel")
def cancel(task_id: int) -> Response:
    """Cancel a task; {"reason": "..."} is told to those signed up."""
    _editable(task_id)
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        abort(400, description="send a JSON object")
    with get_store().sessions.begin() as session:
        told = board.cancel(session, task_id, body.get("reason", ""), now=clock_now())
    return jsonify(id=task_id, status="cancelled", told=told)


def _editable(task_id: int) -> BoardTask:
    account = _account()
    row = get_session().get(BoardTask, task_id)
    if row is None:
        abort(404, description=f"no task {task_id}")
    if not _may_edit(row, account):
        abort(403, description="only whoever posted this task, or a coordinator, may change it")
    return row


def _task_answer(task_id: int) -> Response:
    member = _reader()
    view = board_read.task_view(get_session(), task_id, clock_now(), reader_id=member.id if member else None)
    assert view is not None
    return jsonify(task_record(view))


@bp.post("/shifts/<id:shift_id>/slots/<id:slot_id>/take")
def take(shift_id: int, slot_id: int) -> tuple[Response, int]:
    """Take one place in one shift."""
    member = _member()
    with get_store().sessions.begin() as session:
        shift, slot = session.get(TaskShift, shift_id), session.get(TaskSlot, slot_id)
        if shift is None or slot is None or shift.task_id != slot.task_id:
            abort(404, description="no such place: the slot is not part of that shift's task")
        signup = board.take(session, member.id, shift_id, slot_id, now=clock_now())
        answer = _signup_record(signup.id, signup.state, shift_id, slot_id)
    return jsonify(answer), 201


@bp.post("/slots/<id:slot_id>/take-series")
def take_series(slot_id: int) -> tuple[Response, int]:
    """Take the same place in every coming occurrence that fits; the skipped dates come back with why."""
    member = _member()
    with get_store().sessions.begin() as session:
        taken, skipped = board.take_series(session, member.id, slot_id, now=clock_now())
        answer = {
            "taken": [_signup_record(s.id, s.state, s.shift_id, s.slot_id) for s in taken],
            "skipped": [{"shift_id": shift.id, "reason": why} for shift, why in skipped],
        }
    return jsonify(answer), 201


@bp.post("/signups/<id:signup_id>/<action>")
def answer(signup_id: int, action: str) -> Response:
    """accept or decline (no reason needed; {"reason"} is optional) a suggestion, or release a place taken."""
    member = _member()
    if action not in ("accept", "decline", "release"):
        abort(404, description="no such action: accept, decline or release")
    body = request.get_json(silent=True) or {}
    with get_store().sessions.begin() as session:
        now = clock_now()
        if action == "accept":
            signup = board.accept(session, signup_id, member.id, now=now)
        elif action == "decline":
            reason = body.get("reason", "") if isinstance(body, dict) else ""
            signup = board.decline(session, signup_id, member.id, now=now, reason=reason)
        else:
            signup = board.release(session, signup_id, member.id, now=now)
        return jsonify(_signup_record(signup.id, signup.state, signup.shift_id, signup.slot_id))


@bp.get("/mine")
def mine() -> Response:
    """My suggestions and places taken, what is open near me for my skills, and this session's CSRF token
    for the writes."""
    member = _member()
    session = get_session()
    now = clock_now()
    places = [
        {
            "signup_id": p.signup_id,
            "state": p.state,
            "explanation": p.explanation,
            "task_id": p.task_id,
            "title": p.title,
            "sector": p.sector,
            "skill": p.skill,
            "starts_at": format_ts(p.starts_at),
            "ends_at": format_ts(p.ends_at),
            "hours": p.hours,
        }
        for p in board_read.my_places(session, member.id, now)
    ]
    fitting = [task_record(v) for v in board_read.fitting_tasks(session, member, now)[:20]]
    return jsonify(places=places, fitting=fitting, csrf_token=csrf_token())


def _signup_record(signup_id: int, state: str, shift_id: int, slot_id: int) -> dict[str, Any]:
    return {"signup_id": signup_id, "state": state, "shift_id": shift_id, "slot_id": slot_id}
