"""The task board's pages: posting with a schedule and slot rows (a bad field re-shows the form, nothing
written), filtering, taking a place or a series, answering suggestions, changing and cancelling (only the
poster or a coordinator; those signed up are told), the private calendar feed, and counts, never names, for
the public.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from dashboard.read import calendar
from dashboard.web.store import get_store
from gateway.contract.clock import now as clock_now
from gateway.contract.topics import member_alerts_topic
from gateway.store import board
from gateway.store.models import BoardTask, OutboxMessage, SlotSignup, TaskShift, TaskSlot
from tests import test_dashboard_pages as pages
from tests.test_dashboard_pages import Auth

ids, password_hash, app, client, auth = pages.ids, pages.password_hash, pages.app, pages.client, pages.auth


def _form(**changes: Any) -> dict[str, Any]:
    """A weekly pickup every Tuesday and Thursday 09:00-11:00 for four weeks: 2 skilled places, 1 open."""
    first = (clock_now() + timedelta(days=1)).date()
    form: dict[str, Any] = {
        "title": "Food-saving pickup <b>round</b>",
        "sector": "food",
        "community": "utuado",
        "place": "Market hall",
        "description": "Bring a bag.",
        "urgency": "1",
        "mode": "weekly",
        "date": str(first),
        "until": str(first + timedelta(days=27)),
        "start": "09:00",
        "end": "11:00",
        "days": ["1", "3"],
        "hours_per_slot": "",
        "slot_count": ["1", "1", "1", ""],
        "slot_skill": ["pump-mechanic", "electrician", "", ""],
        "slot_newcomer": ["no", "no", "yes", "no"],
        "poster_kind": "guild",
        "poster_name": "Food-saving guild",
    }
    form.update(changes)
    return form


def _post_task(auth: Auth, **changes: Any) -> Any:
    return auth.client.post("/board/new", data={**_form(**changes), "csrf_token": auth.token("/board/new")})


def _task_id(response: Any) -> int:
    found = re.search(r"/board/(\d+)$", response.location)
    assert found, response.location
    return int(found.group(1))


def _take_first(app: Flask, auth: Auth, task_id: int, skill: str | None) -> Any:
    with get_store(app).sessions() as session:
        same = TaskSlot.skill.is_(None) if skill is None else TaskSlot.skill == skill
        slot = session.scalar(select(TaskSlot).where(TaskSlot.task_id == task_id, same))
        shift = session.scalar(
            select(TaskShift).where(TaskShift.task_id == task_id).order_by(TaskShift.starts_at)
        )
        assert slot is not None and shift is not None
        path = f"/board/{task_id}"
    return auth.post(f"{path}/shifts/{shift.id}/slots/{slot.id}/take", page=path)


def test_a_weekly_task_has_no_shift_after_its_last_day(app: Flask, auth: Auth) -> None:
    today = clock_now().date()
    tuesday = today + timedelta(days=(1 - today.weekday()) % 7 or 7)
    auth.login("viewer")
    response = _post_task(auth, date=str(tuesday), until=str(tuesday + timedelta(days=13)))  # a Monday
    assert response.status_code == 302
    with get_store(app).sessions() as session:
        starts = session.scalars(select(TaskShift.starts_at).where(TaskShift.task_id == _task_id(response)))
        days = sorted(at.date() for at in starts)
    # Tuesdays and Thursdays of two weeks; not the Tuesday after the last day (its shift ends that midnight)
    assert days == [tuesday + timedelta(days=d) for d in (0, 2, 7, 9)]


def test_a_guild_posts_a_weekly_task_with_two_skilled_places_and_one_open(app: Flask, auth: Auth) -> None:
    auth.login("viewer")  # an assembly viewer, no member: may post, not take
    response = _post_task(auth)
    assert response.status_code == 302
    task_id = _task_id(response)
    with get_store(app).sessions() as session:
        task = session.get(BoardTask, task_id)
        assert task is not None and task.recurrence == {"days": [1, 3], "start": "09:00", "end": "11:00"}
        assert task.poster_kind == "guild" and task.posted_by_account == "viewer"
        slots = session.scalars(select(TaskSlot).where(TaskSlot.task_id == task_id)).all()
        assert [(s.skill, s.newcomer) for s in slots] == [
            ("pump-mechanic", False),
            ("electrician", False),
            (None, True),
        ]
        shifts = session.scalar(select(func.count()).where(TaskShift.task_id == task_id))
        assert shifts == 8  # two a week for four weeks
    page = auth.client.get(f"/board/{task_id}").get_data(as_text=True)
    assert "Food-saving pickup &lt;b&gt;round&lt;/b&gt;" in page and "<b>round</b>" not in page
    assert "Food-saving guild (guild)" in page and "every Tue, Thu 09:00-11:00 UTC" in page
    assert "cannot take places" in page  # the viewer account is no member


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": ""}, "title"),
        ({"sector": "mining"}, "sector must be one of"),
        ({"start": "9am"}, "from: give a time as HH:MM"),
        ({"days": []}, "tick at least one day"),
        ({"until": "2020-01-01"}, "until: the last day comes on or after the first"),
        ({"slot_count": ["0", "", "", ""]}, "slot row 1: how many people"),
        ({"slot_skill": ["Pump Mechanic!", "", "", ""]}, "a skill is a short name"),
        ({"slot_count": ["", "", "", ""], "slot_skill": ["", "", "", ""]}, "at least one slot"),
        ({"poster_kind": "coordinator"}, "only a coordinator"),
        ({"poster_name": ""}, "name the guild"),
        ({"community": "atlantis"}, "no community &#39;atlantis&#39;"),
        ({"mode": "once", "end": "08:00"}, "ends_at must be after starts_at"),
        ({"slot_count": ["²", "", "", ""]}, "slot row 1: how many people"),
        ({"end": "24:00"}, "a weekly task ends by 23:59"),
        ({"date": "9999-12-31"}, "years 2000 to 2100"),
        ({"title": "Pickup\x00"}, "control character"),
    ],
)
def test_a_bad_post_shows_the_form_again_with_a_400_and_writes_nothing(
    app: Flask, auth: Auth, changes: dict[str, Any], message: str
) -> None:
    auth.login("ana")
    response = _post_task(auth, **changes)
    text = response.get_data(as_text=True)
    assert response.status_code == 400, text
    assert message in text
    assert 'id="rz-post-error"' in text and "Market hall" in text  # what was typed is kept
    with get_store(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(BoardTask)) == 0


def test_a_member_filters_takes_a_place_and_finds_it_in_the_calendar(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("coord")
    task_id = _task_id(_post_task(auth))
    _post_task(auth, title="Literacy circle", sector="education", slot_skill=["teacher", "", "", ""])
    auth.client.post("/logout", data={"csrf_token": auth.token("/board")})
    auth.login("ana")
    board_page = auth.client.get("/board?sector=food&skill=pump-mechanic&km=10").get_data(as_text=True)
    assert "Food-saving pickup" in board_page and "Literacy circle" not in board_page
    assert "Literacy circle" in auth.client.get("/board?sector=education").get_data(as_text=True)
    assert _take_first(app, auth, task_id, "pump-mechanic").status_code == 302
    assert "1 of 3 filled" in auth.client.get("/board").get_data(as_text=True)
    mine = auth.client.get("/board/mine").get_data(as_text=True)
    assert "Food-saving pickup" in mine and "Give the place back" in mine
    url = re.search(r'id="rz-calendar-url" value="([^"]+)"', mine)
    assert url is not None
    feed = auth.client.get(url.group(1).removeprefix("http://localhost"))
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    body = feed.get_data(as_text=True)
    assert body.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") and body.endswith("END:VCALENDAR\r\n")
    assert (
        body.count("BEGIN:VEVENT") == 1 and "SUMMARY:Food-saving pickup <b>round</b> (pump-mechanic)" in body
    )
    assert "LOCATION:Market hall\\, Utuado" in body and "STATUS:CONFIRMED" in body
    assert all(len(line.encode()) <= 75 for line in body.split("\r\n"))
    auth.post("/board/calendar/reset", page="/board/mine")
    assert auth.client.get(url.group(1).removeprefix("http://localhost")).status_code == 404


def test_the_public_board_shows_counts_and_never_names(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("ana")
    task_id = _task_id(_post_task(auth, poster_kind="member", poster_name=""))
    assert _take_first(app, auth, task_id, "pump-mechanic").status_code == 302
    auth.client.post("/logout", data={"csrf_token": auth.token("/board")})
    for path in ("/board", f"/board/{task_id}"):
        page = auth.client.get(path).get_data(as_text=True)
        assert "1 of 3" in page
        assert "Ana" not in page and "you are in" not in page and "yours" not in page
    assert "posted by a member" in auth.client.get(f"/board/{task_id}").get_data(as_text=True)


def test_only_the_poster_or_a_coordinator_cancels_and_those_signed_up_are_told(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("viewer")
    task_id = _task_id(_post_task(auth))
    auth.client.post("/logout", data={"csrf_token": auth.token("/board")})
    auth.login("ana")
    assert _take_first(app, auth, task_id, None).status_code == 302
    refused = auth.post(f"/board/{task_id}/cancel", {"reason": "x"}, page=f"/board/{task_id}")
    assert refused.status_code == 403
    auth.client.post("/logout", data={"csrf_token": auth.token("/board")})
    auth.login("viewer")
    done = auth.post(f"/board/{task_id}/cancel", {"reason": "the hall is flooded"}, page=f"/board/{task_id}")
    assert done.status_code == 302
    with get_store(app).sessions() as session:
        payloads = session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.topic == member_alerts_topic(ids["member"]))
        ).all()
        kinds = [json.loads(p)["type"] for p in payloads]
        assert "task_cancelled" in kinds
        assert "the hall is flooded" in json.loads(payloads[kinds.index("task_cancelled")])["text"]
        assert session.scalar(select(func.count()).where(SlotSignup.state == "taken")) == 0
    page = auth.client.get(f"/board/{task_id}").get_data(as_text=True)
    assert "This task is cancelled: the hall is flooded" in page


def test_a_suggestion_is_accepted_or_declined_from_my_places(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("coord")
    task_id = _task_id(_post_task(auth, mode="once", poster_kind="coordinator"))
    with get_store(app).sessions.begin() as session:
        shift = session.scalar(select(TaskShift).where(TaskShift.task_id == task_id))
        slots = session.scalars(
            select(TaskSlot).where(TaskSlot.task_id == task_id).order_by(TaskSlot.position)
        ).all()
        assert shift is not None
        now = clock_now()
        first = board.suggest(session, shift.id, slots[0].id, ids["member"], "you are 0 km away", now=now)
        second = board.suggest(session, shift.id, slots[2].id, ids["member"], "a newcomer place", now=now)
        first_id, second_id = first.id, second.id
    counted = auth.client.get(f"/board/{task_id}").get_data(as_text=True)
    assert "0 of 3" in counted and "2 asked, no answer yet" in counted  # asked is not filled
    auth.client.post("/logout", data={"csrf_token": auth.token("/board")})
    auth.login("ana")
    task_page = auth.client.get(f"/board/{task_id}").get_data(as_text=True)
    assert "free (needs electrician, which your offer does not list)" in task_page  # no button to fail
    mine = auth.client.get("/board/mine").get_data(as_text=True)
    assert mine.count("Yes, I'll do it") == 2 and "you are 0 km away" in mine
    assert auth.post(f"/board/signups/{first_id}/accept", page="/board/mine").status_code == 302
    declined = auth.post(f"/board/signups/{second_id}/decline", page="/board/mine")
    assert declined.status_code == 302
    again = auth.post(f"/board/signups/{second_id}/accept", page="/board/mine")
    assert again.status_code == 409 and "nothing to accept" in again.get_data(as_text=True)
    with get_store(app).sessions() as session:
        states = dict(session.execute(select(SlotSignup.id, SlotSignup.state)).all())
        assert states == {first_id: "taken", second_id: "declined"}
    assert auth.post(f"/board/signups/{first_id}/dance", page="/board/mine").status_code == 404


def test_a_series_takes_every_coming_date(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("viewer")
    task_id = _task_id(_post_task(auth, days=["1"], until=str((clock_now() + timedelta(days=15)).date())))
    auth.client.post("/logout", data={"csrf_token": auth.token("/board")})
    auth.login("ana")
    with get_store(app).sessions() as session:
        slot = session.scalar(select(TaskSlot).where(TaskSlot.task_id == task_id, TaskSlot.newcomer))
        shifts = session.scalar(select(func.count()).where(TaskShift.task_id == task_id))
        assert slot is not None
    response = auth.post(f"/board/{task_id}/slots/{slot.id}/take-series", page=f"/board/{task_id}")
    assert response.status_code == 302
    with get_store(app).sessions() as session:
        assert session.scalar(select(func.count()).where(SlotSignup.state == "taken")) == shifts


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sector=mining", "sector must be one of"),
        ("km=abc", "km must be a number"),
        ("km=10", "a distance needs a home"),
        ("from=tomorrow", "from must be a day"),
        ("skill=%3Cb%3E", "skill is a short name"),
        ("colour=red", "unknown filter"),
    ],
)
def test_bad_filters_are_a_400_that_says_which(auth: Auth, query: str, message: str) -> None:
    response = auth.client.get(f"/board?{query}")
    assert response.status_code == 400 and message in response.get_data(as_text=True)


def test_a_change_by_the_poster_tells_those_signed_up(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("ana")
    task_id = _task_id(_post_task(auth, mode="once", poster_kind="member", poster_name=""))
    assert _take_first(app, auth, task_id, "pump-mechanic").status_code == 302
    bad = auth.post(f"/board/{task_id}/edit", {"title": "", "urgency": "1"}, page=f"/board/{task_id}/edit")
    assert bad.status_code == 400 and "title" in bad.get_data(as_text=True)
    ok = auth.post(
        f"/board/{task_id}/edit", {"title": "Pickup, moved", "start": "10:00"}, page=f"/board/{task_id}/edit"
    )
    assert ok.status_code == 302
    with get_store(app).sessions() as session:
        task = session.get(BoardTask, task_id)
        assert task is not None and task.title == "Pickup, moved" and task.starts_at.hour == 10
        texts = [
            json.loads(p)["text"]
            for p in session.scalars(
                select(OutboxMessage.payload).where(OutboxMessage.topic == member_alerts_topic(ids["member"]))
            )
        ]
        assert any("its time changed" in t for t in texts)


def test_ics_text_is_escaped_and_folded() -> None:
    assert calendar.escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    folded = calendar.fold("SUMMARY:" + "ñ" * 60)
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == "SUMMARY:" + "ñ" * 60


def test_an_unknown_calendar_address_is_a_404(auth: Auth) -> None:
    assert auth.client.get("/board/calendar/not-a-token.ics").status_code == 404
    assert auth.client.get("/board/calendar/" + "x" * 80 + ".ics").status_code == 404


def test_the_member_without_an_account_link_gets_a_clear_403(auth: Auth) -> None:
    auth.login("viewer")
    response = auth.client.get("/board/mine")
    assert response.status_code == 403 and "linked to a member" in response.get_data(as_text=True)


def test_my_hours_show_the_baseline_what_fits_near_me_and_board_declines(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("coord")
    task_id = _task_id(_post_task(auth, mode="once", poster_kind="coordinator"))
    with get_store(app).sessions.begin() as session:
        shift = session.scalar(select(TaskShift).where(TaskShift.task_id == task_id))
        slot = session.scalar(select(TaskSlot).where(TaskSlot.task_id == task_id, TaskSlot.newcomer))
        assert shift is not None and slot is not None
        signup = board.suggest(session, shift.id, slot.id, ids["member"], "near you", now=clock_now())
        board.decline(session, signup.id, ids["member"], now=clock_now())
    other = _task_id(
        _post_task(
            auth,
            title="Water committee minutes",
            sector="governance",
            mode="once",
            poster_kind="coordinator",
            slot_skill=["", "", "", ""],
            slot_newcomer=["no"] * 4,
        )
    )
    auth.client.post("/logout", data={"csrf_token": auth.token("/board")})
    auth.login("ana")
    page = auth.client.get("/me/hours").get_data(as_text=True)
    assert "baseline is about 150 h a year" in page and "<td>50</td>" in page  # other: 50 h of the 150
    fitting = page.split('id="rz-fitting"')[1].split("</ul>")[0]
    assert f"/board/{other}" in fitting  # a place anyone may take, 0 km away
    assert f"/board/{task_id}" not in fitting  # declined: not put before her again this week
    assert "task board: Food-saving pickup" in page  # the decline, to take back


def test_open_repairs_are_on_the_board_and_a_crew_member_takes_one(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    from gateway.store.models import RepairTask

    with get_store(app).sessions.begin() as session:
        task = session.get(RepairTask, ids["task"])
        assert task is not None
        task.status, task.assigned_member_id = "open", None
        task.required_skills = ["pump-mechanic"]
    page = auth.client.get("/board?sector=maintenance").get_data(as_text=True)
    assert "Pump &lt;b&gt;1&lt;/b&gt; dry" in page and "needs: pump-mechanic" in page
    assert "I&#39;ll fix it" not in page and "I'll fix it" not in page  # the public reads, members take
    assert "Pump &lt;b&gt;1&lt;/b&gt; dry" not in auth.client.get("/board?sector=food").get_data(as_text=True)
    auth.login("ana")
    taken = auth.post(f"/board/repairs/{ids['task']}/take", page="/board")
    assert taken.status_code == 302 and taken.location.endswith("/crew")
    with get_store(app).sessions() as session:
        row = session.get(RepairTask, ids["task"])
        assert row is not None and row.status == "accepted" and row.assigned_member_id == ids["member"]
    again = auth.post(f"/board/repairs/{ids['task']}/take", page="/board")
    assert again.status_code == 409 and "someone already has this repair" in again.get_data(as_text=True)


def test_only_crew_take_repairs_from_the_board(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    from gateway.store.models import Member, RepairTask

    with get_store(app).sessions.begin() as session:
        task = session.get(RepairTask, ids["task"])
        assert task is not None
        task.status, task.assigned_member_id = "open", None
    auth.login("anadriver")  # Ana's driver account: the page offers no button, the route refuses
    assert "I&#39;ll fix it" not in auth.client.get("/board").get_data(as_text=True)
    assert auth.post(f"/board/repairs/{ids['task']}/take", page="/board").status_code in (302, 403)
    with get_store(app).sessions.begin() as session:
        assert session.get(RepairTask, ids["task"]).status == "open"  # type: ignore[union-attr]
        member = session.get(Member, ids["member"])
        assert member is not None
        member.is_crew = False  # no longer in a crew: the store refuses her too
    auth.client.post("/logout", data={"csrf_token": auth.token("/board")})
    auth.login("ana")
    refused = auth.post(f"/board/repairs/{ids['task']}/take", page="/board")
    assert refused.status_code == 409 and "repairs go to crew members" in refused.get_data(as_text=True)


def test_an_overnight_task_keeps_its_time_when_edited_in_the_form(app: Flask, auth: Auth) -> None:
    token = _token_of(auth, "ana")
    day = (clock_now() + timedelta(days=2)).date()
    body = {
        "title": "Night watch at the cold room",
        "sector": "health",
        "community": "utuado",
        "starts_at": f"{day}T22:00:00Z",
        "ends_at": f"{day + timedelta(days=1)}T02:00:00Z",
        "slots": [{"newcomer": True}],
    }
    task = auth.client.post("/api/board", json=body, headers={"X-CSRF-Token": token}).get_json()
    page = auth.client.get(f"/board/{task['id']}/edit").get_data(as_text=True)
    assert "runs past midnight" in page and 'name="start"' not in page
    saved = auth.post(f"/board/{task['id']}/edit", {"title": "Night watch", "start": "21:00"}, page="/board")
    assert saved.status_code == 302
    with get_store(app).sessions() as session:
        row = session.get(BoardTask, task["id"])
        assert row is not None and row.title == "Night watch"
        assert (row.starts_at.hour, row.ends_at.hour) == (22, 2)


def _token_of(auth: Auth, user: str) -> str:
    auth.login(user)
    return auth.token("/board")
