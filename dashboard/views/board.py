"""The open task board (/board): every sector's work, posted by members, guilds, assemblies and coordinators,
taken by the people who opt in.

Anyone who may see the map may read the board; it shows how many places are filled, never by whom. A
signed-in member filters by skill, distance and dates, takes a place (or the same place in every coming
week), answers suggestions, gives a place back, and subscribes to a private calendar. Whoever posted a task,
or a coordinator, changes or cancels it; those signed up are told. Every write goes through
gateway.store.board, whose InvalidInput and Conflict become a 400 and a 409 with the message (a bad form is
shown again with what was typed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from werkzeug.wrappers import Response as Redirect

from dashboard.read import board as board_read
from dashboard.read import calendar
from dashboard.read import crew as crew_read
from dashboard.views import board_form
from dashboard.web.auth import current_account, role_required, viewer_required
from dashboard.web.notifier import event_stream
from dashboard.web.store import get_session, get_store
from gateway.contract.clock import now as clock_now
from gateway.contract.errors import Conflict, InvalidInput
from gateway.store import board
from gateway.store.models import BoardTask, Community, Member, MemberSkill, TaskShift, TaskSlot
from gateway.store.models.vocab import BOARD_SECTORS

bp = Blueprint("board", __name__, url_prefix="/board")
ANY_ROLE = ("viewer", "crew", "driver")  # with coordinator: every signed-in account
MAX_KM = 500.0


def _now() -> datetime:
    return clock_now()


def _member_or_none() -> Member | None:
    account = current_account()
    if account is None or account.member_id is None:
        return None
    return get_session().get(Member, account.member_id)


def _member() -> Member:
    member = _member_or_none()
    if member is None:
        abort(
            403, description="only an account linked to a member takes places (ask a coordinator to link it)"
        )
    return member


def _may_edit(task: BoardTask) -> bool:
    account = current_account()
    if account is None:
        return False
    return account.role == "coordinator" or (
        bool(task.posted_by_account) and task.posted_by_account == account.username
    )


def _filters(member: Member | None) -> tuple[board_read.Filters, dict[str, str]]:
    """The query string's filters, checked: a bad one is a 400 that says which."""
    args = request.args
    unknown = sorted(set(args) - {"sector", "skill", "km", "from", "to", "community"})
    if unknown:
        abort(400, description=f"unknown filter {unknown[0][:40]!r}")
    sector = args.get("sector", "") or None
    if sector is not None and sector not in BOARD_SECTORS:
        abort(400, description=f"sector must be one of {', '.join(BOARD_SECTORS)}")
    skill = (args.get("skill", "") or "").strip().lower() or None
    if skill is not None and skill != "none" and not board.SKILL_RE.match(skill):
        abort(400, description="skill is a short name like electrician (a-z, 0-9, -), or none")
    km = None
    if args.get("km"):
        try:
            km = float(args["km"])
        except ValueError:
            abort(400, description="km must be a number of kilometres")
        if not math.isfinite(km) or not 0 < km <= MAX_KM:
            abort(400, description=f"km must be between 0 and {MAX_KM:g}")
        if member is None:
            abort(400, description="a distance needs a home: sign in with a member's account")
    since = _date_arg("from")
    until = _date_arg("to")
    if until is not None:
        until += timedelta(days=1)  # "to" includes that day
    if since and until and until <= since:
        abort(400, description="to must be on or after from")
    if until and (until - (since or _now())).days > board_read.MAX_DAYS:
        abort(
            400, description=f"the board shows at most {board_read.MAX_DAYS} days at a time: bring to closer"
        )
    community = args.get("community", "") or None
    origin = (member.lat, member.lon) if member is not None else None
    shown = {k: args.get(k, "") for k in ("sector", "skill", "km", "from", "to", "community")}
    return board_read.Filters(sector, skill, community, km, origin, since, until), shown


def _date_arg(name: str) -> datetime | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        abort(400, description=f"{name} must be a day as YYYY-MM-DD")
    if not board.FIRST_YEAR <= day.year <= board.LAST_YEAR:
        abort(400, description=f"{name} must be in the years {board.FIRST_YEAR} to {board.LAST_YEAR}")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@bp.get("")
@viewer_required
def index() -> str:
    """The board: open tasks of the coming two weeks (or the dates asked for) with places filled / places."""
    member = _member_or_none()
    filters, shown = _filters(member)
    session = get_session()
    now = _now()
    tasks = board_read.list_tasks(session, filters, now, reader_id=member.id if member else None)
    repairs = board_read.open_repairs(session, filters)
    communities = session.execute(select(Community.slug, Community.name).order_by(Community.name)).all()
    return render_template(
        "board.html",
        tasks=tasks,
        filters=shown,
        sectors=BOARD_SECTORS,
        skills=board_read.skills_wanted(session),
        communities=communities,
        member=member,
        now=now,
        urgent={t.id for t in tasks if board_read.urgent_soon(t, now)},
        repairs=repairs,
    )


@bp.post("/repairs/<id:task_id>/take")
@role_required("crew")
def take_repair(task_id: int) -> Redirect:
    """I take this repair: it is assigned to me and accepted in one step (if I have the skills and the
    week's hours); the crew page then shows it."""
    member = _member()
    with get_store().sessions.begin() as session:
        task = board.take_repair(session, member.id, task_id, now=_now())
        title = task.title
    flash(f"The repair “{title}” is yours; thank you. It is on your crew page.", "ok")
    account = current_account()
    return redirect(
        url_for("crew.index")
        if account and account.role in ("crew", "coordinator")
        else url_for("board.index")
    )


@bp.get("/<id:task_id>")
@viewer_required
def task(task_id: int) -> str:
    """One task with every shift of the coming five weeks and its places; mine marked, others only counted."""
    member = _member_or_none()
    session = get_session()
    view = board_read.task_view(
        session,
        task_id,
        _now(),
        reader_id=member.id if member else None,
        origin=(member.lat, member.lon) if member else None,
    )
    if view is None:
        abort(404, description="no such task")
    row = session.get(BoardTask, task_id)
    assert row is not None
    skills: set[str] = set()
    if member is not None:
        skills = set(session.scalars(select(MemberSkill.skill).where(MemberSkill.member_id == member.id)))
    return render_template(
        "board_task.html", task=view, member=member, may_edit=_may_edit(row), now=_now(), skills=skills
    )


@bp.post("/<id:task_id>/shifts/<id:shift_id>/slots/<id:slot_id>/take")
@role_required(*ANY_ROLE)
def take(task_id: int, shift_id: int, slot_id: int) -> Redirect:
    """I take this place in this shift."""
    member = _member()
    with get_store().sessions.begin() as session:
        shift, slot = session.get(TaskShift, shift_id), session.get(TaskSlot, slot_id)
        if shift is None or slot is None or shift.task_id != task_id or slot.task_id != task_id:
            abort(404, description="no such place in this task")
        board.take(session, member.id, shift_id, slot_id, now=_now())
        title = board.get_task(session, task_id).title
        message = f"You took a place in “{title}” on {shift.starts_at:%a %d %b %H:%M} UTC. Thank you!"
    flash(message, "ok")
    return redirect(url_for("board.task", task_id=task_id))


@bp.post("/<id:task_id>/slots/<id:slot_id>/take-series")
@role_required(*ANY_ROLE)
def take_series(task_id: int, slot_id: int) -> Redirect:
    """I take this place in every coming occurrence that fits me."""
    member = _member()
    with get_store().sessions.begin() as session:
        slot = session.get(TaskSlot, slot_id)
        if slot is None or slot.task_id != task_id:
            abort(404, description="no such place in this task")
        taken, skipped = board.take_series(session, member.id, slot_id, now=_now())
        title = board.get_task(session, task_id).title
    note = f" ({len(skipped)} dates did not fit: {skipped[0][1]})" if skipped else ""
    flash(f"You took {len(taken)} dates of “{title}”{note}.", "ok")
    return redirect(url_for("board.task", task_id=task_id))


@bp.get("/new")
@role_required(*ANY_ROLE)
def new() -> str:
    """The form to post a task."""
    return _form_page(_blank_form())


@bp.post("/new")
@role_required(*ANY_ROLE)
def post() -> Redirect | tuple[str, int]:
    """Post a task; a bad field shows the form again with the message and a 400, nothing written."""
    account = current_account()
    assert account is not None
    try:
        raw = board_form.draft(request.form, allow_coordinator=account.role == "coordinator")
        draft = board.parse_draft(raw)
        with get_store().sessions.begin() as session:
            created = board.post(
                session, draft, member_id=account.member_id, account=account.username, now=_now()
            )
            task_id, title = created.id, created.title
    except InvalidInput as exc:
        return _form_page(request.form, str(exc)), 400
    flash(f"Posted “{title}”. People who fit will see it on the board.", "ok")
    return redirect(url_for("board.task", task_id=task_id))


def _blank_form() -> dict[str, Any]:
    member = _member_or_none()
    community = ""
    if member is not None:
        community = (
            get_session().scalar(select(Community.slug).where(Community.id == member.community_id)) or ""
        )
    tomorrow = (_now() + timedelta(days=1)).date()
    return {
        "mode": "once",
        "date": str(tomorrow),
        "until": str(tomorrow + timedelta(days=27)),
        "start": "09:00",
        "end": "12:00",
        "urgency": "1",
        "community": community,
        "poster_kind": "member",
    }


def _form_page(values: Any, error: str | None = None) -> str:
    form = {k: values.get(k, "") for k in ("title", "sector", "community", "place", "description")}
    for k in (
        "mode",
        "date",
        "until",
        "start",
        "end",
        "urgency",
        "hours_per_slot",
        "poster_kind",
        "poster_name",
    ):
        form[k] = values.get(k, "")
    days = set(values.getlist("days")) if hasattr(values, "getlist") else set()
    try:
        rows = board_form.slot_rows(values) if hasattr(values, "getlist") else []
    except InvalidInput:
        rows = []
    rows = [r for r in rows if r[0].strip() or r[1].strip()]
    rows += [("", "", "")] * max(0, board_form.SLOT_ROWS - len(rows))
    session = get_session()
    account = current_account()
    return render_template(
        "board_post.html",
        form=form,
        days=days,
        rows=rows,
        error=error,
        sectors=BOARD_SECTORS,
        communities=session.execute(select(Community.slug, Community.name).order_by(Community.name)).all(),
        day_names=list(enumerate(board_form.DAYS)),
        urgencies=list(enumerate(board.URGENCY_NAMES)),
        coordinator=account is not None and account.role == "coordinator",
    )


@bp.get("/<id:task_id>/edit")
@role_required(*ANY_ROLE)
def edit(task_id: int) -> str:
    """The form to change a task (its poster or a coordinator)."""
    row = _editable(task_id)
    return _edit_page(row, board_form.edit_values(_task_values(row)))


@bp.post("/<id:task_id>/edit")
@role_required(*ANY_ROLE)
def save(task_id: int) -> Redirect | tuple[str, int]:
    """Store the change; those signed up are told (a new time frees their places)."""
    row = _editable(task_id)
    try:
        raw = board_form.changes(request.form, _task_values(row), one_off=row.recurrence is None)
        if not raw:
            flash("Nothing changed.", "ok")
            return redirect(url_for("board.task", task_id=task_id))
        with get_store().sessions.begin() as session:
            board.change(session, task_id, raw, now=_now())
    except InvalidInput as exc:
        return _edit_page(row, dict(request.form), str(exc)), 400
    flash("Saved; the people signed up were told.", "ok")
    return redirect(url_for("board.task", task_id=task_id))


@bp.post("/<id:task_id>/cancel")
@role_required(*ANY_ROLE)
def cancel(task_id: int) -> Redirect:
    """Cancel the task: every coming shift is off and everyone signed up is told."""
    _editable(task_id)
    with get_store().sessions.begin() as session:
        told = board.cancel(session, task_id, request.form.get("reason", ""), now=_now())
    flash(f"Cancelled; {told} {'person was' if told == 1 else 'people were'} told.", "ok")
    return redirect(url_for("board.task", task_id=task_id))


def _editable(task_id: int) -> BoardTask:
    row = get_session().get(BoardTask, task_id)
    if row is None:
        abort(404, description="no such task")
    if not _may_edit(row):
        abort(403, description="only whoever posted this task, or a coordinator, may change it")
    if row.status != "open":
        raise Conflict(f"the task is {row.status}: it cannot be changed")
    return row


def _task_values(row: BoardTask) -> dict[str, Any]:
    return {
        "title": row.title,
        "place": row.place,
        "description": row.description,
        "urgency": row.urgency,
        "hours_per_slot": row.hours_per_slot,
        "starts_at": _utc(row.starts_at),
        "ends_at": _utc(row.ends_at),
    }


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _edit_page(row: BoardTask, values: dict[str, Any], error: str | None = None) -> str:
    return render_template(
        "board_edit.html",
        task=row,
        values=values,
        error=error,
        urgencies=list(enumerate(board.URGENCY_NAMES)),
    )


@bp.get("/mine")
@role_required(*ANY_ROLE)
def mine() -> str:
    """My suggestions to answer and the places I took, my calendar address, and what is open near me."""
    member = _member()
    now = _now()
    with get_store().sessions.begin() as session:  # the calendar secret is made on first view
        token = board.calendar_token(session, session.get(Member, member.id) or member)
    session = get_session()
    places = board_read.my_places(session, member.id, now)
    alerts = crew_read.member_alerts(session, member.id, limit=10)
    return render_template(
        "board_mine.html",
        member=member,
        places=places,
        fitting=board_read.fitting_tasks(session, member, now)[:10],
        calendar_url=url_for("board.calendar_feed", token=token, _external=True),
        alerts=list(reversed(alerts)),
        events_url=url_for("board.events", after=max((a.id for a in alerts), default=0)),
    )


@bp.post("/signups/<id:signup_id>/<action>")
@role_required(*ANY_ROLE)
def answer(signup_id: int, action: str) -> Redirect:
    """Accept or decline a suggestion (no reason needed), or give back a place I took."""
    member = _member()
    if action not in ("accept", "decline", "release"):
        abort(404, description="no such action: accept, decline or release")
    with get_store().sessions.begin() as session:
        now = _now()
        if action == "accept":
            board.accept(session, signup_id, member.id, now=now)
            message = "Thank you: the place is yours."
        elif action == "decline":
            board.decline(session, signup_id, member.id, now=now, reason=request.form.get("reason", ""))
            message = "Declined; you will not be asked for this task again this week."
        else:
            board.release(session, signup_id, member.id, now=now)
            message = "The place is free again for someone else."
    flash(message, "ok")
    return redirect(url_for("board.mine"))


@bp.post("/calendar/reset")
@role_required(*ANY_ROLE)
def reset_calendar() -> Redirect:
    """A new calendar address; the old one stops working."""
    member = _member()
    with get_store().sessions.begin() as session:
        row = session.get(Member, member.id)
        assert row is not None
        board.reset_calendar_token(session, row)
    flash("Your calendar has a new address: subscribe to it again; the old one no longer works.", "ok")
    return redirect(url_for("board.mine") + "#calendar")


@bp.get("/calendar/<token>.ics")
def calendar_feed(token: str) -> Response:
    """The private iCalendar feed: no sign-in (calendar apps cannot), the secret in the address is the key."""
    session = get_session()
    member = board.member_by_token(session, token)
    if member is None:
        abort(404, description="no calendar at this address (it may have been reset)")
    body = calendar.member_calendar(
        session,
        member,
        _now(),
        host=request.host.split(":")[0] or "rhizome",
        task_url=lambda task_id: url_for("board.task", task_id=task_id, _external=True),
    )
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'inline; filename="rhizome.ics"'
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/events")
@role_required(*ANY_ROLE)
def events() -> Response:
    """Server-Sent Events: `alert` for each new alert to me (a suggestion, an urgent place near me, a task I
    am in changed or cancelled)."""
    member_id = _member().id
    raw = request.args.get("after", "0")
    header = request.headers.get("Last-Event-ID", "0")
    last = max(
        int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0,
        int(header) if header.isascii() and header.isdigit() and len(header) <= 18 else 0,
    )
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def new_events() -> Iterator[str]:
        nonlocal last
        with get_store(app).sessions() as session:
            alerts = crew_read.member_alerts(session, member_id, last)
        for alert in alerts:
            last = alert.id
            body = {
                "id": alert.id,
                "at": alert.at.isoformat(),
                "text": alert.text,
                "kind": alert.kind,
                "link": alert.link,
            }
            yield f"id: {alert.id}\nevent: alert\ndata: {json.dumps(body)}\n\n"

    return event_stream(app, new_events)
