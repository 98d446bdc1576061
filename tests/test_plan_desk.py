"""The coordinator's desk, store and planner side: each run's summary (coverage, why shortages go unmet),
pause and re-plan honoured by the loop, routes held for approval and released, the audit trail."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.topics import member_routes_topic
from gateway.process.cli import main
from gateway.store import audit, planner
from gateway.store.db import make_session_factory
from gateway.store.models import Member, OutboxMessage, PlanRun, Route, Vehicle, utcnow
from gateway.store.region import load_region
from logistics import service
from logistics.allocation.data import AllocationInput, AllocationPlan, GoodInfo, Holding, Place
from logistics.allocation.report import NO_SURPLUS, NOT_ENOUGH, UNREACHABLE, coverage_by, shortfalls
from tests.conftest import tiny_region_data


def desk_region() -> dict[str, Any]:
    """The tiny region (Utuado short of water, Jayuya with plenty) plus two shortages no plan can meet:
    insulin that spoils before it reaches Utuado, and diesel nobody has."""
    data = tiny_region_data()
    data["goods"] += [
        {
            "slug": "insulin",
            "name": "Insulin",
            "unit": "vial",
            "sector": "health",
            "essential": True,
            "perishability_hours": 0.05,
            "weight_kg_per_unit": 0.1,
        },
        {"slug": "diesel", "name": "Diesel", "unit": "L", "sector": "energy", "weight_kg_per_unit": 0.85},
    ]
    utuado, jayuya = data["communities"]
    utuado["needs"] |= {"insulin": {"minimum": 10, "target": 20}, "diesel": {"minimum": 100, "target": 200}}
    jayuya["sites"][0]["stock"]["insulin"] = 500
    return data


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    with factory.begin() as session:
        load_region(session, desk_region())
        session.execute(update(Vehicle).values(capacity_kg=5000.0))
        session.execute(update(Member).values(hours_per_week=40))
    return factory


def test_the_report_names_why_each_shortage_goes_unmet() -> None:
    places = [Place(1, "A", 18.0, -66.0), Place(2, "B", 18.1, -66.0), Place(3, "C", 18.2, -66.0)]
    goods = [GoodInfo(1, "water", "water"), GoodInfo(2, "diesel", "energy"), GoodInfo(3, "milk", "food")]
    data = AllocationInput(
        places,
        goods,
        [
            Holding(1, 1, 0, 10, 20),  # short of water, 20 needed
            Holding(2, 1, 25, 0, 20),  # 5 to give
            Holding(1, 2, 0, 10, 20),  # short of diesel, nobody has any
            Holding(3, 3, 0, 5, 10),  # short of milk; B has some but out of reach
            Holding(2, 3, 50, 0, 0),
        ],
    )
    plan = AllocationPlan(
        shipments=(),
        coverage={(1, 1): 0.25, (1, 2): 0.0, (3, 3): 0.0},
        min_coverage=0.0,
        status="Optimal",
        objective=0.0,
        unreachable=((1, 2), (3, 3)),
    )
    found = {(s.community, s.good): s for s in shortfalls(data, plan)}
    assert found[1, 1].reason == NOT_ENOUGH and (found[1, 1].need, found[1, 1].planned) == (20.0, 5.0)
    assert found[1, 2].reason == NO_SURPLUS and found[3, 3].reason == UNREACHABLE
    by_good = coverage_by(list(found.values()), "good")
    assert by_good["1"] == {"need": 20.0, "planned": 5.0, "shortages": 1, "unmet": 1, "share_sum": 0.25}
    with pytest.raises(ValueError, match="grouped by good or community"):
        coverage_by([], "driver")


def test_a_delivery_run_records_coverage_and_the_reasons(sessions: sessionmaker[Session]) -> None:
    run = service.deliveries_once(sessions, 20.0, trigger="coordinator", route_time_s=5.0)
    with sessions() as session:
        row = session.get(PlanRun, run.run_id)
        assert row is not None and (row.outcome, row.trigger, row.plan_id) == (
            "planned",
            "coordinator",
            run.plan.plan_id,
        )
        goods = {g["slug"]: i + 1 for i, g in enumerate(desk_region()["goods"])}
        why = {s["good"]: s["reason"] for s in row.shortfalls}
        assert why == {goods["water"]: None, goods["insulin"]: UNREACHABLE, goods["diesel"]: NO_SURPLUS}
        assert row.shortfalls[0]["reason"] is not None  # the unmet first
        summary = row.summary
        assert summary["reasons"] == {UNREACHABLE: 1, NO_SURPLUS: 1}
        assert summary["shipments"] >= 1 and summary["kg"] > 0
        water = summary["by_good"][str(goods["water"])]
        assert water["planned"] == pytest.approx(water["need"]) and water["unmet"] == 0
        assert summary["routes"]["new"] >= 1  # Ana's truck carries the water


def test_a_failed_run_is_recorded(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kw: Any) -> Any:
        raise service.PlanningError("allocation", "Infeasible", "a test")

    monkeypatch.setattr(service, "solve_allocation", broken)
    with pytest.raises(service.PlanningError):
        service.deliveries_once(sessions, 5.0)
    with sessions() as session:
        row = planner.latest_run(session)
        assert row is not None and row.outcome == "failed" and "Infeasible" in row.error


@pytest.fixture
def loop(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The planner loop in a thread with an hour's timer (only a request or an event makes it run again)."""
    monkeypatch.setattr(service, "CONTROL_POLL_S", 0.1)
    stop = threading.Event()
    thread = threading.Thread(target=service.run_loop, args=(sessions, 3600.0, 10.0, stop))
    thread.start()
    yield stop
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()


def wait_for(
    sessions: sessionmaker[Session], outcome: str, count: int, seconds: float = 60.0
) -> list[PlanRun]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with sessions() as session:
            runs = list(
                session.scalars(select(PlanRun).where(PlanRun.outcome == outcome).order_by(PlanRun.id))
            )
        if len(runs) >= count:
            return runs
        time.sleep(0.1)
    raise AssertionError(f"no {count} {outcome} runs in {seconds} s")


def test_pause_stops_the_loop_and_resuming_with_a_request_plans_again(
    sessions: sessionmaker[Session], loop: threading.Event
) -> None:
    first = wait_for(sessions, "planned", 1)
    assert first[0].trigger == "start"
    with sessions.begin() as session:
        assert planner.set_paused(session, True, "coord")
        planner.request_replan(session, "coord")  # asked while paused: kept until resumed
    paused = wait_for(sessions, "paused", 1)
    for _ in range(10):  # a second of a paused loop with a request pending: no run
        time.sleep(0.1)
        with sessions() as session:
            assert len(list(session.scalars(select(PlanRun).where(PlanRun.outcome == "planned")))) == 1
            assert planner.controls(session).replan_requested_at is not None  # kept for the resume
    with sessions.begin() as session:
        assert planner.set_paused(session, False, "coord")
    again = wait_for(sessions, "planned", 2)
    assert again[1].trigger == "coordinator" and again[1].id > paused[0].id
    with sessions() as session:
        assert planner.controls(session).replan_requested_at is None
        kinds = [e.kind for e in audit.recent(session, 10)]
    assert kinds.count("plan_paused") == 1 and "plan_resumed" in kinds and "plan_requested" in kinds


def test_a_replan_request_wakes_the_waiting_loop(
    sessions: sessionmaker[Session], loop: threading.Event
) -> None:
    wait_for(sessions, "planned", 1)
    with sessions.begin() as session:
        planner.request_replan(session, "coord", "127.0.0.1")
    runs = wait_for(sessions, "planned", 2, seconds=30.0)
    assert runs[1].trigger == "coordinator"


def route_notices(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(OutboxMessage.payload).where(OutboxMessage.topic == member_routes_topic(member_id))
    )
    return [json.loads(p) for p in rows]


def test_routes_wait_for_approval_when_required_and_approval_offers_them(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        assert planner.set_require_approval(session, True, "coord")
        assert not planner.set_require_approval(session, True, "coord")  # already so: nothing written
        ana = session.scalar(select(Member.id).where(Member.name == "Ana"))
        assert ana is not None
    service.deliveries_once(sessions, 20.0, route_time_s=5.0)
    with sessions() as session:
        held = list(session.scalars(select(Route).where(Route.status == "proposed")))
        assert held and all(r.held_notice is not None for r in held)
        assert route_notices(session, ana) == []  # the driver is told nothing yet
        assert planner.held_count(session) == len(held)
    with sessions.begin() as session:
        assert planner.approve(session, "coord", "127.0.0.1") == len(held)
    with sessions() as session:
        notices = route_notices(session, ana)
        assert sorted(n["route"] for n in notices) == sorted(r.id for r in held)
        assert {n["event"] for n in notices} == {"route_planned"}
        assert planner.held_count(session) == 0
        assert session.scalars(select(Route.held_notice).where(Route.status == "proposed")).all() == [
            None
        ] * len(held)
        assert planner.controls(session).approved_by == "coord"
        kinds = [e.kind for e in audit.recent(session, 10)]
    assert kinds.count("plan_approval_set") == 1 and "plan_approved" in kinds


def test_by_default_routes_go_to_drivers_at_once(sessions: sessionmaker[Session]) -> None:
    service.deliveries_once(sessions, 20.0, route_time_s=5.0)
    with sessions() as session:
        routes = list(session.scalars(select(Route)))
        assert routes and all(r.held_notice is None for r in routes)
        assert {n["route"] for n in route_notices(session, routes[0].member_id or 0)} >= {routes[0].id}


def test_bad_runs_are_refused_and_old_runs_are_dropped(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner, "RUNS_KEPT", 3)
    with sessions.begin() as session:
        with pytest.raises(ValueError, match="outcome"):
            planner.record_run(session, utcnow(), "timer", "maybe")
        with pytest.raises(ValueError, match="trigger"):
            planner.record_run(session, utcnow(), "whim", "paused")
        ids = [planner.record_run(session, utcnow(), "timer", "paused") for _ in range(5)]
    with sessions() as session:
        assert [r.id for r in planner.recent_runs(session)] == ids[:1:-1]


def test_rhizome_plan_once_is_recorded_for_the_desk(
    sessions: sessionmaker[Session], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--db", database_url, "plan", "--time-limit", "10"]) == 0
    assert "min coverage" in capsys.readouterr().out
    with sessions() as session:
        run = planner.latest_run(session)
        assert run is not None and (run.outcome, run.trigger) == ("planned", "command")
        assert run.summary["routes"] is None and run.summary["reasons"] == {UNREACHABLE: 1, NO_SURPLUS: 1}
