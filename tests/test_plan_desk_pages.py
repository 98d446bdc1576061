"""The coordinator's desk in the dashboard (test client): the plan page and its actions (CSRF, 400s, audit),
the routes list's filters, the members and workload page, the crew overview, and who may see them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from dashboard.web.accounts import Account, MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.store import get_store
from gateway.process.settings import Settings
from gateway.store import audit, hours, planner
from gateway.store.db import make_session_factory
from gateway.store.models import Device, Member, Route, Vehicle, utcnow
from gateway.store.models.vocab import WorkKind
from gateway.store.region import load_region
from logistics import service
from tests.test_plan_desk import desk_region

PASSWORD = "a long enough secret"


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    with factory.begin() as session:
        load_region(session, desk_region())
        session.execute(update(Vehicle).values(capacity_kg=5000.0))
        session.execute(update(Member).values(hours_per_week=40))
    return factory


@pytest.fixture
def app(database_url: str, sessions: sessionmaker[Session]) -> Iterator[Flask]:
    with sessions() as session:
        ana = session.scalar(select(Member.id).where(Member.name == "Ana"))
    hashed = make_account("someone", PASSWORD, "viewer").password_hash
    accounts = MemoryAccountStore(
        [
            Account("ana", hashed, "driver", ana),
            Account("coord", hashed, "coordinator", None),
            Account("viewer", hashed, "viewer", None),
        ]
    )
    app = create_app(Settings(database_url=database_url), test_config={"TESTING": True}, accounts=accounts)
    yield app
    get_store(app).engine.dispose()


def token_of(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found is not None, path
    return found.group(1)


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token_of(client, "/login")}
    )
    assert response.status_code == 302
    return client


def test_the_plan_page_shows_the_run_coverage_and_why(app: Flask, sessions: sessionmaker[Session]) -> None:
    client = signed_in(app, "coord")
    empty = client.get("/coordinator/plan").get_data(as_text=True)
    assert 'id="rz-plan-none"' in empty and "Running" in empty
    service.deliveries_once(sessions, 20.0, trigger="timer", route_time_s=5.0)
    page = client.get("/coordinator/plan").get_data(as_text=True)
    assert "1 shortage: no community has any to spare" in page
    assert "1 shortage: no surplus within reach" in page
    table = page[page.index('id="rz-plan-shortfalls"') :]
    assert "<td>Diesel</td>" in table and "<td>Insulin</td>" in table
    by_good = page[page.index('id="rz-plan-by-good"') :]
    assert re.search(r"<td>Water</td><td>2,500 L</td><td>2,500</td><td>100 %</td>", by_good)
    only = client.get("/coordinator/plan?reason=no_surplus").get_data(as_text=True)
    only_table = only[
        only.index('id="rz-plan-shortfalls"') : only.index("</table>", only.index('id="rz-plan-shortfalls"'))
    ]
    assert "Diesel" in only_table and "Insulin" not in only_table
    bad = client.get("/coordinator/plan?reason=bored")
    assert bad.status_code == 400 and "reason must be one of" in bad.get_data(as_text=True)


@pytest.mark.parametrize(("user", "status"), [(None, 302), ("viewer", 403), ("ana", 403)])
def test_only_coordinators_reach_the_desk(app: Flask, user: str | None, status: int) -> None:
    client = signed_in(app, user) if user else app.test_client()
    for path in ("/coordinator/plan", "/coordinator/members"):
        assert client.get(path).status_code == status, path
    assert client.post("/coordinator/plan/pause").status_code in (400, status)  # no token: refused either way
    with get_store(app).sessions() as session:
        assert not planner.controls(session).paused


def test_plan_actions_need_the_token_check_their_input_and_are_audited(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    client = signed_in(app, "coord")
    assert client.post("/coordinator/plan/pause").status_code == 400  # no CSRF token
    token = token_of(client, "/coordinator/plan")
    assert client.post("/coordinator/plan/sleep", data={"csrf_token": token}).status_code == 404
    bad = client.post("/coordinator/plan/approval", data={"csrf_token": token, "required": "maybe"})
    assert bad.status_code == 400 and "required must be on or off" in bad.get_data(as_text=True)
    done = client.post("/coordinator/plan/pause", data={"csrf_token": token}, follow_redirects=True)
    assert "Delivery planning paused" in done.get_data(as_text=True) and "Resume planning" in done.get_data(
        as_text=True
    )
    client.post("/coordinator/plan/replan", data={"csrf_token": token})
    client.post("/coordinator/plan/approval", data={"csrf_token": token, "required": "on"})
    client.post("/coordinator/plan/resume", data={"csrf_token": token})
    with sessions() as session:
        controls = planner.controls(session)
        assert not controls.paused and controls.require_approval and controls.replan_requested_at is not None
        kinds = [e.kind for e in audit.recent(session, 10)]
    assert {"plan_paused", "plan_requested", "plan_approval_set", "plan_resumed"} <= set(kinds)
    trail = client.get("/coordinator/audit?kind=plan_paused").get_data(as_text=True)
    assert "delivery planning paused" in trail


def test_approve_offers_the_held_routes_to_their_driver(app: Flask, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        planner.set_require_approval(session, True, "coord")
    service.deliveries_once(sessions, 20.0, route_time_s=5.0)
    with sessions() as session:
        held = session.scalars(select(Route.id).where(Route.status == "proposed")).all()
    assert held
    driver = signed_in(app, "ana")
    assert f"/routes/{held[0]}" not in driver.get("/routes").get_data(as_text=True)
    assert driver.get(f"/routes/{held[0]}").status_code == 404
    assert f"/routes/{held[0]}" not in driver.get("/me/hours").get_data(as_text=True)  # nor in my week
    coord = signed_in(app, "coord")
    page = coord.get("/coordinator/plan").get_data(as_text=True)
    assert f"Approve: offer {len(held)} route" in page
    assert f"Route {held[0]}" in coord.get("/routes?state=held").get_data(as_text=True)
    token = token_of(coord, "/coordinator/plan")
    done = coord.post("/coordinator/plan/approve", data={"csrf_token": token}, follow_redirects=True)
    assert f"Approved: {len(held)} route" in done.get_data(as_text=True)
    assert f"/routes/{held[0]}" in driver.get("/routes").get_data(as_text=True)
    assert driver.get(f"/routes/{held[0]}").status_code == 200


def test_routes_are_filtered_by_driver_state_and_day(app: Flask, sessions: sessionmaker[Session]) -> None:
    service.deliveries_once(sessions, 20.0, route_time_s=5.0)
    with sessions.begin() as session:
        routes = list(session.scalars(select(Route).order_by(Route.id)))
        assert routes
        ana = routes[0].member_id
        day = routes[0].starts_at
        assert day is not None
    client = signed_in(app, "coord")

    def listed(query: str) -> list[int]:
        page = client.get(f"/routes{query}")
        assert page.status_code == 200, page.get_data(as_text=True)[:300]
        return [int(n) for n in re.findall(r'<tr data-route="(\d+)"', page.get_data(as_text=True))]

    ids = [r.id for r in routes]
    assert sorted(listed("")) == ids
    assert sorted(listed(f"?driver={ana}")) == ids
    assert listed(f"?driver={ana + 100}") == []
    assert listed("?state=done") == [] and sorted(listed("?state=all")) == ids
    assert sorted(listed(f"?date={day.date().isoformat()}")) == [
        r.id for r in routes if r.starts_at and r.starts_at.date() == day.date()
    ]
    assert listed(f"?date={(day - timedelta(days=30)).date().isoformat()}") == []
    for query, message in [
        ("?driver=x", "driver must be a member id"),
        ("?state=lost", "state must be one of"),
        ("?date=tomorrow", "date must be a day as YYYY-MM-DD"),
        ("?page=0", "page must be a whole number"),
        ("?page=9", "there is 1 page"),
    ]:
        bad = client.get(f"/routes{query}")
        assert bad.status_code == 400 and message in bad.get_data(as_text=True), query


def test_members_show_offer_hours_given_and_who_is_near_the_limit(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    now = utcnow()
    with sessions.begin() as session:
        ana = session.scalars(select(Member).where(Member.name == "Ana")).one()
        ana.hours_per_year = 10.0
        ana.sector_hours = None
        entry = hours.offer(session, ana.id, WorkKind.REPAIR, 1, "health", 3.0, now, now + timedelta(hours=3))
        hours.start(session, WorkKind.REPAIR, 1, now)
        hours.finish(session, WorkKind.REPAIR, 1, now + timedelta(hours=7))
        hours.offer(session, ana.id, WorkKind.REPAIR, 2, "health", 1.5, now, now + timedelta(hours=1))
        assert entry is not None
    client = signed_in(app, "coord")
    page = client.get("/coordinator/members").get_data(as_text=True)
    row = page[page.index(f'data-member="{ana.id}"') :]
    row = row[: row.index("</tr>")]
    assert 'data-near="1"' in row and "near limit" in row
    assert "7.0 + 1.5 / 10.0 h" in row  # given, planned ahead, the year's offer
    assert "never a ranking" in page
    assert client.get("/coordinator/members?role=crew").status_code == 200
    assert "Ana" in client.get("/coordinator/members?skill=pump-mechanic").get_data(as_text=True)
    assert "No member matches" in client.get("/coordinator/members?community=jayuya").get_data(as_text=True)
    for query, message in [
        ("?community=atlantis", "community must be one of"),
        ("?role=boss", "role must be one of"),
        ("?skill=juggling", "skill must be one of"),
        ("?order=hours", "never by hours"),
        ("?page=0", "page must be a whole number"),
        ("?page=2", "there is 1 page"),
    ]:
        bad = client.get(f"/coordinator/members{query}")
        assert bad.status_code == 400 and message in bad.get_data(as_text=True), query


def test_the_crew_link_shows_a_coordinator_the_crew_at_a_glance(app: Flask) -> None:
    client = signed_in(app, "coord")
    page = client.get("/crew")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="rz-crew-members"' in text and ">Ana</a>" in text
    assert 'href="/crew?member=' in text


def test_devices_are_filtered_by_state_kind_and_community(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        session.execute(update(Device).where(Device.slug == "jayuya-hub-stock").values(state="fault"))
    client = signed_in(app, "coord")

    def listed(query: str) -> list[str]:
        page = client.get(f"/coordinator/devices{query}")
        assert page.status_code == 200, page.get_data(as_text=True)[:300]
        return re.findall(r'<tr data-device="([^"]+)"', page.get_data(as_text=True))

    assert listed("") == ["jayuya-hub-stock", "utuado-hub-stock", "utuado-pump-1-pump"]
    assert listed("?kind=pump") == ["utuado-pump-1-pump"]
    assert listed("?community=utuado&kind=stock") == ["utuado-hub-stock"]
    assert listed("?state=fault") == ["jayuya-hub-stock"]
    for query, message in [
        ("?kind=toaster", "kind must be one of"),
        ("?state=sleepy", "state must be one of"),
        ("?community=atlantis", "community must be one of"),
        ("?page=2", "there is 1 page"),
    ]:
        bad = client.get(f"/coordinator/devices{query}")
        assert bad.status_code == 400 and message in bad.get_data(as_text=True), query
