"""The hours ledger and remembered declines, written by the task and route lifecycles; dead routes move
nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.errors import Conflict, NotFound
from gateway.store import declines, deliveries, hours, stock, tasks
from gateway.store.models import Decline, HoursEntry, RepairTask, Route, Shipment, utcnow
from gateway.store.models.vocab import HoursState, WorkKind
from gateway.store.tasks import TaskAction
from tests.conftest import Store
from tests.test_lifecycles import fill


@pytest.fixture
def lifecycle_store(store: Store) -> Store:
    sessions, _ = store
    with sessions.begin() as session:
        ids = fill(session)
    return sessions, ids


def _entry(session: Session, work: WorkKind, work_id: int) -> HoursEntry:
    row = session.scalar(select(HoursEntry).where(HoursEntry.work == work, HoursEntry.work_id == work_id))
    assert row is not None
    return row


def _offer_route(session: Session, ids: dict[str, int], hours_planned: float = 1.5) -> None:
    now = utcnow()
    hours.offer(
        session,
        ids["ana"],
        WorkKind.ROUTE,
        ids["route"],
        "other",
        hours_planned,
        now,
        now + timedelta(hours=hours_planned),
    )


def test_a_repair_counts_offered_then_actual_hours_from_acceptance_to_fixed(lifecycle_store: Store) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        task = session.get(RepairTask, ids["task"])
        assert task is not None
        task.status = "open"
        start = utcnow()
        tasks.apply(
            session,
            task,
            TaskAction.ASSIGN,
            member_id=ids["ana"],
            explanation="near",
            window=(start, start + timedelta(hours=2)),
        )
        entry = _entry(session, WorkKind.REPAIR, task.id)
        assert (entry.state, entry.hours, entry.sector) == ("offered", 2.0, "maintenance")
        week = hours.week_start(start)
        assert hours.weekly_load(session, week) == {ids["ana"]: 2.0}
        accepted = start + timedelta(minutes=5)
        tasks.apply(session, task, TaskAction.ACCEPT, member_id=ids["ana"], at=accepted)
        assert entry.state == "reserved"
        tasks.apply(session, task, TaskAction.START, member_id=ids["ana"], at=accepted)
        tasks.apply(session, task, TaskAction.FIXED, member_id=ids["ana"], at=accepted + timedelta(hours=3))
        assert (entry.state, entry.actual_hours) == ("done", 3.0)
        assert hours.weekly_load(session, week) == {ids["ana"]: 3.0}  # actual hours once done
        assert hours.yearly_sector_load(session, hours.year_start(start)) == {
            ids["ana"]: {"maintenance": 3.0}
        }


def test_a_declined_task_releases_the_hours_and_is_remembered_for_seven_days(lifecycle_store: Store) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        task = session.get(RepairTask, ids["task"])
        assert task is not None
        task.status = "open"
        tasks.apply(session, task, TaskAction.ASSIGN, member_id=ids["ana"], explanation="near")
        tasks.decline(session, task.id, ids["ana"], "sick this week")
        assert _entry(session, WorkKind.REPAIR, task.id).state == HoursState.RELEASED
        assert hours.weekly_load(session, hours.week_start(utcnow())) == {}
        held = declines.active(session)
        assert [(d.member_id, d.task_id, d.reason) for d in held] == [(ids["ana"], task.id, "sick this week")]
        assert declines.declined_tasks(held) == {task.id: {ids["ana"]}}
        assert declines.active(session, utcnow() + timedelta(days=7, seconds=1)) == []
        declines.ask_again(session, held[0].id, ids["ana"])
        assert declines.active(session) == []
        with pytest.raises(Conflict, match="already asked"):
            declines.ask_again(session, held[0].id, ids["ana"])
        with pytest.raises(NotFound):
            declines.ask_again(session, held[0].id, ids["ana"] + 1)


def test_a_route_counts_from_its_first_pickup_to_its_last_stop(lifecycle_store: Store) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        _offer_route(session, ids)
        deliveries.accept_route(session, ids["route"])
        entry = _entry(session, WorkKind.ROUTE, ids["route"])
        assert entry.state == "reserved" and entry.started_at is None
        deliveries.record_stop(session, ids["route"], ids["pickup"], "done")
        assert entry.started_at is not None
        deliveries.record_stop(session, ids["route"], ids["drop"], "done")
        assert entry.state == "done" and entry.actual_hours is not None and entry.actual_hours < 0.01


def test_a_declined_route_releases_hours_and_remembers_its_lanes(lifecycle_store: Store) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        _offer_route(session, ids)
        deliveries.accept_route(session, ids["route"])
        assert deliveries.decline_route(session, ids["route"], "car broke") == [ids["shipment"]]  # a release
        assert _entry(session, WorkKind.ROUTE, ids["route"]).state == "released"
        lanes = declines.declined_lanes(declines.active(session))
        shipment = session.get(Shipment, ids["shipment"])
        assert shipment is not None
        assert lanes == {(shipment.good_id, shipment.from_site_id, shipment.to_site_id): {ids["ana"]}}


@pytest.mark.parametrize("revised", [True, False])
def test_a_superseded_or_withdrawn_route_refuses_every_action_and_moves_no_stock(
    lifecycle_store: Store, revised: bool
) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        _offer_route(session, ids)
        old = session.get(Route, ids["route"])
        assert old is not None
        new = Route(plan_id=old.plan_id, member_id=ids["ana"], status="proposed", replaces_id=old.id)
        session.add(new)
        session.flush()
        held = stock.held(session, ids["jayuya_hub"], ids["water"])
        freed = deliveries.retire_route(session, old.id, new.id if revised else None)
        assert freed == [ids["shipment"]]
        assert _entry(session, WorkKind.ROUTE, old.id).state == "released"
        message = f"replaced by a revised one \\(route {new.id}\\)" if revised else "the planner withdrew"
        with pytest.raises(Conflict, match=message):
            deliveries.record_stop(session, old.id, ids["pickup"], "done")
        for act in (deliveries.accept_route,):
            with pytest.raises(Conflict, match=message):
                act(session, old.id)
        with pytest.raises(Conflict, match=message):
            deliveries.decline_route(session, old.id, "no")
        assert stock.held(session, ids["jayuya_hub"], ids["water"]) == held
        assert session.scalars(select(Decline)).all() == []


def test_a_stop_whose_shipment_left_the_route_records_nothing(lifecycle_store: Store) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        shipment = session.get(Shipment, ids["shipment"])
        assert shipment is not None
        shipment.route_id = None
        held = stock.held(session, ids["jayuya_hub"], ids["water"])
        with pytest.raises(Conflict, match="no longer on this route"):
            deliveries.record_stop(session, ids["route"], ids["pickup"], "done")
        assert stock.held(session, ids["jayuya_hub"], ids["water"]) == held


def test_the_allocation_revises_and_cancels_only_shipments_on_no_route(lifecycle_store: Store) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        with pytest.raises(Conflict, match="only a shipment on no route can be revised"):
            deliveries.revise_quantity(session, ids["shipment"], 50)
        assert deliveries.cancel_planned(session, [ids["shipment"]], "not needed") == []
        deliveries.decline_route(session, ids["route"], "no car")
        assert deliveries.revise_quantity(session, ids["shipment"], 60).quantity == 60
        assert deliveries.cancel_planned(session, [ids["shipment"]], "need met") == [ids["shipment"]]
        shipment = session.get(Shipment, ids["shipment"])
        assert shipment is not None and (shipment.status, shipment.failure_reason) == (
            "cancelled",
            "need met",
        )


def test_a_repair_accepted_early_counts_from_its_planned_start(lifecycle_store: Store) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        task = session.get(RepairTask, ids["task"])
        assert task is not None
        task.status = "open"
        planned = utcnow() + timedelta(hours=20)
        tasks.apply(
            session,
            task,
            TaskAction.ASSIGN,
            member_id=ids["ana"],
            explanation="near",
            window=(planned, planned + timedelta(hours=2)),
        )
        tasks.apply(session, task, TaskAction.ACCEPT, member_id=ids["ana"], at=utcnow())
        tasks.apply(session, task, TaskAction.START, member_id=ids["ana"], at=planned)
        tasks.apply(session, task, TaskAction.FIXED, member_id=ids["ana"], at=planned + timedelta(hours=1.5))
        assert _entry(session, WorkKind.REPAIR, task.id).actual_hours == 1.5  # not the night before


def test_a_route_revised_twice_points_at_the_live_one(lifecycle_store: Store) -> None:
    sessions, ids = lifecycle_store
    with sessions.begin() as session:
        first = session.get_one(Route, ids["route"])
        second = Route(plan_id=first.plan_id, member_id=ids["ana"], status="proposed", replaces_id=first.id)
        session.add(second)
        session.flush()
        deliveries.retire_route(session, first.id, second.id)
        third = Route(plan_id=first.plan_id, member_id=ids["ana"], status="proposed", replaces_id=second.id)
        session.add(third)
        session.flush()
        deliveries.retire_route(session, second.id, third.id)
        assert deliveries.replacement(session, first) == third.id
        with pytest.raises(Conflict, match=f"\\(route {third.id}\\)"):
            deliveries.accept_route(session, first.id)
