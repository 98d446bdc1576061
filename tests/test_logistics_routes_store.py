"""Routing the proposal's shipments from the store: routes, ordered stops, notices, reasons, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.contract.topics import member_routes_topic
from gateway.process.cli import main
from gateway.store.db import make_session_factory
from gateway.store.models import (
    Community,
    DeliveryPlan,
    Good,
    HoursEntry,
    Member,
    OutboxMessage,
    Route,
    RouteStop,
    Shipment,
    Site,
    Vehicle,
)
from logistics.loaders.routing import LEAD_MIN, MAX_OPEN_ROUTES, SLOT_HORIZON_H, load_routing_input
from logistics.service import route_once
from tests.conftest import Store

MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # the planning clock of these tests


def fill(session: Session) -> dict[str, int]:
    """Three towns on a meridian, a driver with a 1,000 kg pickup in the first, a plan of three shipments."""
    rice = Good(slug="rice", name="Rice", unit="kg", sector="food", weight_kg_per_unit=1.0)
    water = Good(slug="water", name="Water", unit="L", sector="water", weight_kg_per_unit=1.0)
    session.add_all([rice, water])
    ids: dict[str, int] = {}
    for slug, lat in [("north", 18.40), ("middle", 18.30), ("south", 18.20)]:
        town = Community(slug=slug, name=slug.title(), lat=lat, lon=-66.5)
        town.sites = [Site(slug="hub", name="Hub", kind="storage", lat=lat, lon=-66.5)]
        session.add(town)
        session.flush()
        ids[slug] = town.sites[0].id
    driver = Member(name="Dora", community_id=1, lat=18.41, lon=-66.5, is_driver=True, hours_per_week=6)
    session.add(driver)
    session.flush()
    session.add(Vehicle(name="pickup", kind="pickup", capacity_kg=1000, member_id=driver.id, community_id=1))
    plan = DeliveryPlan(status="proposed")
    session.add(plan)
    session.flush()
    session.flush()
    shipments = [
        Shipment(
            plan_id=plan.id, good_id=rice.id, from_site_id=ids["north"], to_site_id=ids["south"], quantity=400
        ),
        Shipment(
            plan_id=plan.id,
            good_id=water.id,
            from_site_id=ids["north"],
            to_site_id=ids["middle"],
            quantity=500,
        ),
        Shipment(
            plan_id=plan.id,
            good_id=water.id,
            from_site_id=ids["middle"],
            to_site_id=ids["south"],
            quantity=5000,
        ),
    ]
    session.add_all(shipments)
    session.flush()
    ids |= {"driver": driver.id, "plan": plan.id} | {f"shipment{i}": s.id for i, s in enumerate(shipments)}
    return ids


def test_loader_turns_shipments_into_kg_requests_and_drivers_into_vehicles(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        job = load_routing_input(session, now=MONDAY)
    assert job is not None and job.data is not None
    data, keys = job.data, job.keys
    assert [r.load for r in data.requests] == [400, 500, 5000]
    assert keys.shipments == (ids["shipment0"], ids["shipment1"], ids["shipment2"])
    # Her 6 h a week fill one slot; routes start within SLOT_HORIZON_H, so next week's hours wait for it.
    (vehicle,) = data.vehicles
    assert vehicle.capacity == 1000 and vehicle.max_duration == 6 * 60  # the driver gives 6 h a week
    assert vehicle.shift_start == LEAD_MIN  # time to see the route and accept it before it starts
    assert vehicle.shift_end <= SLOT_HORIZON_H * 60
    assert data.duration is not None and data.duration[1, 3] == pytest.approx(0.0)  # two pickups at one hub


def test_route_once_writes_routes_stops_and_a_notice(store: Store) -> None:
    sessions, ids = store
    run = route_once(sessions, time_limit_s=1.0, now=MONDAY)
    assert run.plan is not None and run.written == 1
    with sessions.begin() as session:
        route = session.scalars(select(Route)).one()
        assert route.member_id == ids["driver"] and route.distance_km > 0
        assert route.starts_at is not None and route.ends_at is not None
        assert route.starts_at.replace(tzinfo=UTC) == MONDAY + timedelta(minutes=LEAD_MIN)
        assert (route.ends_at - route.starts_at).total_seconds() / 60 == pytest.approx(
            route.duration_min, 0.01
        )
        entry = session.scalars(select(HoursEntry)).one()  # the driver's hours are offered with the route
        assert (entry.member_id, entry.work_id, entry.state) == (ids["driver"], route.id, "offered")
        assert entry.hours == pytest.approx(route.duration_min / 60, 0.01) and entry.sector == "other"
        stops = session.execute(
            select(RouteStop.shipment_id, RouteStop.action, RouteStop.site_id)
            .where(RouteStop.route_id == route.id)
            .order_by(RouteStop.position)
        ).all()
        assert len(stops) == 4
        for shipment in (ids["shipment0"], ids["shipment1"]):
            actions = [a for s, a, _ in stops if s == shipment]
            assert actions == ["pickup", "delivery"]
        heavy = session.get(Shipment, ids["shipment2"])
        assert heavy is not None and heavy.route_id is None and heavy.status == "planned"
        assert heavy.failure_reason is not None and "capacity" in heavy.failure_reason
        carried = session.get(Shipment, ids["shipment0"])
        assert carried is not None and (carried.status, carried.route_id) == ("assigned", route.id)
        (payload,) = session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.topic == member_routes_topic(ids["driver"]))
        ).all()
        notice = json.loads(payload)
        assert (
            notice["event"] == "route_planned" and [s["action"] for s in notice["stops"]].count("pickup") == 2
        )
        assert notice["starts_at"] == "2026-11-23T10:00:00.000Z" and notice["ends_at"] > notice["starts_at"]
        assert notice["stops"][0]["eta"] > notice["starts_at"]
    # Again: the offered route stands (its shipments are on it), nothing new to route, no second notice.
    again = route_once(sessions, time_limit_s=1.0, now=MONDAY + timedelta(minutes=5))
    assert (again.written, again.standing, again.superseded, again.withdrawn) == (0, 1, 0, 0)
    with sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        kept = session.scalars(select(Route)).one()
        assert kept.status == "proposed" and session.get_one(Shipment, ids["shipment0"]).route_id == kept.id


def test_nothing_to_route_without_a_driver(store: Store) -> None:
    sessions, _ = store
    with sessions.begin() as session:
        for vehicle in session.scalars(select(Vehicle)):
            vehicle.active = False
    assert route_once(sessions, time_limit_s=1.0).plan is None


def test_a_route_whose_start_passed_unaccepted_is_revised_for_the_same_driver(store: Store) -> None:
    sessions, ids = store
    route_once(sessions, time_limit_s=1.0, now=MONDAY, max_iterations=300)
    late = route_once(sessions, time_limit_s=1.0, now=MONDAY + timedelta(hours=3), max_iterations=300)
    assert (late.written, late.superseded, late.withdrawn) == (1, 1, 0)
    with sessions.begin() as session:
        old, new = session.scalars(select(Route).order_by(Route.id)).all()
        assert (old.status, new.status, new.replaces_id) == ("superseded", "proposed", old.id)
        notices = [
            json.loads(p)
            for p in session.scalars(
                select(OutboxMessage.payload)
                .where(OutboxMessage.topic == member_routes_topic(ids["driver"]))
                .order_by(OutboxMessage.id)
            )
        ]
        assert [n["event"] for n in notices] == ["route_planned", "route_updated"]
        assert notices[1]["replaces"] == old.id and notices[1]["starts_at"] == "2026-11-23T13:00:00.000Z"
        states = dict(session.execute(select(HoursEntry.work_id, HoursEntry.state)).all())
        assert states == {old.id: "released", new.id: "offered"}  # her week counts the new route only


def test_plan_routes_command(engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with make_session_factory(engine).begin() as session:
        fill(session)
    assert main(["--db", database_url, "plan", "routes", "--time-limit", "1"]) == 0
    assert "routes: 1 (1 written)" in capsys.readouterr().out


def test_a_driver_holding_three_routes_is_offered_no_fourth(store: Store) -> None:
    sessions, ids = store
    with sessions.begin() as session:
        for _ in range(MAX_OPEN_ROUTES):
            session.add(Route(plan_id=ids["plan"], member_id=ids["driver"], status="accepted"))
    with sessions.begin() as session:
        job = load_routing_input(session, now=MONDAY)
    assert job is not None
    assert job.data is None or not [v for v in job.data.vehicles if v.count]


def test_loader_keeps_one_point_per_site_and_no_matrix(store: Store) -> None:
    """Three shipments between three hubs and one driver: seven nodes on four points (three sites and her
    home); the distances are computed on demand, none stored for the nodes."""
    sessions, _ = store
    with sessions.begin() as session:
        job = load_routing_input(session, now=MONDAY)
    assert job is not None and job.data is not None
    data = job.data
    assert data.size == 7 and data.points.shape == (4, 2)
    hub_pickups = [r.pickup for r in data.requests[:2]]  # rice and water both leave the north hub
    assert hub_pickups[0] is not None and hub_pickups[1] is not None
    assert data.distance[hub_pickups[0], hub_pickups[1]] == 0.0
    assert not [v for v in vars(data).values() if getattr(v, "size", 0) >= data.size**2]
