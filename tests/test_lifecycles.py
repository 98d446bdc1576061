"""The lifecycle tables (repair task, shipment, route) and their one writers, checked on a tiny store."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.errors import Conflict, InvalidInput, NotFound
from gateway.contract.topics import INTERNAL_EVENTS
from gateway.store import deliveries, stock, tasks
from gateway.store.deliveries import ROUTE_TRANSITIONS, SHIPMENT_TRANSITIONS, RouteAction, ShipmentAction
from gateway.store.models import (
    Community,
    DeliveryPlan,
    Device,
    Good,
    Member,
    OutboxMessage,
    RepairTask,
    Route,
    RouteStop,
    Shipment,
    Site,
    Stock,
    StockLedgerEntry,
    TaskEvent,
    utcnow,
)
from gateway.store.models.vocab import RouteStatus, ShipmentStatus, TaskStatus
from gateway.store.region import load_region
from gateway.store.tasks import TRANSITIONS, TaskAction
from tests.conftest import Store, tiny_region_data


def fill(session: Session) -> dict[str, int]:
    """The tiny region; a task assigned to Ana; a proposed route moving 100 L of water Jayuya -> Utuado."""
    load_region(session, tiny_region_data())
    ana = session.scalar(select(Member).where(Member.name == "Ana"))
    pump = session.scalar(select(Site).where(Site.slug == "pump-1"))
    water = session.scalar(select(Good).where(Good.slug == "water"))
    hubs: dict[str, Site] = {}
    for c in ("utuado", "jayuya"):
        hub = session.scalar(select(Site).join(Community).where(Community.slug == c, Site.slug == "hub"))
        assert hub is not None
        hubs[c] = hub
    assert ana and pump and water
    task = RepairTask(site_id=pump.id, title="Pump 1 dry", status="assigned", assigned_member_id=ana.id)
    plan = DeliveryPlan(status="proposed")
    session.add_all([task, plan])
    session.flush()
    shipment = Shipment(
        plan_id=plan.id,
        good_id=water.id,
        from_site_id=hubs["jayuya"].id,
        to_site_id=hubs["utuado"].id,
        quantity=100.0,
        status="planned",
    )
    route = Route(plan_id=plan.id, member_id=ana.id, status="proposed", distance_km=20)
    session.add_all([shipment, route])
    session.flush()
    deliveries.put_on_route(session, [shipment.id], route.id)
    stops = [
        RouteStop(route_id=route.id, position=n, site_id=hubs[c].id, action=a, shipment_id=shipment.id)
        for n, (c, a) in enumerate((("jayuya", "pickup"), ("utuado", "delivery")))
    ]
    session.add_all(stops)
    session.flush()
    return {
        "ana": ana.id,
        "task": task.id,
        "route": route.id,
        "shipment": shipment.id,
        "pickup": stops[0].id,
        "drop": stops[1].id,
        "water": water.id,
        "jayuya_hub": hubs["jayuya"].id,
        "device": session.scalars(select(Device.id).order_by(Device.id)).first() or 0,
    }


def test_every_task_state_but_closed_is_closed_by_the_data_and_closed_is_final() -> None:
    sources = {status for status, _ in TRANSITIONS}
    assert sources == set(TaskStatus) - {TaskStatus.CLOSED}
    assert {s for s, a in TRANSITIONS if a is TaskAction.CONFIRM} == sources
    assert set(tasks.SHOWN_TO_CREW) - set(tasks.HOLDS_A_SLOT) == {TaskStatus.FIXED_PENDING}
    assert tuple(tasks.TO_PLAN) == (TaskStatus.OPEN, TaskStatus.ESCALATED)
    assert set(tasks.EVENT_OF) == set(TaskAction)


def test_delivered_failed_and_cancelled_shipments_and_done_or_declined_routes_are_final() -> None:
    final = {ShipmentStatus.DELIVERED, ShipmentStatus.FAILED, ShipmentStatus.CANCELLED}
    assert not {s for s, _ in SHIPMENT_TRANSITIONS} & final
    assert {a for _, a in SHIPMENT_TRANSITIONS} == set(ShipmentAction)
    dead = {RouteStatus.DONE, RouteStatus.DECLINED, RouteStatus.SUPERSEDED, RouteStatus.WITHDRAWN}
    assert not {s for s, _ in ROUTE_TRANSITIONS} & dead
    assert set(deliveries.DEAD_ROUTE) == dead
    assert {a for _, a in ROUTE_TRANSITIONS} == set(RouteAction)


def _task_events(session: Session, task_id: int) -> list[tuple[str, int | None, str]]:
    rows = session.execute(
        select(TaskEvent.event, TaskEvent.member_id, TaskEvent.reason)
        .where(TaskEvent.task_id == task_id)
        .order_by(TaskEvent.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _internal(session: Session) -> list[dict[str, object]]:
    rows = session.scalars(select(OutboxMessage.payload).where(OutboxMessage.topic == INTERNAL_EVENTS))
    return [json.loads(p) for p in rows]


def test_a_task_moves_only_by_the_table_and_each_move_is_recorded(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        task = tasks.apply_action(session, ids["task"], ids["ana"], "accept")
        assert task.status == "accepted"
        with pytest.raises(Conflict, match="accepted but not started yet, so it cannot be marked fixed now"):
            tasks.apply_action(session, ids["task"], ids["ana"], "fixed")
        tasks.apply(session, task, TaskAction.CONFIRM, reason="readings normal for 300 s")
        assert (task.status, task.assigned_member_id) == ("closed", ids["ana"]) and task.closed_at
        with pytest.raises(Conflict, match="already fixed and closed, so it cannot be confirmed now"):
            tasks.apply(session, task, TaskAction.CONFIRM)
        assert _task_events(session, ids["task"]) == [
            ("accepted", ids["ana"], ""),
            ("confirmed", ids["ana"], "readings normal for 300 s"),
            ("closed", ids["ana"], ""),
        ]
        changed = [(e["type"], e["status"], e["member_id"]) for e in _internal(session)]
        assert changed == [("task_changed", "accepted", ids["ana"]), ("task_changed", "closed", ids["ana"])]


def test_a_member_action_names_its_errors(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        with pytest.raises(NotFound, match="unknown action 'confirm'"):
            tasks.apply_action(session, ids["task"], ids["ana"], "confirm")  # the gateway's, not a member's
        with pytest.raises(NotFound, match="no such task among yours"):
            tasks.apply_action(session, ids["task"], ids["ana"] + 1, "accept")
        with pytest.raises(InvalidInput, match="longer than 500"):
            tasks.decline(session, ids["task"], ids["ana"], "x" * 501)
        task = session.get(RepairTask, ids["task"])
        assert task is not None
        with pytest.raises(InvalidInput, match="assigned to a member"):
            tasks.apply(session, task, TaskAction.ASSIGN)
        assert _task_events(session, ids["task"]) == [] and task.status == "assigned"


def test_a_declined_route_frees_its_shipments_and_records_no_stop(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        assert deliveries.decline_route(session, ids["route"], "  no car this week ") == [ids["shipment"]]
        shipment = session.get(Shipment, ids["shipment"])
        assert shipment is not None and (shipment.status, shipment.route_id) == ("planned", None)
        assert shipment.failure_reason == f"route {ids['route']} declined: no car this week"
        with pytest.raises(Conflict, match="this route was declined: its shipments went back"):
            deliveries.record_stop(session, ids["route"], ids["pickup"], "done")
        with pytest.raises(Conflict, match="this route was declined"):
            deliveries.decline_route(session, ids["route"], "again")


def test_a_route_under_way_cannot_be_declined_and_ends_done(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        deliveries.record_stop(session, ids["route"], ids["pickup"], "done")
        route = session.get(Route, ids["route"])
        assert route is not None and route.status == "in_progress"
        with pytest.raises(Conflict, match="this route is in progress: only a route not started"):
            deliveries.decline_route(session, ids["route"], "tired")
        deliveries.record_stop(session, ids["route"], ids["drop"], "done")
        assert route.status == "done"
        kinds = [(e["type"], e["status"]) for e in _internal(session)]
        assert kinds == [("shipment_changed", "picked_up"), ("shipment_changed", "delivered")]


def test_stock_moves_write_one_ledger_row_each_and_never_go_below_zero(store: Store) -> None:
    sessions, ids = store
    site, water = ids["jayuya_hub"], ids["water"]
    with sessions.begin() as session:
        held = stock.held(session, site, water)
        with pytest.raises(Conflict, match=f"the site holds only {held:g} of this good"):
            stock.move(session, site, water, -(held + 1), "too much", ids["shipment"])
        assert stock.move(session, site, water, -0.1, "a sip", ids["shipment"]) == held - 0.1
        assert not stock.report_level(session, site, water, held - 0.1, ids["device"], 7, utcnow())
        assert stock.report_level(session, site, water, 5.0, ids["device"], 8, utcnow())
        session.flush()
        rows = session.execute(
            select(StockLedgerEntry.delta, StockLedgerEntry.quantity_after, StockLedgerEntry.source)
            .where(StockLedgerEntry.site_id == site, StockLedgerEntry.good_id == water)
            .order_by(StockLedgerEntry.id)
        ).all()
        assert [tuple(r) for r in rows] == [
            (held, held, "initial"),
            (-0.1, held - 0.1, "delivery"),
            (5.0 - (held - 0.1), 5.0, "sensor"),
        ]
        level = session.get(Stock, (site, water))
        assert level is not None and level.quantity == 5.0
