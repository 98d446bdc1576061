"""The board's matcher against the store: open places and members loaded with their offers and loads, each
suggestion written through the store's checks (never beyond an offer, never to someone who declined),
urgent places told to suited people nearby once, and the board kept in time (lapses, shifts done)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.clock import now as clock_now
from gateway.contract.topics import member_alerts_topic
from gateway.store import board
from gateway.store.models import Member, MemberSkill, OutboxMessage, SlotSignup, TaskShift, TaskSlot
from gateway.store.region import load_region
from logistics.loaders.tasks import alert_urgent, housekeep, load_match_input, save_match_plan
from logistics.tasks import solve_match
from tests.conftest import Store, tiny_region_data


def fill(session: Session) -> dict[str, int]:
    """The tiny region, Ana (pump mechanic, 4 h a week) and Bo (electrician, 6 h a week), both in Utuado."""
    load_region(session, tiny_region_data())
    ana = session.scalar(select(Member).where(Member.name == "Ana"))
    assert ana is not None
    bo = Member(
        name="Bo", community_id=ana.community_id, lat=18.28, lon=-66.71, is_crew=True, hours_per_week=6
    )
    session.add(bo)
    session.flush()
    session.add(MemberSkill(member_id=bo.id, skill="electrician"))
    return {"ana": ana.id, "bo": bo.id}


def _post(session: Session, starts_in_h: float, hours: float = 3.0, **changes: Any) -> int:
    start = clock_now() + timedelta(hours=starts_in_h)
    raw: dict[str, Any] = {
        "title": "Solar retrofit",
        "sector": "maintenance",
        "community": "utuado",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "slots": [{"skill": "electrician"}, {"newcomer": True}],
    }
    raw.update(changes)
    task = board.post(session, board.parse_draft(raw), member_id=None, account="t", now=clock_now())
    return task.id


def _alerts(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(OutboxMessage.payload).where(OutboxMessage.topic == member_alerts_topic(member_id))
    )
    return [json.loads(p) for p in rows]


def _match(session: Session) -> int:
    now = clock_now()
    plan = solve_match(load_match_input(session, now), time_limit_s=5)
    return save_match_plan(session, plan, now)


def test_open_places_get_suited_people_who_then_answer(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        task_id = _post(session, starts_in_h=30)
    with sessions.begin() as session:
        data = load_match_input(session, clock_now())
        assert {(p.skill, p.newcomer) for p in data.places} == {("electrician", False), (None, True)}
        assert {v.id for v in data.volunteers} == {ids["ana"], ids["bo"]}
        assert _match(session) == 2
    with sessions.begin() as session:
        signups = session.scalars(select(SlotSignup)).all()
        skilled = session.scalar(
            select(TaskSlot.id).where(TaskSlot.task_id == task_id, TaskSlot.skill == "electrician")
        )
        by_slot = {s.slot_id: s for s in signups}
        assert by_slot[skilled].member_id == ids["bo"] and by_slot[skilled].state == "suggested"
        assert {s.member_id for s in signups} == {ids["ana"], ids["bo"]}  # one place each: load spread
        assert any(a["type"] == "task_suggested" for a in _alerts(session, ids["bo"]))
        ana_signup = next(s for s in signups if s.member_id == ids["ana"])
        board.decline(session, ana_signup.id, ids["ana"], now=clock_now())
    with sessions.begin() as session:
        now = clock_now()
        plan = solve_match(load_match_input(session, now), time_limit_s=5)
        # Ana said no to the task and Bo is in the other place at that very time: nobody is asked
        assert plan.suggestions == () and len(plan.unmatched) == 1
        assert save_match_plan(session, plan, now) == 0


def test_nobody_is_suggested_beyond_their_weekly_pledge(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        _post(session, starts_in_h=30, hours=5.0)  # 5 h: Ana pledges 4 h a week, Bo 6 h
    with sessions.begin() as session:
        _match(session)
        members = {s.member_id for s in session.scalars(select(SlotSignup))}
        assert members == {ids["bo"]}
        assert session.scalar(select(Member.hours_per_week).where(Member.id == ids["ana"])) == 4


def test_an_urgent_place_is_told_once_to_suited_people_nearby(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        _post(session, starts_in_h=1.0, hours=1.0)
    with sessions.begin() as session:
        assert load_match_input(session, clock_now()).places == ()  # too soon to ask and wait: urgent instead
        told = alert_urgent(session, clock_now())
        assert told == 2  # Bo for the electrician's place, Ana for the newcomer's: each once
        texts = [a["text"] for a in _alerts(session, ids["bo"]) if a["type"] == "slot_urgent"]
        assert len(texts) == 1 and texts[0].startswith("Starting soon, nobody yet: Solar retrofit")
    with sessions.begin() as session:
        assert alert_urgent(session, clock_now()) == 0  # once per shift


def test_time_passing_lapses_suggestions_and_counts_past_shifts(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        _post(session, starts_in_h=30)
        _match(session)
    later = clock_now() + timedelta(hours=29)  # within two hours of the start: unanswered ones lapse
    with sessions.begin() as session:
        kept = housekeep(session, later)
        assert kept.lapsed == 2
    with sessions.begin() as session:  # a day later: a suggestion that lapsed is not repeated
        places = load_match_input(session, clock_now() + timedelta(hours=24)).places
        assert {p.skill: p.excluded for p in places} == {"electrician": {ids["bo"]}, None: {ids["ana"]}}
    with sessions.begin() as session:
        shift = session.scalar(select(TaskShift))
        slot = session.scalar(select(TaskSlot).where(TaskSlot.skill == "electrician"))
        assert shift is not None and slot is not None
        board.take(session, ids["bo"], shift.id, slot.id, now=clock_now())
    with sessions.begin() as session:
        kept = housekeep(session, clock_now() + timedelta(hours=40))
        assert kept.counted == 1
        assert session.scalar(select(TaskShift.status)) == "done"
