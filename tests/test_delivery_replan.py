"""A failed delivery goes back to the planner at once: recorded with its reason by the driver, announced by
its internal event (the gateway's relay publishes it, the planner loop wakes on it, not at its next timed
run), planned again on a new route or reported with the router's reason, and shown to the coordinator."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dashboard.web.accounts import Account, MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.store import get_store
from gateway.contract.topics import INTERNAL_EVENTS
from gateway.ingest.publisher import OutboxPublisher
from gateway.process.settings import Settings
from gateway.store import declines
from gateway.store.db import make_session_factory
from gateway.store.models import Member, OutboxMessage, Route, RouteStop, Shipment, Vehicle
from gateway.store.region import load_region
from logistics.service import plan_once, route_once, run_loop
from tests.conftest import Broker, tiny_region_data

PASSWORD = "a long enough secret"
REASON = "bridge <b>closed</b> by the flood"


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """The tiny region (Utuado short of water, Jayuya with plenty), Ana driving a truck big enough for it."""
    factory = make_session_factory(engine)
    with factory.begin() as session:
        load_region(session, tiny_region_data())
        session.execute(update(Vehicle).values(capacity_kg=5000.0))
        session.execute(update(Member).values(hours_per_week=40))
    return factory


@pytest.fixture
def app(engine: Engine, database_url: str, sessions: sessionmaker[Session]) -> Iterator[Flask]:
    with sessions() as session:
        ana = session.scalar(select(Member.id).where(Member.name == "Ana"))
    hashed = make_account("someone", PASSWORD, "viewer").password_hash
    accounts = MemoryAccountStore(
        [Account("ana", hashed, "driver", ana), Account("coord", hashed, "coordinator", None)]
    )
    app = create_app(
        Settings(database_url=database_url),
        test_config={"TESTING": True},
        accounts=accounts,
    )
    yield app
    get_store(app).engine.dispose()


def signed_in(app: Flask, username: str) -> tuple[FlaskClient, Callable[[str], str]]:
    """A test client signed in through the form, and a function giving a page's CSRF token."""
    client = app.test_client()

    def token(path: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
        assert found is not None, path
        return found.group(1)

    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token("/login")}
    )
    assert response.status_code == 302
    return client, token


def the_route(sessions: sessionmaker[Session]) -> tuple[int, int, int, int]:
    """The one planned route: its id, its shipment, the shipment's pickup and delivery stops."""
    with sessions() as session:
        stops = session.scalars(select(RouteStop).order_by(RouteStop.route_id, RouteStop.position)).all()
        assert [s.action for s in stops] == ["pickup", "delivery"]
        return stops[0].route_id, stops[0].shipment_id or 0, stops[0].id, stops[1].id


def _planned(app: Flask, stop_id: int) -> float:
    """What the stop's shipment carries (what a driver who found it all enters as loaded)."""
    with get_store(app).sessions() as session:
        stop = session.get_one(RouteStop, stop_id)
        return session.get_one(Shipment, stop.shipment_id).quantity


def fail_delivery(app: Flask, route: int, pickup: int, drop: int, *, picked_up: bool) -> None:
    """Ana records the pickup (or not) and then that the delivery could not be made, with a reason."""
    client, token = signed_in(app, "ana")
    page = f"/routes/{route}"
    if picked_up:
        loaded = f"{_planned(app, pickup):g}"  # "Loaded" is required: an empty box is not the plan
        done = client.post(
            f"{page}/stops/{pickup}/done", data={"quantity": loaded, "csrf_token": token(page)}
        )
        assert done.status_code == 302
    failed = client.post(f"{page}/stops/{drop}/failed", data={"reason": REASON, "csrf_token": token(page)})
    assert failed.status_code == 302


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout_s} s")


@pytest.mark.parametrize("picked_up", [True, False], ids=["after-pickup", "before-pickup"])
@pytest.mark.slow
@pytest.mark.network
def test_loop_replans_a_failed_delivery_on_a_new_route_at_once(
    app: Flask, sessions: sessionmaker[Session], broker: Broker, picked_up: bool
) -> None:
    plan_once(sessions, 20.0)
    assert route_once(sessions, 5.0).written == 1
    route, shipment, pickup, drop = the_route(sessions)
    with sessions() as session:
        first = session.get(Shipment, shipment)
        assert first is not None and first.status == "assigned"
        lane = (first.good_id, first.from_site_id, first.to_site_id, first.quantity)
        session.execute(update(Route).where(Route.id == route).values(status="accepted"))  # Ana took it
        session.commit()

    stop = threading.Event()
    relay = OutboxPublisher(broker.target, f"replan-relay-{picked_up}", sessions, every_s=0.25)
    threading.Thread(target=relay.run, args=(stop,), daemon=True).start()
    loop = threading.Thread(
        target=run_loop, args=(sessions, 3600.0, 20.0, stop), kwargs={"target": broker.target}, daemon=True
    )
    loop.start()
    try:
        time.sleep(1.0)  # the loop's first run is over (nothing changed: the proposal stays, Ana's route too)
        fail_delivery(app, route, pickup, drop, picked_up=picked_up)
        failed_at = time.monotonic()

        def replanned() -> Shipment | None:
            with sessions() as session:
                again = session.scalar(
                    select(Shipment).where(Shipment.id != shipment, Shipment.route_id.is_not(None))
                )
                return again

        again = wait_for(replanned, 60.0, "the failed shipment on a new route")
        elapsed = time.monotonic() - failed_at
    finally:
        stop.set()
        loop.join(timeout=60)
    assert elapsed < 30.0, elapsed  # the loop's interval is an hour: this was the event, not the timer
    with sessions() as session:
        assert (again.good_id, again.from_site_id, again.to_site_id, again.quantity) == lane
        assert again.plan_id == first.plan_id and again.status == "assigned" and again.route_id != route
        old = session.get(Shipment, shipment)
        assert old is not None and (old.status, old.failure_reason) == ("failed", REASON)
        new_route = session.get(Route, again.route_id)
        assert new_route is not None and new_route.status == "proposed"
        events = [
            (json.loads(m.payload), m.published_at is not None)
            for m in session.scalars(select(OutboxMessage).where(OutboxMessage.topic == INTERNAL_EVENTS))
        ]
        failed = {"type": "shipment_changed", "shipment_id": shipment, "status": "failed", "reason": REASON}
        assert ({**failed, "route_id": route}, True) in [  # written with the failure, published by the relay
            ({k: e.get(k) for k in ("type", "shipment_id", "route_id", "status", "reason")}, published)
            for e, published in events
        ]

    client, _ = signed_in(app, "coord")
    page = client.get("/routes").get_data(as_text=True)
    table = page[page.index('id="rz-failed"') :]
    assert "bridge &lt;b&gt;closed&lt;/b&gt; by the flood" in table and "<b>closed" not in table
    assert f"route {again.route_id} (assigned)" in table


def test_a_failed_delivery_no_vehicle_can_carry_again_is_reported_with_the_reason(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    plan_once(sessions, 20.0)
    route_once(sessions, 5.0)
    route, shipment, pickup, drop = the_route(sessions)
    fail_delivery(app, route, pickup, drop, picked_up=False)
    plan_once(sessions, 20.0)  # planned again in loads the truck carries
    with sessions.begin() as session:  # then the only truck broke down; a small car stands in
        session.execute(update(Vehicle).values(capacity_kg=50.0))
    route_once(sessions, 5.0)
    with sessions() as session:
        again = session.scalars(select(Shipment).where(Shipment.id != shipment)).one()
        assert again.status == "planned" and again.route_id is None
        assert again.failure_reason and "capacity" in again.failure_reason
    client, _ = signed_in(app, "coord")
    table = client.get("/routes").get_data(as_text=True)
    assert f"waiting: {escape(again.failure_reason)}" in table and "bridge &lt;b&gt;closed" in table


def test_a_failed_shipment_is_added_back_to_the_same_proposal_with_an_alert(
    sessions: sessionmaker[Session],
) -> None:
    first = plan_once(sessions, 20.0)
    again = plan_once(sessions, 20.0)
    assert again.plan_id == first.plan_id and again.unchanged  # a quiet network: nothing new
    with sessions.begin() as session:
        failed = session.scalars(select(Shipment)).one()
        failed.status, failed.failure_reason = "failed", "truck broke down"
        alerts = session.scalar(select(func.count()).select_from(OutboxMessage))
    replanned = plan_once(sessions, 20.0)
    assert replanned.plan_id == first.plan_id and not replanned.unchanged
    with sessions() as session:
        rows = session.scalars(select(Shipment).order_by(Shipment.id)).all()
        assert [r.status for r in rows] == ["failed", "planned"]
        assert (rows[1].good_id, rows[1].from_site_id, rows[1].to_site_id, rows[1].quantity) == (
            rows[0].good_id,
            rows[0].from_site_id,
            rows[0].to_site_id,
            rows[0].quantity,
        )
        newest = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == (alerts or 0) + 1
        assert newest is not None and json.loads(newest.payload)["shipments"][0]["id"] == rows[1].id
    assert plan_once(sessions, 20.0).unchanged  # and then quiet again


def test_a_driver_declines_a_route_not_started_and_its_goods_are_routed_again(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    plan_once(sessions, 20.0)
    route_once(sessions, 5.0)
    route, shipment, _, _ = the_route(sessions)
    client, token = signed_in(app, "ana")
    page = f"/routes/{route}"
    assert "Decline this route" in client.get(page).get_data(as_text=True)
    too_long = client.post(f"{page}/decline", data={"reason": "x" * 501, "csrf_token": token(page)})
    assert too_long.status_code == 400 and "longer than 500" in too_long.get_data(as_text=True)
    declined = client.post(f"{page}/decline", data={"reason": REASON, "csrf_token": token(page)})
    assert declined.status_code == 302
    with sessions() as session:
        assert session.get_one(Route, route).status == "declined"
        freed = session.get_one(Shipment, shipment)
        assert (freed.status, freed.route_id) == ("planned", None)
        assert freed.failure_reason == f"route {route} declined: {REASON}"
    again = client.post(f"{page}/decline", data={"reason": REASON, "csrf_token": token(page)})
    assert again.status_code == 409
    replanned = plan_once(sessions, 20.0)  # the freed shipment is the plan's already: kept, not made again
    assert replanned.unchanged
    route_once(sessions, 5.0)  # Ana declined that lane: it is not offered to her again for 7 days
    with sessions.begin() as session:
        waiting = session.get_one(Shipment, shipment)
        assert (waiting.status, waiting.route_id) == ("planned", None)
        assert "declined in the last 7 days by every driver" in (waiting.failure_reason or "")
        ana = session.get_one(Route, route).member_id
        assert ana is not None
        (held,) = declines.of_member(session, ana)
        declines.ask_again(session, held.id, ana)
    route_once(sessions, 5.0)  # she asked for it again: it goes out on a new route
    with sessions() as session:
        rerouted = session.get_one(Shipment, shipment)
        assert rerouted.status == "assigned" and rerouted.route_id not in (None, route)


def test_a_route_under_way_cannot_be_declined(app: Flask, sessions: sessionmaker[Session]) -> None:
    plan_once(sessions, 20.0)
    route_once(sessions, 5.0)
    route, _, pickup, _ = the_route(sessions)
    client, token = signed_in(app, "ana")
    page = f"/routes/{route}"
    loaded = {"quantity": f"{_planned(app, pickup):g}", "csrf_token": token(page)}
    assert client.post(f"{page}/stops/{pickup}/done", data=loaded).status_code == 302
    assert "Decline this route" not in client.get(page).get_data(as_text=True)
    refused = client.post(f"{page}/decline", data={"reason": REASON, "csrf_token": token(page)})
    assert refused.status_code == 409 and "only a route not started" in refused.get_data(as_text=True)
