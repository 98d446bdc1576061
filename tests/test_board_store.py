"""The open task board's store: posting is checked, people only ever hold places they said yes to and that
fit what they offered, and changes reach the people signed up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.errors import Conflict, InvalidInput, NotFound
from gateway.contract.topics import member_alerts_topic
from gateway.store import board, hours
from gateway.store.models import (
    Decline,
    HoursEntry,
    Member,
    MemberSkill,
    OutboxMessage,
    SlotSignup,
    TaskShift,
    TaskSlot,
)
from gateway.store.region import load_region
from tests.conftest import Store, tiny_region_data

MONDAY = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # the work clock in these tests


def fill(session: Session) -> dict[str, int]:
    """The tiny region, Ana (pump mechanic, 4 h a week) and Bo (electrician, 6 h a week)."""
    load_region(session, tiny_region_data())
    ana = session.scalar(select(Member).where(Member.name == "Ana"))
    assert ana is not None
    bo = Member(
        name="Bo", community_id=ana.community_id, lat=18.27, lon=-66.7, is_crew=True, hours_per_week=6
    )
    session.add(bo)
    session.flush()
    session.add(MemberSkill(member_id=bo.id, skill="electrician"))
    return {"ana": ana.id, "bo": bo.id}


def solar(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "title": "Solar retrofit of the community centre",
        "sector": "maintenance",
        "community": "utuado",
        "place": "Community centre",
        "starts_at": "2026-12-08T09:00:00Z",
        "ends_at": "2026-12-08T12:00:00Z",
        "urgency": "high",
        "poster_kind": "guild",
        "poster_name": "Solar guild",
        "slots": [{"skill": "electrician"}, {"skill": None, "newcomer": True}],
    }
    raw.update(changes)
    return raw


def alerts(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(OutboxMessage.payload)
        .where(OutboxMessage.topic == member_alerts_topic(member_id))
        .order_by(OutboxMessage.id)
    )
    return [json.loads(p) for p in rows]


def places(session: Session, task_id: int) -> tuple[list[TaskShift], list[TaskSlot]]:
    shifts = list(
        session.scalars(select(TaskShift).where(TaskShift.task_id == task_id).order_by(TaskShift.starts_at))
    )
    slots = list(
        session.scalars(select(TaskSlot).where(TaskSlot.task_id == task_id).order_by(TaskSlot.position))
    )
    return shifts, slots


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": " "}, "title is required"),
        ({"sector": "water"}, "sector must be one of"),
        ({"ends_at": "2026-12-08T08:00:00Z"}, "ends_at must be after starts_at"),
        ({"starts_at": "tuesday"}, "starts_at must be an ISO time"),
        ({"slots": []}, "at least one slot"),
        ({"slots": [{"skill": "Solar Installer!"}]}, "a skill is a short name"),
        ({"slots": [{"skill": "electrician", "newcomer": True}]}, "needs no skill"),
        ({"urgency": 7}, "urgency must be 0-3"),
        ({"recurrence": {"days": [9], "start": "09:00", "end": "12:00"}}, "weekdays"),
        ({"recurrence": {"days": [1], "start": "12:00", "end": "09:00"}}, "ends after it starts"),
        ({"hours_per_slot": 5}, "longer than one occurrence"),
        ({"ends_at": "2026-12-10T12:00:00Z"}, "at most 24 h"),
        ({"owner": "me"}, "unknown field 'owner'"),
        ({"lat": 18.2}, "both lat and lon"),
    ],
)
def test_a_bad_task_is_refused_with_the_field_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        board.parse_draft(solar(**changes))


def test_a_recurring_task_has_a_shift_per_occurrence_within_the_horizon(store: Store) -> None:
    sessions, _ = store
    with sessions.begin() as session:
        raw = solar(
            title="Food-saving pickup",
            sector="food",
            starts_at="2026-12-07T00:00:00Z",
            ends_at="2027-03-01T00:00:00Z",
            recurrence={"days": [1], "start": "09:00", "end": "12:00"},
            slots=[{"skill": None}],
        )
        task = board.post(session, board.parse_draft(raw), member_id=None, account="guild", now=MONDAY)
        shifts, _ = places(session, task.id)
        assert [s.starts_at.weekday() for s in shifts] == [1] * 5  # Tuesdays of the next 35 days
        assert shifts[0].starts_at == datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
        assert task.hours_per_slot == 3.0
        assert board.extend_shifts(session, MONDAY) == 0
        assert board.extend_shifts(session, MONDAY + timedelta(days=14)) == 2


def test_taking_a_place_checks_skill_pledge_and_overlap_and_counts_the_hours(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        task = board.post(
            session, board.parse_draft(solar()), member_id=ids["ana"], account="ana", now=MONDAY
        )
        (shift,), (skilled, open_place) = places(session, task.id)
        with pytest.raises(Conflict, match="needs the skill electrician"):
            board.take(session, ids["ana"], shift.id, skilled.id, now=MONDAY)
        signup = board.take(session, ids["ana"], shift.id, open_place.id, now=MONDAY)
        assert signup.state == "taken"
        entry = session.scalar(
            select(HoursEntry).where(HoursEntry.work == "task", HoursEntry.work_id == signup.id)
        )
        assert entry is not None and (entry.state, entry.hours, entry.sector) == (
            "reserved",
            3.0,
            "maintenance",
        )
        with pytest.raises(Conflict, match="already have this place"):
            board.take(session, ids["ana"], shift.id, open_place.id, now=MONDAY)
        with pytest.raises(Conflict, match="someone already took"):
            board.take(session, ids["bo"], shift.id, open_place.id, now=MONDAY)
        # A second task at the same time overlaps; one at another time passes her 4 h pledge.
        same_time = board.post(
            session,
            board.parse_draft(solar(slots=[{}], hours_per_slot=1)),
            member_id=None,
            account="x",
            now=MONDAY,
        )
        (s2,), (p2,) = places(session, same_time.id)
        with pytest.raises(Conflict, match="already hold other work"):
            board.take(session, ids["ana"], s2.id, p2.id, now=MONDAY)
        later = solar(starts_at="2026-12-09T09:00:00Z", ends_at="2026-12-09T11:00:00Z", slots=[{}])
        later_task = board.post(session, board.parse_draft(later), member_id=None, account="x", now=MONDAY)
        (s3,), (p3,) = places(session, later_task.id)
        with pytest.raises(Conflict, match="past the 4 h a week you offered"):
            board.take(session, ids["ana"], s3.id, p3.id, now=MONDAY)
        week = hours.week_start(shift.starts_at)
        assert hours.weekly_load(session, week)[ids["ana"]] == 3.0
        board.release(session, signup.id, ids["ana"], now=MONDAY)
        assert hours.weekly_load(session, week).get(ids["ana"], 0.0) == 0.0
        assert board.take(session, ids["ana"], s3.id, p3.id, now=MONDAY).state == "taken"


def test_the_yearly_sector_offer_and_away_days_are_limits_too(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        ana = session.get(Member, ids["ana"])
        assert ana is not None
        ana.sector_hours = {"maintenance": 2, "food": 20}
        task = board.post(session, board.parse_draft(solar()), member_id=None, account="x", now=MONDAY)
        (shift,), (_, open_place) = places(session, task.id)
        with pytest.raises(Conflict, match="past the 2 h you offered to maintenance"):
            board.take(session, ids["ana"], shift.id, open_place.id, now=MONDAY)
        ana.sector_hours = None
        ana.away = [{"from": "2026-12-08", "to": "2026-12-09"}]
        with pytest.raises(Conflict, match="away from 2026-12-08"):
            board.take(session, ids["ana"], shift.id, open_place.id, now=MONDAY)


def test_a_suggestion_is_answered_yes_or_no_and_a_no_is_remembered(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        task = board.post(session, board.parse_draft(solar()), member_id=None, account="x", now=MONDAY)
        (shift,), (skilled, open_place) = places(session, task.id)
        asked = board.suggest(session, shift.id, skilled.id, ids["bo"], "electrician 0 km away", now=MONDAY)
        assert asked.state == "suggested"
        suggested = alerts(session, ids["bo"])[-1]
        assert suggested["type"] == "task_suggested" and suggested["link"] == f"/board/{task.id}"
        assert (suggested["lat"], suggested["lon"]) == (round(task.lat, 6), round(task.lon, 6))
        assert task.site_id is None and suggested["site_name"] == "Community centre"  # the place as written
        assert hours.weekly_load(session, hours.week_start(shift.starts_at))[ids["bo"]] == 3.0  # offered
        board.accept(session, asked.id, ids["bo"], now=MONDAY)  # the offered hours are not counted twice
        assert asked.state == "taken"
        other = board.suggest(session, shift.id, open_place.id, ids["ana"], "near", now=MONDAY)
        with pytest.raises(NotFound):
            board.decline(session, other.id, ids["bo"], now=MONDAY)  # not Bo's to decline
        board.decline(session, other.id, ids["ana"], now=MONDAY)  # no reason needed
        assert other.state == "declined"
        assert session.scalar(select(Decline.board_task_id).where(Decline.member_id == ids["ana"])) == task.id
        with pytest.raises(Conflict, match="declined this task"):
            board.suggest(session, shift.id, open_place.id, ids["ana"], "again", now=MONDAY)
        # She may still opt in herself: a decline only stops the planner asking.
        assert board.take(session, ids["ana"], shift.id, open_place.id, now=MONDAY).state == "taken"


def test_opting_in_wins_over_an_unanswered_suggestion_which_lapses_in_a_day(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        task = board.post(
            session, board.parse_draft(solar(slots=[{}, {}])), member_id=None, account="x", now=MONDAY
        )
        (shift,), (first, second) = places(session, task.id)
        asked = board.suggest(session, shift.id, first.id, ids["bo"], "near", now=MONDAY)
        board.take(session, ids["ana"], shift.id, first.id, now=MONDAY)
        assert asked.state == "released"
        assert "someone else took" in alerts(session, ids["bo"])[-1]["text"]
        late = board.suggest(session, shift.id, second.id, ids["bo"], "near", now=MONDAY)
        assert board.lapse_unanswered(session, MONDAY + timedelta(hours=2)) == 0
        assert board.lapse_unanswered(session, MONDAY + timedelta(hours=board.SUGGESTION_TTL_H)) == 1
        assert late.state == "lapsed"


def test_a_cancelled_task_tells_everyone_signed_up_and_frees_their_hours(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        task = board.post(session, board.parse_draft(solar()), member_id=None, account="x", now=MONDAY)
        (shift,), (skilled, open_place) = places(session, task.id)
        board.take(session, ids["bo"], shift.id, skilled.id, now=MONDAY)
        board.suggest(session, shift.id, open_place.id, ids["ana"], "near", now=MONDAY)
        assert board.cancel(session, task.id, "the panels did not arrive", now=MONDAY) == 2
        for member in ("ana", "bo"):
            last = alerts(session, ids[member])[-1]
            assert last["type"] == "task_cancelled" and "panels did not arrive" in last["text"]
        assert hours.weekly_load(session, hours.week_start(shift.starts_at)) == {}
        with pytest.raises(Conflict, match="already cancelled"):
            board.cancel(session, task.id, "", now=MONDAY)
        with pytest.raises(Conflict, match="cancelled"):
            board.take(session, ids["ana"], shift.id, open_place.id, now=MONDAY)


def test_a_time_change_frees_the_places_and_tells_the_people(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        task = board.post(session, board.parse_draft(solar()), member_id=None, account="x", now=MONDAY)
        (shift,), (skilled, _) = places(session, task.id)
        signup = board.take(session, ids["bo"], shift.id, skilled.id, now=MONDAY)
        board.change(session, task.id, {"title": "Solar retrofit (bring gloves)"}, now=MONDAY)
        assert signup.state == "taken" and alerts(session, ids["bo"])[-1]["type"] == "task_changed"
        board.change(
            session, task.id, {"starts_at": "2026-12-08T13:00Z", "ends_at": "2026-12-08T16:00Z"}, now=MONDAY
        )
        assert signup.state == "released"
        assert "time changed" in alerts(session, ids["bo"])[-1]["text"]
        shifts, _ = places(session, task.id)
        assert [(s.starts_at.hour, s.status) for s in shifts] == [(9, "cancelled"), (13, "open")]
        with pytest.raises(InvalidInput, match="cannot be changed"):
            board.change(session, task.id, {"sector": "food"}, now=MONDAY)


def test_a_shift_over_counts_the_hours_given_and_urgent_places_are_found_once(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        task = board.post(session, board.parse_draft(solar()), member_id=None, account="x", now=MONDAY)
        (shift,), (skilled, open_place) = places(session, task.id)
        soon = shift.starts_at - timedelta(hours=1)
        urgent = board.urgent_unfilled(session, soon)
        assert [(s.id, p.id) for s, p, _ in urgent] == [(shift.id, skilled.id), (shift.id, open_place.id)]
        assert board.urgent_unfilled(session, shift.starts_at - timedelta(hours=3)) == []
        assert board.alert_urgent(session, shift, skilled, task, [ids["bo"], ids["bo"]], now=soon) == 1
        assert alerts(session, ids["bo"])[-1]["type"] == "slot_urgent"
        assert board.urgent_unfilled(session, soon) == []  # told once
        signup = board.take(session, ids["bo"], shift.id, skilled.id, now=soon)
        assert board.finish_past(session, shift.ends_at + timedelta(minutes=1)) == 1
        assert signup.state == "done" and task.status == "done"
        entry = session.scalar(
            select(HoursEntry).where(HoursEntry.work == "task", HoursEntry.work_id == signup.id)
        )
        assert entry is not None and (entry.state, entry.actual_hours) == ("done", 3.0)


def test_the_calendar_secret_opens_only_its_member(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        ana = session.get(Member, ids["ana"])
        assert ana is not None
        token = board.calendar_token(session, ana)
        assert board.calendar_token(session, ana) == token and len(token) >= 32
        assert board.member_by_token(session, token) is ana
        other_last = "y" if token.endswith("x") else "x"  # a token ends in "x" one time in 64
        assert board.member_by_token(session, token[:-1] + other_last) is None
        assert board.member_by_token(session, "") is None
        fresh = board.reset_calendar_token(session, ana)
        assert fresh != token and board.member_by_token(session, token) is None


def test_series_take_skips_the_dates_that_do_not_fit(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        ana = session.get(Member, ids["ana"])
        assert ana is not None
        ana.away = [{"from": "2026-12-15", "to": "2026-12-15"}]
        raw = solar(
            sector="food",
            starts_at="2026-12-07T00:00:00Z",
            ends_at="2026-12-31T00:00:00Z",
            recurrence={"days": [1], "start": "09:00", "end": "12:00"},
            slots=[{}],
        )
        task = board.post(session, board.parse_draft(raw), member_id=None, account="x", now=MONDAY)
        _, (place,) = places(session, task.id)
        taken, skipped = board.take_series(session, ids["ana"], place.id, now=MONDAY)
        assert [s.shift_id for s in taken] and len(taken) == 3
        assert [(s.starts_at.day, why) for s, why in skipped] == [
            (15, "you said you are away from 2026-12-15 to 2026-12-15")
        ]
        assert session.scalar(select(SlotSignup.state).where(SlotSignup.id == taken[0].id)) == "taken"


def test_the_demo_board_has_work_in_every_sector_and_is_posted_once(store: Store) -> None:
    from gateway.store.models import BoardTask
    from gateway.store.models.vocab import BOARD_SECTORS
    from gateway.store.sample_board import post_sample_tasks

    sessions, _ = store
    with sessions.begin() as session:
        assert post_sample_tasks(session, MONDAY) == 2 * 6  # the tiny region's two communities
        assert set(session.scalars(select(BoardTask.sector))) == set(BOARD_SECTORS)
        assert post_sample_tasks(session, MONDAY) == 0
        assert session.scalar(select(TaskShift.id).limit(1)) is not None
