"""What people offer and the hours they gave, as the dashboard shows them: "My offer" (validated, CSRF, never
a 500), "My hours" with declines to take back, the coordinators' loads listed by name, the public's sums with
no names in them, and the drivers' route actions (accept, give back, decline; a superseded route refuses all).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from markupsafe import escape
from sqlalchemy import select

from dashboard.read import hours as hours_read
from dashboard.web.store import get_store
from gateway.contract.topics import member_routes_topic
from gateway.store import deliveries, hours, stock
from gateway.store.models import (
    Community,
    Decline,
    HoursEntry,
    Member,
    OutboxMessage,
    Route,
    RouteStop,
    Shipment,
    Vehicle,
    utcnow,
)
from gateway.store.models.vocab import WorkKind
from tests import test_dashboard_pages as pages
from tests.test_dashboard_pages import Auth

# The pages' fixtures, shared: the tiny region with Ana's task and route, the app and its accounts.
ids, password_hash, app, client, auth = pages.ids, pages.password_hash, pages.app, pages.client, pages.auth

ZORAIDA = "Zoraida Quiñones"
BENITA = "Benita <b>Ocasio</b>"
VALID: dict[str, Any] = {
    "hours_per_week": "6",
    "hours_per_year": "120",
    "sector_food": "30",
    "sector_education": "10",
    "sector_health": "20",
    "sector_maintenance": "30",
    "sector_governance": "0",
    "sector_other": "30",
    "preferred": ["food", "health"],
    "day": ["0", "5", ""],
    "start": ["08:00", "09:30", ""],
    "end": ["12:00", "24:00", ""],
    "away_from": ["2026-12-20", ""],
    "away_to": ["2027-01-06", ""],
    "skills": "pump-mechanic, solar",
    "lat": "18.3",
    "lon": "-66.6",
    "vehicle_kind": "van",
    "vehicle_capacity_kg": "600",
}


def _post(auth: Auth, path: str, data: dict[str, Any], page: str) -> Any:
    return auth.client.post(path, data={**data, "csrf_token": auth.token(page)})


@pytest.fixture
def people(app: Flask, ids: dict[str, int]) -> dict[str, int]:
    """Two more members of Utuado, with hours this week: Zoraida 10 (most), Benita 5, Ana none."""
    now = utcnow()
    with get_store(app).sessions.begin() as session:
        utuado = session.scalar(select(Community.id).where(Community.slug == "utuado"))
        assert utuado is not None
        found = {}
        for key, name, load in (("zoraida", ZORAIDA, 10.0), ("benita", BENITA, 5.0)):
            member = Member(
                name=name, community_id=utuado, lat=18.27, lon=-66.7, is_crew=True, hours_per_week=12
            )
            session.add(member)
            session.flush()
            hours.offer(session, member.id, WorkKind.REPAIR, 9000 + member.id, "food", load, now, now)
            found[key] = member.id
        return found


def _offer(app: Flask, member_id: int) -> tuple[Any, ...]:
    """Everything the offer form may change, as stored."""
    with get_store(app).sessions() as session:
        m = session.get(Member, member_id)
        assert m is not None
        vehicles = session.execute(
            select(Vehicle.kind, Vehicle.capacity_kg, Vehicle.active).where(Vehicle.member_id == member_id)
        ).all()
        return (
            m.hours_per_week,
            m.hours_per_year,
            m.sector_hours,
            m.preferred_sectors,
            m.availability,
            m.away,
            m.lat,
            m.lon,
            sorted(s.skill for s in m.skills),
            sorted(tuple(v) for v in vehicles),
        )


# --- My offer ------------------------------------------------------------------------------------------


def test_my_offer_is_prefilled_with_the_baseline_split(auth: Auth) -> None:
    auth.login("ana")
    page = auth.client.get("/me/offer").get_data(as_text=True)
    assert 'name="sector_food" type="number" inputmode="decimal" min="0" step="any" value="20"' in page
    assert 'name="sector_other" type="number" inputmode="decimal" min="0" step="any" value="50"' in page
    assert 'name="hours_per_week" type="number"' in page and 'value="4"' in page
    assert 'name="baseline_split" value="1" checked' in page
    assert '<option value="pickup" selected>' in page  # the vehicle she lends
    assert 'name="csrf_token"' in page


def test_a_valid_offer_is_stored_and_shown_again(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("ana")
    response = _post(auth, "/me/offer", VALID, "/me/offer")
    assert response.status_code == 302 and response.location == "/me/hours"
    assert _offer(app, ids["member"]) == (
        6.0,
        120.0,
        {"food": 30, "education": 10, "health": 20, "maintenance": 30, "governance": 0, "other": 30},
        ["food", "health"],
        [{"day": 0, "start": "08:00", "end": "12:00"}, {"day": 5, "start": "09:30", "end": "24:00"}],
        [{"from": "2026-12-20", "to": "2027-01-06"}],
        18.3,
        -66.6,
        ["pump-mechanic", "solar"],
        [("van", 600.0, True)],
    )
    assert "Offer saved" in auth.client.get("/me/hours").get_data(as_text=True)
    page = auth.client.get("/me/offer").get_data(as_text=True)
    assert 'name="sector_food" type="number" inputmode="decimal" min="0" step="any" value="30"' in page
    assert 'value="food" checked' in page and 'value="education" checked' not in page
    assert 'value="09:30"' in page and 'value="24:00"' in page and 'value="2027-01-06"' in page


def test_the_baseline_split_follows_the_year_and_no_vehicle_retires_the_vehicle(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("ana")
    data = {**VALID, "baseline_split": "1", "hours_per_year": "75", "vehicle_kind": "", "sector_food": "x"}
    assert _post(auth, "/me/offer", data, "/me/offer").status_code == 302
    stored = _offer(app, ids["member"])
    assert stored[1] == 75.0 and stored[2] is None and stored[-1] == [("pickup", 800.0, False)]
    page = auth.client.get("/me/offer").get_data(as_text=True)
    assert 'name="sector_food" type="number" inputmode="decimal" min="0" step="any" value="10"' in page


BAD_OFFERS: list[tuple[dict[str, Any], str]] = [
    ({"hours_per_week": "-1"}, "hours per week must be from 0 to 168, not -1"),
    ({"hours_per_week": "200"}, "hours per week must be from 0 to 168"),
    ({"hours_per_year": "lots"}, "hours per year must be a number, not 'lots'"),
    ({"hours_per_year": "nan"}, "hours per year must be a number"),
    ({"sector_gold": "5"}, "unknown sector 'gold'"),
    ({"sector_food": "-3"}, "hours for food must be a number from 0 to 8760"),
    ({"sector_health": "ten"}, "hours for health must be a number, not 'ten'"),
    ({"hours_per_year": "100"}, "the sectors add up to 120 h, more than 100 h offered a year"),
    (
        {"away_from": ["2026-12-20"], "away_to": ["2026-12-01"]},
        "away to 2026-12-01 is before away from 2026-12-20",
    ),
    ({"away_from": ["2026-13-01"], "away_to": ["2026-12-01"]}, "dates YYYY-MM-DD"),
    (
        {"day": ["1"], "start": ["12:00"], "end": ["08:00"]},
        "the window on Tuesday ends (08:00) before it starts (12:00)",
    ),
    ({"day": ["2"], "start": [""], "end": ["10:00"]}, "a weekly window needs a day, a start and an end"),
    ({"day": ["3"], "start": ["8h"], "end": ["10:00"]}, "start and end are times HH:MM"),
    ({"day": ["9"], "start": ["08:00"], "end": ["10:00"]}, "Monday to Sunday"),
    ({"preferred": ["gold"]}, "unknown preferred sector 'gold'"),
    ({"skills": "Pump Fixing"}, "skills are words like pump-mechanic"),
    ({"lat": "200"}, "home latitude must be from -90 to 90"),
    ({"lon": "west"}, "home longitude must be a number"),
    ({"vehicle_kind": "rocket"}, "vehicle kind must be one of"),
    ({"vehicle_capacity_kg": "0"}, "vehicle capacity (kg) must be more than 0"),
    ({"vehicle_capacity_kg": "heavy"}, "vehicle capacity (kg) must be a number"),
]


def test_bad_offers_are_a_400_with_the_message_and_change_nothing(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    """One store and one login for every case (each is refused, so none changes what the next sees)."""
    auth.login("ana")
    before = _offer(app, ids["member"])
    wrong = {}
    for change, message in BAD_OFFERS:
        response = _post(auth, "/me/offer", {**VALID, **change}, "/me/offer")
        text = response.get_data(as_text=True)
        if (
            response.status_code != 400
            or str(escape(message)) not in text
            or 'id="rz-offer-error"' not in text
        ):
            wrong[str(change)] = f"{response.status_code}: {text[:300]}"
    assert wrong == {}
    assert _offer(app, ids["member"]) == before


def test_a_refused_offer_shows_what_was_typed(auth: Auth) -> None:
    auth.login("ana")
    page = _post(auth, "/me/offer", {**VALID, "hours_per_week": "-1"}, "/me/offer").get_data(as_text=True)
    assert 'value="-1"' in page and 'value="09:30"' in page and 'value="food" checked' in page


def test_the_offer_form_needs_its_csrf_token(auth: Auth) -> None:
    auth.login("ana")
    response = auth.client.post("/me/offer", data=VALID)
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        (None, "/me/offer", 302),
        (None, "/me/hours", 302),
        ("viewer", "/me/offer", 403),
        ("viewer", "/me/hours", 403),
        ("ana", "/me/offer", 200),
        ("anadriver", "/me/hours", 200),
        ("coord", "/me/offer", 404),  # a coordinator account linked to no member
        ("other", "/me/offer", 404),  # linked to a member that is not there
        ("ana", "/coordinator/members", 403),
        ("ana", "/coordinator/members/{zoraida}/offer", 403),
        ("coord", "/coordinator/members", 200),
        ("coord", "/coordinator/members/{zoraida}/offer", 200),
        ("coord", "/coordinator/members/999999/offer", 404),
    ],
)
def test_who_may_see_an_offer(
    auth: Auth, people: dict[str, int], user: str | None, path: str, status: int
) -> None:
    if user:
        auth.login(user)
    assert auth.client.get(path.format(**people)).status_code == status


def test_a_member_cannot_edit_someone_elses_offer_a_coordinator_can(
    app: Flask, auth: Auth, people: dict[str, int]
) -> None:
    path = f"/coordinator/members/{people['zoraida']}/offer"
    before = _offer(app, people["zoraida"])
    auth.login("ana")
    assert _post(auth, path, VALID, "/me/offer").status_code == 403
    assert _offer(app, people["zoraida"]) == before
    auth.login("coord")
    page = auth.client.get(path).get_data(as_text=True)
    assert f"Offer of {ZORAIDA}" in page
    response = _post(auth, path, {**VALID, "vehicle_kind": ""}, path)
    assert response.status_code == 302 and response.location == "/coordinator/members"
    assert _offer(app, people["zoraida"])[:2] == (6.0, 120.0)
    refused = _post(auth, path, {**VALID, "hours_per_week": "-2"}, path)
    assert refused.status_code == 400 and "hours per week must be from 0 to 168" in refused.get_data(
        as_text=True
    )


# --- Hours ---------------------------------------------------------------------------------------------


def test_my_hours_by_sector_against_my_offer_and_my_declines(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    now = utcnow()
    with get_store(app).sessions.begin() as session:
        hours.offer(session, ids["member"], WorkKind.REPAIR, ids["task"], "maintenance", 2.0, now, now)
        hours.reserve(session, WorkKind.REPAIR, ids["task"])
        hours.offer(session, ids["member"], WorkKind.ROUTE, ids["route"], "water", 1.5, now, now)
        hours.offer(session, ids["member"], WorkKind.ROUTE, 777, "food", 9.0, now, now)
        hours.release(session, WorkKind.ROUTE, 777)  # declined: counts nothing
        deliveries.decline_route(session, ids["route"], "my car is <broken>")
    auth.login("ana")
    page = auth.client.get("/me/hours").get_data(as_text=True)
    assert "This week 2.0 h of the 4.0 h you pledge a week" in page  # the declined route no longer counts
    rows = dict(re.findall(r"<tr><td>(\w+)</td><td>([\d.]+)</td>", page))
    assert rows["maintenance"] == "2.0" and rows["other"] == "0.0" and rows["food"] == "0.0"
    assert "repair task" in page and "accepted" in page
    assert "carrying Water from Hub (Jayuya) to Hub (Utuado)" in page and "my car is &lt;broken&gt;" in page
    with get_store(app).sessions() as session:
        decline = session.scalar(select(Decline).where(Decline.member_id == ids["member"]))
        assert decline is not None
    again = _post(auth, f"/me/declines/{decline.id}/ask-again", {}, "/me/hours")
    assert again.status_code == 302
    assert "Nothing declined in the last 7 days" in auth.client.get("/me/hours").get_data(as_text=True)
    twice = _post(auth, f"/me/declines/{decline.id}/ask-again", {}, "/me/hours")
    assert twice.status_code == 409 and "already asked" in twice.get_data(as_text=True)
    auth.login("coord")
    assert _post(auth, f"/me/declines/{decline.id}/ask-again", {}, "/").status_code == 404


def test_member_hours_count_week_month_and_year_apart(app: Flask, ids: dict[str, int]) -> None:
    now = utcnow()
    periods = hours_read.Periods.at(now)
    last_year = periods.year[0] - timedelta(days=3)
    with get_store(app).sessions.begin() as session:
        hours.offer(session, ids["member"], WorkKind.REPAIR, 1, "health", 1.0, now, now)
        hours.offer(session, ids["member"], WorkKind.REPAIR, 2, "health", 4.0, last_year, last_year)
        member = session.get(Member, ids["member"])
        assert member is not None
        summary = hours_read.member_hours(session, member, now)
    health = next(r for r in summary.rows if r.sector == "health")
    assert (health.week, health.month, health.year, health.offered) == (1.0, 1.0, 1.0, 20.0)
    assert summary.offered == 150.0


def test_coordinators_see_loads_by_name_never_by_load(auth: Auth, people: dict[str, int]) -> None:
    auth.login("coord")
    page = auth.client.get("/coordinator/members").get_data(as_text=True)
    names = re.findall(r"<tr[^>]*>\s*<td>([^<]+(?:&lt;[^<]*)*)</td>", page)
    assert names == ["Ana", "Benita &lt;b&gt;Ocasio&lt;/b&gt;", ZORAIDA]  # by name: Zoraida did the most
    assert "10.0 / 12.0 h" in page and "<b>Ocasio</b>" not in page
    assert f'href="/coordinator/members/{people["zoraida"]}/offer"' in page
    assert "/coordinator/members" in auth.client.get("/coordinator").get_data(as_text=True)


PUBLIC_PAGES = ["/", "/shortages", "/communities/utuado", "/api/tasks", "/api/communities/utuado"]


@pytest.mark.parametrize("user", [None, "viewer"])
def test_public_pages_show_sums_and_never_a_name(
    app: Flask, auth: Auth, people: dict[str, int], user: str | None
) -> None:
    """Ana has a repair task and a route, Zoraida and Benita hours: no page the public sees names them."""
    with get_store(app).sessions() as session:
        names = list(session.scalars(select(Member.name)))
    assert len(names) == 3
    if user:
        auth.login(user)
    for path in PUBLIC_PAGES:
        response = auth.client.get(path)
        assert response.status_code == 200, path
        text = response.get_data(as_text=True)
        for name in names:
            for shown in (name, str(escape(name)), name.split()[0]):
                assert not re.search(rf"\b{re.escape(shown)}\b", text), (path, shown)
    page = auth.client.get("/shortages").get_data(as_text=True)
    assert "3 people offer 450 h this year; 0 h given so far" in page
    food = re.search(r"<tr><td>food</td><td>([\d.]+) h</td><td>([\d.]+) h</td>\s*<td>([\d.]+) h</td>", page)
    assert food is not None and food.groups() == ("0.0", "0.0", "15.0")  # asked of Zoraida and Benita
    assert auth.client.get("/api/tasks").get_json()["tasks"][0]["assigned"] is True


def test_network_hours_split_given_reserved_and_asked(app: Flask, ids: dict[str, int]) -> None:
    now = utcnow()
    with get_store(app).sessions.begin() as session:
        hours.offer(session, ids["member"], WorkKind.REPAIR, 1, "food", 2.0, now, now)
        hours.reserve(session, WorkKind.REPAIR, 1)
        hours.offer(session, ids["member"], WorkKind.REPAIR, 2, "food", 3.0, now, now)
        hours.start(session, WorkKind.REPAIR, 2, now)
        hours.finish(session, WorkKind.REPAIR, 2, now + timedelta(hours=1))
        hours.offer(session, ids["member"], WorkKind.REPAIR, 3, "energy", 4.0, now, now)
        network = hours_read.network_hours(session, now)
    rows = {r.sector: r for r in network.rows}
    assert (rows["food"].given, rows["food"].reserved, rows["food"].asked) == (1.0, 2.0, 0.0)
    assert rows["other"].asked == 4.0 and rows["food"].offered == 20.0 and rows["food"].percent == 15
    assert network.people == 1 and network.total.offered == 150.0


# --- Routes ----------------------------------------------------------------------------------------------


def _proposed_route(app: Flask, ids: dict[str, int], quantity: float = 50.0) -> dict[str, int]:
    """A proposed route for Ana, tomorrow 09:00-11:00 UTC: 50 L of water from Jayuya to Utuado. A fixed hour,
    so the route never runs past midnight (a route over midnight is written with both days)."""
    start = (utcnow() + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    with get_store(app).sessions.begin() as session:
        plan = session.get(Route, ids["route"])
        assert plan is not None
        shipment = Shipment(
            plan_id=plan.plan_id,
            good_id=ids["water"],
            from_site_id=ids["jayuya_hub"],
            to_site_id=ids["utuado_hub"],
            quantity=quantity,
            status="assigned",
        )
        route = Route(
            plan_id=plan.plan_id,
            member_id=ids["member"],
            status="proposed",
            distance_km=12,
            starts_at=start,
            ends_at=start + timedelta(hours=2),
        )
        session.add_all([shipment, route])
        session.flush()
        shipment.route_id = route.id
        stops = [
            RouteStop(route_id=route.id, position=n, site_id=site, action=action, shipment_id=shipment.id)
            for n, (site, action) in enumerate(
                ((ids["jayuya_hub"], "pickup"), (ids["utuado_hub"], "delivery"))
            )
        ]
        session.add_all(stops)
        session.flush()
        hours.offer(
            session, ids["member"], WorkKind.ROUTE, route.id, "other", 2.0, start, start + timedelta(hours=2)
        )
        return {"route": route.id, "pickup": stops[0].id, "drop": stops[1].id, "shipment": shipment.id}


def _route_state(app: Flask, route_id: int) -> tuple[str, str | None]:
    with get_store(app).sessions() as session:
        route = session.get(Route, route_id)
        entry = session.scalar(
            select(HoursEntry.state).where(HoursEntry.work == "route", HoursEntry.work_id == route_id)
        )
        assert route is not None
        return route.status, entry


def test_a_driver_accepts_then_gives_back_a_route(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    r = _proposed_route(app, ids)
    path = f"/routes/{r['route']}"
    auth.login("anadriver")
    page = auth.client.get(path).get_data(as_text=True)
    assert "Accept this route" in page and "Decline this route" in page and " UTC" in page
    assert _post(auth, f"{path}/accept", {}, path).status_code == 302
    assert _route_state(app, r["route"]) == ("accepted", "reserved")
    page = auth.client.get(path).get_data(as_text=True)
    assert "Give back this route" in page and "Accept this route" not in page
    too_long = _post(auth, f"{path}/release", {"reason": "x" * 501}, path)
    assert too_long.status_code == 400 and "longer than 500" in too_long.get_data(as_text=True)
    again = _post(auth, f"{path}/accept", {}, path)
    assert again.status_code == 409 and "only a proposed route can be accepted" in again.get_data(
        as_text=True
    )
    assert _post(auth, f"{path}/release", {"reason": "flat tyre"}, path).status_code == 302
    assert _route_state(app, r["route"]) == ("declined", "released")
    with get_store(app).sessions() as session:
        shipment = session.get(Shipment, r["shipment"])
        assert shipment is not None and (shipment.status, shipment.route_id) == ("planned", None)
        assert [d.reason for d in session.scalars(select(Decline))] == ["flat tyre"]
    dead = _post(auth, f"{path}/release", {"reason": "still flat"}, path)
    assert dead.status_code == 409 and "this route was declined" in dead.get_data(as_text=True)
    assert "this route was declined" in auth.client.get(path).get_data(as_text=True)


def test_a_driver_declines_a_proposed_route(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    r = _proposed_route(app, ids)
    path = f"/routes/{r['route']}"
    auth.login("anadriver")
    assert _post(auth, f"{path}/decline", {}, path).status_code == 302  # no reason needed: it is voluntary
    assert _route_state(app, r["route"]) == ("declined", "released")
    with get_store(app).sessions() as session:
        assert [d.reason for d in session.scalars(select(Decline))] == [""]
    assert _post(auth, f"{path}/accept", {}, path).status_code == 409


def test_my_routes_lists_current_routes_with_their_time_and_the_planners_notices(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    r = _proposed_route(app, ids)
    gone = _proposed_route(app, ids)
    with get_store(app).sessions.begin() as session:
        deliveries.retire_route(session, gone["route"])
        session.add(
            OutboxMessage(
                topic=member_routes_topic(ids["member"]),
                payload=b'{"v": 1, "event": "route_withdrawn", "route": %d}' % gone["route"],
            )
        )
        session.add(
            OutboxMessage(
                topic=member_routes_topic(ids["member"]),
                payload=b'{"v": 1, "event": "route_updated", "route": %d, "replaces": 41}' % r["route"],
            )
        )
    auth.login("anadriver")
    page = auth.client.get("/routes").get_data(as_text=True)
    listed = [int(n) for n in re.findall(r'href="/routes/(\d+)">Route', page)]
    assert listed == [r["route"], ids["route"]]  # soonest first, untimed last; the withdrawn one is gone
    assert re.search(
        rf"Route {r['route']} · \w{{3}} \d\d \w{{3}} \d\d:\d\d\u2013\d\d:\d\d UTC · proposed", page
    )
    assert f"Route {gone['route']} was withdrawn" in page
    assert (
        f"Route {r['route']} replaces route 41" in page and f'href="/routes/{r["route"]}">open route' in page
    )


@pytest.mark.parametrize("revised", [True, False])
def test_every_action_on_a_superseded_or_withdrawn_route_is_a_409_and_moves_no_stock(
    app: Flask, auth: Auth, ids: dict[str, int], revised: bool
) -> None:
    r = _proposed_route(app, ids)
    with get_store(app).sessions.begin() as session:
        old = session.get(Route, r["route"])
        assert old is not None
        new = Route(plan_id=old.plan_id, member_id=ids["member"], status="proposed", replaces_id=old.id)
        session.add(new)
        session.flush()
        new_id = new.id
        deliveries.retire_route(session, old.id, new_id if revised else None)
        held = stock.held(session, ids["jayuya_hub"], ids["water"])
    message = f"replaced by a revised one (route {new_id})" if revised else "the planner withdrew this route"
    path = f"/routes/{r['route']}"
    auth.login("anadriver")
    page = auth.client.get(path).get_data(as_text=True)
    assert message in page and "Picked up" not in page and "Accept this route" not in page
    assert (f'href="/routes/{new_id}">Open route {new_id}' in page) == revised
    actions = [
        (f"{path}/accept", {}),
        (f"{path}/release", {"reason": "no"}),
        (f"{path}/decline", {"reason": "no"}),
        (f"{path}/stops/{r['pickup']}/done", {}),
        (f"{path}/stops/{r['drop']}/failed", {"reason": "flood"}),
    ]
    for action, data in actions:
        response = _post(auth, action, data, path)
        text = response.get_data(as_text=True)
        assert response.status_code == 409 and message in text, (action, text[:300])
        assert ("Open route" in text) == revised
    with get_store(app).sessions() as session:
        assert stock.held(session, ids["jayuya_hub"], ids["water"]) == held
        assert session.scalars(select(Decline)).all() == []
    assert _route_state(app, r["route"]) == ("superseded" if revised else "withdrawn", "released")
