"""Pages people work from: login and roles, CSRF, crew tasks and alerts, driver stops, coordinator forms,
charts and downloads. Writes run against the integration store (PostgreSQL in CI)."""

from __future__ import annotations

import csv
import io
import json
import re
import runpy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from dashboard.api.exports import shortages_csv, shortages_geojson
from dashboard.read import history
from dashboard.read.progress import Shortage
from dashboard.views import charts
from dashboard.web import accounts
from dashboard.web.accounts import Account, MemoryAccountStore, authenticate, make_account
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig
from dashboard.web.ratelimit import Backoff, LoginThrottle
from dashboard.web.store import get_store
from gateway.contract.topics import member_alerts_topic
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import (
    Community,
    DeliveryPlan,
    Device,
    Good,
    Member,
    OutboxMessage,
    Reading,
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
from gateway.store.region import load_region
from tests.conftest import tiny_region_data

PASSWORD = "a long enough secret"


@pytest.fixture
def ids(engine: Engine) -> dict[str, int]:
    """The tiny region, a repair task assigned to Ana, a route moving 100 L of water Jayuya -> Utuado."""
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        load_region(session, tiny_region_data())
        ana = session.scalar(select(Member).where(Member.name == "Ana"))
        pump = session.scalar(select(Site).where(Site.slug == "pump-1"))
        hubs = {
            c: session.scalar(select(Site).join(Community).where(Community.slug == c, Site.slug == "hub"))
            for c in ("utuado", "jayuya")
        }
        water = session.scalar(select(Good).where(Good.slug == "water"))
        assert ana and pump and water and all(hubs.values())
        task = RepairTask(
            site_id=pump.id,
            title="Pump <b>1</b> dry",
            status="assigned",
            urgency=3,
            assigned_member_id=ana.id,
        )
        session.add(task)
        plan = DeliveryPlan(status="active")
        session.add(plan)
        session.flush()
        shipment = Shipment(
            plan_id=plan.id,
            good_id=water.id,
            from_site_id=hubs["jayuya"].id,
            to_site_id=hubs["utuado"].id,
            quantity=100.0,
            status="assigned",
        )
        route = Route(plan_id=plan.id, member_id=ana.id, status="accepted", distance_km=20)
        session.add_all([shipment, route])
        session.flush()
        shipment.route_id = route.id  # a stop records only a shipment still on its route
        pickup = RouteStop(
            route_id=route.id, position=0, site_id=hubs["jayuya"].id, action="pickup", shipment_id=shipment.id
        )
        drop = RouteStop(
            route_id=route.id,
            position=1,
            site_id=hubs["utuado"].id,
            action="delivery",
            shipment_id=shipment.id,
        )
        session.add_all([pickup, drop])
        session.flush()
        return {
            "member": ana.id,
            "task": task.id,
            "route": route.id,
            "pickup": pickup.id,
            "drop": drop.id,
            "shipment": shipment.id,
            "utuado_hub": hubs["utuado"].id,
            "jayuya_hub": hubs["jayuya"].id,
            "water": water.id,
            "pump": pump.id,
        }


@pytest.fixture(scope="module")
def password_hash() -> str:
    """PASSWORD hashed once (scrypt is slow on purpose)."""
    return make_account("someone", PASSWORD, "viewer").password_hash


@pytest.fixture
def app(engine: Engine, database_url: str, ids: dict[str, int], password_hash: str) -> Iterator[Flask]:
    roles = [
        ("ana", "crew", ids["member"]),
        ("anadriver", "driver", ids["member"]),
        ("other", "driver", ids["member"] + 1000),
        ("coord", "coordinator", None),
        ("viewer", "viewer", None),
    ]
    accounts = MemoryAccountStore(
        [Account(name, password_hash, role, member) for name, role, member in roles]
    )
    app = create_app(
        Settings(database_url=database_url),
        DashboardConfig(sse_poll_s=0.05, sse_max_s=0.3, login_max_failures=3),
        accounts,
        test_config={"TESTING": True},
    )
    yield app
    get_store(app).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Auth:
    """Signs the test client in through the real form (CSRF token included)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def token(self, path: str = "/login") -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', self.client.get(path).get_data(as_text=True))
        assert found is not None
        return found.group(1)

    def login(self, username: str, password: str = PASSWORD) -> Any:
        data = {"username": username, "password": password, "csrf_token": self.token()}
        return self.client.post("/login", data=data)

    def post(self, path: str, data: dict[str, str] | None = None, page: str = "/") -> Any:
        return self.client.post(path, data={**(data or {}), "csrf_token": self.token(page)})


@pytest.fixture
def auth(client: FlaskClient) -> Auth:
    return Auth(client)


def test_login_sets_a_hardened_session_cookie(auth: Auth) -> None:
    response = auth.login("ana")
    assert response.status_code == 302 and response.location == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("rhizome_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Sign out ana" in auth.client.get("/shortages").get_data(as_text=True)


def test_wrong_password_then_rate_limited(auth: Auth) -> None:
    for _ in range(3):
        assert auth.login("ana", "wrong password!").status_code == 401
    refused = auth.login("ana")  # right password, but after 3 failures in the window
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many attempts" in refused.get_data(as_text=True)


def test_login_redirect_stays_on_this_site(auth: Auth) -> None:
    data = {"username": "coord", "password": PASSWORD, "csrf_token": auth.token(), "next": "//evil.example/x"}
    assert auth.client.post("/login", data=data).location == "/"


@pytest.mark.parametrize("path", ["/login", "/logout", "/coordinator/community"])
def test_a_post_without_the_csrf_token_is_refused(client: FlaskClient, path: str) -> None:
    response = client.post(path, data={"username": "coord", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        (None, "/crew", 302),
        (None, "/coordinator", 302),
        ("viewer", "/crew", 403),
        ("ana", "/coordinator", 403),
        ("ana", "/routes", 403),
        ("other", "/routes/{route}", 404),  # a driver sees only their own routes
        ("anadriver", "/routes/{route}", 200),
        ("coord", "/routes/{route}", 200),
        ("coord", "/coordinator/dead-letters", 200),
        ("coord", "/crew?member={member}", 200),
        ("coord", "/crew?member=99999999999999999999", 400),
        ("coord", "/crew?member=424242", 404),
    ],
)
def test_roles(auth: Auth, ids: dict[str, int], user: str | None, path: str, status: int) -> None:
    if user:
        auth.login(user)
    assert auth.client.get(path.format(**ids)).status_code == status


def test_a_private_map_needs_an_account(engine: Engine, database_url: str, ids: dict[str, int]) -> None:
    app = create_app(
        Settings(database_url=database_url),
        DashboardConfig(public_map=False),
        accounts=MemoryAccountStore([make_account("viewer", PASSWORD, "viewer")]),
    )
    client = app.test_client()
    assert client.get("/").status_code == 302
    assert client.get("/api/communities").status_code == 401
    auth = Auth(client)
    auth.login("viewer")
    assert client.get("/").status_code == 200 and client.get("/api/communities").status_code == 200
    get_store(app).engine.dispose()


def _task_status(app: Flask, task_id: int) -> tuple[str, list[tuple[str, str]]]:
    with get_store(app).sessions() as session:
        task = session.get(RepairTask, task_id)
        assert task is not None
        events = session.execute(
            select(TaskEvent.event, TaskEvent.reason)
            .where(TaskEvent.task_id == task_id)
            .order_by(TaskEvent.id)
        ).all()
        return task.status, [tuple(e) for e in events]


def test_crew_works_a_task_to_fixed_pending(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("ana")
    page = auth.client.get("/crew").get_data(as_text=True)
    assert "Pump &lt;b&gt;1&lt;/b&gt; dry" in page and "<b>1</b>" not in page
    for action in ("accept", "start", "fixed"):
        response = auth.post(f"/crew/tasks/{ids['task']}/{action}", page="/crew")
        assert response.status_code == 302, response.get_data(as_text=True)
    assert _task_status(app, ids["task"]) == (
        "fixed_pending",
        [("accepted", ""), ("started", ""), ("marked_fixed", "")],
    )
    again = auth.post(f"/crew/tasks/{ids['task']}/start", page="/crew")
    refused = again.get_data(as_text=True)
    assert again.status_code == 409 and "This task is already marked fixed" in refused
    assert "fixed_pending" not in refused and "marked_fixed" not in refused


def test_declining_needs_a_reason_and_hands_the_task_back(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("ana")
    assert auth.post(f"/crew/tasks/{ids['task']}/decline", page="/crew").status_code == 400
    response = auth.post(f"/crew/tasks/{ids['task']}/decline", {"reason": "no car this week"}, page="/crew")
    assert response.status_code == 302
    assert _task_status(app, ids["task"]) == ("open", [("declined", "no car this week")])
    assert auth.post(f"/crew/tasks/{ids['task']}/accept", page="/crew").status_code == 404  # not hers now
    assert auth.post(f"/crew/tasks/{ids['task']}/explode", page="/crew").status_code == 404


def test_alert_stream_sends_new_alerts_and_tasks(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("ana")
    with get_store(app).sessions.begin() as session:
        session.add(
            OutboxMessage(topic=member_alerts_topic(ids["member"]), payload=b'{"text": "Pump 1 <dry>"}')
        )
        session.add(
            OutboxMessage(topic=member_alerts_topic(ids["member"] + 1), payload=b'{"text": "not hers"}')
        )
    response = auth.client.get("/crew/events?after=0&tasks_after=0")
    assert response.mimetype == "text/event-stream" and "Content-Encoding" not in response.headers
    body = response.get_data(as_text=True)  # the stream ends after SSE_MAX_S
    events = [block for block in body.split("\n\n") if "event:" in block]
    alerts = [json.loads(b.split("data: ", 1)[1]) for b in events if "event: alert" in b]
    tasks = [json.loads(b.split("data: ", 1)[1]) for b in events if "event: task" in b]
    assert [a["text"] for a in alerts] == ["Pump 1 <dry>"]
    assert [t["id"] for t in tasks] == [ids["task"]]
    assert auth.client.get("/crew/events?after=x").status_code == 400


def _stock(app: Flask, site_id: int, good_id: int) -> float:
    with get_store(app).sessions() as session:
        row = session.get(Stock, (site_id, good_id))
        return row.quantity if row else 0.0


def test_driver_pickup_and_delivery_write_the_ledger(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("anadriver")
    route = f"/routes/{ids['route']}"
    early = auth.post(f"{route}/stops/{ids['drop']}/done", page=route)
    assert early.status_code == 409 and "pick the goods up first" in early.get_data(as_text=True)
    loaded = {"quantity": "100"}  # required: an empty box is never taken as the planned quantity
    assert auth.post(f"{route}/stops/{ids['pickup']}/done", loaded, page=route).status_code == 302
    assert auth.post(f"{route}/stops/{ids['drop']}/done", page=route).status_code == 302
    assert _stock(app, ids["jayuya_hub"], ids["water"]) == 8900.0
    assert _stock(app, ids["utuado_hub"], ids["water"]) == 600.0
    with get_store(app).sessions() as session:
        ledger = session.execute(
            select(StockLedgerEntry.site_id, StockLedgerEntry.delta, StockLedgerEntry.source)
            .where(StockLedgerEntry.shipment_id == ids["shipment"])
            .order_by(StockLedgerEntry.id)
        ).all()
        assert [tuple(r) for r in ledger] == [
            (ids["jayuya_hub"], -100.0, "delivery"),
            (ids["utuado_hub"], 100.0, "delivery"),
        ]
        assert session.get(Shipment, ids["shipment"]).status == "delivered"  # type: ignore[union-attr]
        assert session.get(Route, ids["route"]).status == "done"  # type: ignore[union-attr]
    twice = auth.post(f"{route}/stops/{ids['drop']}/done", page=route)
    assert twice.status_code == 409 and "already recorded" in twice.get_data(as_text=True)


def test_a_short_pickup_loads_what_is_there_and_delivers_that(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    """The source had less than planned by the time the driver came: she loads 40 of 100 (a decimal comma
    from a phone keyboard is fine), and the drop-off delivers those 40."""
    auth.login("anadriver")
    route = f"/routes/{ids['route']}"
    assert 'name="quantity"' in auth.client.get(route).get_data(as_text=True)
    assert (
        auth.post(f"{route}/stops/{ids['pickup']}/done", {"quantity": "40,0"}, page=route).status_code == 302
    )
    assert auth.post(f"{route}/stops/{ids['drop']}/done", page=route).status_code == 302
    assert _stock(app, ids["jayuya_hub"], ids["water"]) == 8960.0
    assert _stock(app, ids["utuado_hub"], ids["water"]) == 540.0
    with get_store(app).sessions() as session:
        ledger = session.execute(
            select(StockLedgerEntry.delta, StockLedgerEntry.reason)
            .where(StockLedgerEntry.shipment_id == ids["shipment"])
            .order_by(StockLedgerEntry.id)
        ).all()
        assert [tuple(r) for r in ledger] == [
            (-40.0, "picked up 40 of 100"),
            (40.0, f"delivered (route {ids['route']})"),
        ]


def test_failed_delivery_returns_the_goods_and_keeps_the_reason(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("anadriver")
    route = f"/routes/{ids['route']}"
    auth.post(f"{route}/stops/{ids['pickup']}/done", {"quantity": "100"}, page=route)
    assert auth.post(f"{route}/stops/{ids['drop']}/failed", page=route).status_code == 400  # no reason
    assert (
        auth.post(f"{route}/stops/{ids['drop']}/failed", {"reason": "road flooded"}, page=route).status_code
        == 302
    )
    assert _stock(app, ids["jayuya_hub"], ids["water"]) == 9000.0
    with get_store(app).sessions() as session:
        shipment = session.get(Shipment, ids["shipment"])
        assert shipment is not None and (shipment.status, shipment.failure_reason) == (
            "failed",
            "road flooded",
        )
    assert "Failed: road flooded" in auth.client.get(route).get_data(as_text=True)


def test_gpx_lists_the_stops_in_order(auth: Auth, ids: dict[str, int]) -> None:
    auth.login("anadriver")
    response = auth.client.get(f"/routes/{ids['route']}.gpx")
    assert (
        response.mimetype == "application/gpx+xml" and "attachment" in response.headers["Content-Disposition"]
    )
    text = response.get_data(as_text=True)
    assert text.startswith('<?xml version="1.0"') and '<gpx version="1.1"' in text
    names = re.findall(r"<rtept [^>]*><name>([^<]*)</name>", text)
    assert names == ["1. Hub (Jayuya)", "2. Hub (Utuado)"]
    assert "pickup 100 L Water" in text


@pytest.mark.parametrize(
    ("form", "data", "message"),
    [
        ("community", {"slug": "Bad Slug", "name": "X", "lat": "1", "lon": "1", "population": "1"}, "slug"),
        ("community", {"slug": "x", "name": "X", "lat": "91", "lon": "1", "population": "1"}, "lat must be"),
        ("community", {"slug": "utuado", "name": "X", "lat": "1", "lon": "1", "population": "1"}, "already"),
        (
            "site",
            {"community": "nowhere", "slug": "s", "name": "S", "kind": "pump", "lat": "1", "lon": "1"},
            "no community",
        ),
        (
            "site",
            {"community": "utuado", "slug": "s", "name": "S", "kind": "castle", "lat": "1", "lon": "1"},
            "kind must",
        ),
        ("good", {"slug": "g", "name": "G", "unit": "kg", "sector": "gold"}, "sector must"),
        ("need", {"community": "utuado", "good": "water", "minimum": "10", "target": "5"}, "target must"),
        ("need", {"community": "utuado", "good": "water", "minimum": "nan", "target": "5"}, "minimum must"),
        (
            "member",
            {"community": "utuado", "name": "B", "lat": "1", "lon": "1", "skills": "Pump Fixing"},
            "skills",
        ),
    ],
)
def test_coordinator_forms_reject_bad_values_with_a_400(
    auth: Auth, form: str, data: dict[str, str], message: str
) -> None:
    auth.login("coord")
    response = auth.post(f"/coordinator/{form}", data, page="/coordinator")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_coordinator_registers_a_community_site_need_and_member(app: Flask, auth: Auth) -> None:
    auth.login("coord")
    forms = [
        (
            "community",
            {
                "slug": "adjuntas",
                "name": "Adjuntas <3",
                "lat": "18.16",
                "lon": "-66.72",
                "population": "18000",
            },
        ),
        (
            "site",
            {
                "community": "adjuntas",
                "slug": "hub",
                "name": "Plaza",
                "kind": "storage",
                "lat": "18.16",
                "lon": "-66.72",
            },
        ),
        ("need", {"community": "adjuntas", "good": "rice", "minimum": "50", "target": "200"}),
        (
            "member",
            {
                "community": "adjuntas",
                "name": "Luz",
                "lat": "18.16",
                "lon": "-66.72",
                "is_crew": "on",
                "skills": "solar, pump-mechanic",
            },
        ),
    ]
    for form, data in forms:
        assert auth.post(f"/coordinator/{form}", data, page="/coordinator").status_code == 302, form
    with get_store(app).sessions() as session:
        luz = session.scalar(select(Member).where(Member.name == "Luz"))
        assert (
            luz is not None
            and luz.is_crew
            and sorted(s.skill for s in luz.skills) == ["pump-mechanic", "solar"]
        )
    shortages = auth.client.get("/api/shortages").get_json()["shortages"]
    assert {"community": "adjuntas", "good": "rice", "gap": 50.0} in [
        {k: s[k] for k in ("community", "good", "gap")} for s in shortages
    ]
    assert auth.post("/coordinator/nonsense", {}, page="/coordinator").status_code == 404


def test_dead_letters_are_shown_as_text(app: Flask, auth: Auth) -> None:
    from gateway.store.models import DeadLetter

    with get_store(app).sessions.begin() as session:
        session.add(
            DeadLetter(topic="rhizome/v1/x", payload=b"<script>alert(1)</script>\xff", reason="not_json")
        )
    auth.login("coord")
    page = auth.client.get("/coordinator/dead-letters?reason=not_json").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\ufffd" in page and "<script>alert" not in page
    assert auth.client.get("/coordinator/dead-letters?reason=nope").status_code == 404


def test_community_and_site_pages_chart_stock_and_telemetry(
    app: Flask, client: FlaskClient, ids: dict[str, int]
) -> None:
    now = utcnow()
    with get_store(app).sessions.begin() as session:
        device = session.scalar(select(Device).where(Device.slug == "utuado-pump-1-pump"))
        assert device is not None
        for n in range(5):
            session.add(
                Reading(
                    device_id=device.id,
                    seq=n + 1,
                    kind="telemetry",
                    device_ts=now - timedelta(hours=n),
                    payload={"v": 1, "metrics": {"pressure_kpa": 100.0 + n, "running": n % 2 == 0}},
                )
            )
    page = client.get("/communities/utuado").get_data(as_text=True)
    assert page.count("<svg") >= 1 and "Water: stock over the last 30d" in page
    site = client.get("/communities/utuado/sites/pump-1?window=7d").get_data(as_text=True)
    assert "utuado-pump-1-pump · pressure kpa" in site and site.count("<polyline") == 2
    assert client.get("/communities/utuado?window=1y").status_code == 400
    assert client.get("/communities/nowhere").status_code == 404
    assert client.get("/communities/utuado/sites/nope").status_code == 404


def test_stock_history_starts_at_the_window_and_sums_sites(engine: Engine, ids: dict[str, int]) -> None:
    sessions = make_session_factory(engine)
    start = utcnow() + timedelta(minutes=1)  # after the region load's initial entries
    with sessions.begin() as session:
        utuado = session.scalar(select(Community.id).where(Community.slug == "utuado"))
        for hours, site, after in ((0, "utuado_hub", 50.0), (2, "pump", 7.0), (4, "utuado_hub", 80.0)):
            session.add(
                StockLedgerEntry(
                    site_id=ids[site],
                    good_id=ids["water"],
                    delta=1,
                    quantity_after=after,
                    reason="test",
                    source="adjustment",
                    created_at=start + timedelta(hours=hours),
                )
            )
    with sessions() as session:
        series = history.stock_history(session, utuado, ids["water"], start + timedelta(hours=1))  # type: ignore[arg-type]
    values = [v for t, v in series if t >= start + timedelta(hours=1)]
    # the region load's initial entry (500 at the hub) is older; 50 replaced it before the window opened
    assert values == [50.0, 57.0, 87.0]


def test_charts_escape_labels_and_downsample() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    points = [(t0 + timedelta(minutes=i), float(i)) for i in range(1000)]
    svg = str(
        charts.line_chart(points, "<script>x</script>", "<b>kg</b>", reference=10, reference_label="min")
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;kg" in svg
    assert len(charts.downsample(points)) == charts.MAX_POINTS
    assert "no data" in str(charts.line_chart([], "empty"))


def test_csv_is_spreadsheet_safe_and_geojson_is_lon_lat() -> None:
    shortage = Shortage(
        "c", '=HYPERLINK("x")', 18.2, -66.5, "w", "Water", "water", True, "L", 1.0, 10.0, 20.0
    )
    rows = list(csv.DictReader(io.StringIO(shortages_csv([shortage]))))
    assert rows[0]["community_name"] == '\'=HYPERLINK("x")' and rows[0]["gap"] == "9.0"
    feature = shortages_geojson([shortage])["features"][0]
    assert feature["geometry"] == {"type": "Point", "coordinates": [-66.5, 18.2]}
    assert feature["properties"]["level"] == "critical"


def test_downloads_and_sectors(client: FlaskClient) -> None:
    csv_response = client.get("/api/shortages.csv")
    assert csv_response.mimetype == "text/csv" and csv_response.get_data(as_text=True).startswith(
        "\ufeffcommunity,"  # a byte-order mark first, for spreadsheets (tests/test_hardening_exports.py)
    )
    geojson = client.get("/api/shortages.geojson")
    assert geojson.mimetype == "application/geo+json" and geojson.get_json()["type"] == "FeatureCollection"
    sectors = {s["sector"]: s for s in client.get("/api/sectors").get_json()["sectors"]}
    # utuado holds 500 of 1000 L water, jayuya 9000 of 1000: one of two water goals met
    assert (sectors["water"]["goals"], sectors["water"]["met"], sectors["water"]["percent"]) == (2, 1, 50)
    assert sectors["water"]["text"] == "Water: 50% of this month's goals met"
    flows = client.get("/api/flows.geojson").get_json()["features"]
    assert flows[0]["geometry"]["coordinates"] == [[-66.59, 18.22], [-66.7, 18.27]]
    assert client.get("/api/tasks").get_json()["tasks"][0]["title"] == "Pump <b>1</b> dry"


def test_openapi_documents_every_api_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    documented = set(document["paths"])
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            assert path in documented, path
            methods = set(rule.methods or ()) - {"HEAD", "OPTIONS"}
            assert {m.lower() for m in methods} <= set(document["paths"][path]), (path, methods)


def test_accounts_hash_passwords_and_check_them() -> None:
    account = make_account("luz", PASSWORD, "crew", 3)
    assert PASSWORD not in account.password_hash and account.password_hash.startswith(("scrypt:", "pbkdf2:"))
    store = MemoryAccountStore([account])
    assert authenticate(store, "luz", PASSWORD) == account
    assert authenticate(store, "luz", "nope") is None and authenticate(store, "nobody", PASSWORD) is None
    with pytest.raises(ValueError, match="at least"):
        make_account("luz", "short", "crew", 3)
    with pytest.raises(ValueError, match="needs the member"):
        make_account("luz", PASSWORD, "driver")
    with pytest.raises(ValueError, match="role"):
        make_account("luz", PASSWORD, "admin")


def test_outside_the_tests_a_password_costs_werkzeugs_full_scrypt() -> None:
    """The conftest lowers the cost for the suite's logins; the module run afresh shows the shipped one."""
    shipped = runpy.run_path(accounts.__file__)  # a new namespace: the suite's setting is not in it
    account = shipped["make_account"]("luz", PASSWORD, "viewer")
    assert account.password_hash.startswith("scrypt:32768:8:1$")
    assert shipped["_DUMMY_HASH"].startswith("scrypt:32768:8:1$")
    assert accounts.PASSWORD_METHOD == "scrypt:1024:8:1"  # and the suite's own stays as it was


def test_file_account_store_is_private_and_reloads(tmp_path: Any) -> None:
    from dashboard.web.accounts import FileAccountStore

    path = tmp_path / "accounts.json"
    store = FileAccountStore(path)
    store.put(make_account("coord", PASSWORD, "coordinator"))
    assert path.stat().st_mode & 0o777 == 0o600
    assert FileAccountStore(path).get("coord") is not None and [a.username for a in store] == ["coord"]


def test_login_backoff_grows_softly() -> None:
    pair = Backoff(free=3, base_s=2.0, max_s=30.0)
    assert [pair.delay_s(n) for n in range(1, 9)] == [0, 0, 2, 4, 8, 16, 30, 30]
    account = LoginThrottle.from_config(3, 2.0, 900.0, 3600.0).account
    assert account.free == 12 and [account.delay_s(n) for n in (11, 12, 13, 200)] == [0, 2, 4, 60]
    with pytest.raises(ValueError):
        Backoff(free=0, base_s=1.0, max_s=1.0)


def test_ledger_count_is_unchanged_by_reading_pages(app: Flask, client: FlaskClient) -> None:
    with get_store(app).sessions() as session:
        before = session.scalar(select(func.count()).select_from(StockLedgerEntry))
    for path in ("/", "/shortages", "/communities/utuado", "/api/shortages"):
        assert client.get(path).status_code == 200, path
    with get_store(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(StockLedgerEntry)) == before


# Every route, given a bad request (unknown id, malformed id, bad form or query value): a 4xx with a
# message, never a 500. `{route}`, `{drop}`, `{task}`, `{member}` are the ids of the `ids` fixture.
BAD_GETS = [
    ("/communities/nowhere", 404, "no such community"),
    ("/communities/NOT_A_SLUG", 404, "no such community"),
    ("/communities/utuado?window=forever", 400, "window must be one of"),
    ("/communities/utuado/sites/nowhere", 404, "no such site"),
    ("/communities/utuado/sites/hub?window=1y", 400, "window must be one of"),
    ("/routes/999999", 404, "no such route"),
    ("/routes/abc", 404, "Not Found"),
    ("/routes/0", 404, "Not Found"),
    ("/routes/99999999999999999999", 404, "Not Found"),
    ("/routes/999999.gpx", 404, "no such route"),
    ("/coordinator/members/999999/offer", 404, "no such member"),
    ("/coordinator/members/abc/offer", 404, "Not Found"),
    ("/crew?member=abc", 400, "member must be"),
    ("/crew?member=-1", 400, "member must be"),
    ("/crew/events?member={member}&after=x", 400, "after must be"),
    ("/coordinator/dead-letters?reason=nothing-like-it", 404, "no dead letters"),
    ("/map/sites.json?bbox=1,2,3,4", 400, "no query parameters"),
    ("/api/sites/abc", 404, "Not Found"),
    ("/api/sites/999999", 404, "no site"),
    ("/api/communities/nowhere", 404, "no community"),
    ("/api/tasks?community=Bad%20Slug", 400, "must be a slug"),
    ("/nothing/here", 404, "Not Found"),
]
BAD_POSTS = [
    ("/routes/999999/stops/{drop}/done", {}, 404, "no such route"),
    ("/routes/{route}/stops/999999/done", {}, 404, "no such stop"),
    ("/routes/{route}/stops/{drop}/teleported", {}, 404, "unknown outcome"),
    ("/routes/{route}/stops/{drop}/failed", {}, 400, "say why"),
    ("/routes/{route}/stops/{drop}/failed", {"reason": "x" * 501}, 400, "longer than 500"),
    ("/routes/{route}/stops/{drop}/done", {}, 409, "pick the goods up first"),
    ("/routes/{route}/stops/{pickup}/done", {"quantity": "lots"}, 400, "is not a number"),
    ("/routes/{route}/stops/{pickup}/done", {"quantity": "nan"}, 400, "must be a number"),
    (
        "/routes/{route}/stops/{pickup}/done",
        {"quantity": "0"},
        400,
        "more than 0 and at most the planned 100",
    ),
    ("/routes/{route}/stops/{pickup}/done", {"quantity": "101"}, 400, "at most the planned 100"),
    ("/routes/{route}/stops/{pickup}/done", {}, 400, "say how much you loaded (planned: 100 L)"),
    ("/routes/{route}/stops/{pickup}/done", {"quantity": "  "}, 400, "not taken as the plan"),
    ("/routes/{route}/stops/{pickup}/done", {"quantity": "5", "action_id": "x"}, 400, "must be a UUID"),
    ("/routes/999999/accept", {}, 404, "no such route"),
    ("/routes/{route}/accept", {}, 409, "only a proposed route can be accepted"),
    ("/routes/{route}/release", {"action_id": "1234"}, 400, "must be a UUID"),
    ("/routes/{route}/release", {"reason": "x" * 501}, 400, "longer than 500"),
    ("/coordinator/members/999999/offer", {}, 404, "no such member"),
    ("/coordinator/members/{member}/offer", {}, 400, "hours per week must be a number"),
    ("/me/declines/999999/ask-again", {}, 404, "not linked to a member"),
    ("/crew/tasks/999999/accept?member={member}", {}, 404, "no"),
    ("/crew/tasks/{task}/fly?member={member}", {}, 404, "fly"),
    ("/crew/tasks/{task}/decline?member={member}", {}, 400, "say why you decline"),
    ("/coordinator/nothing", {}, 404, "no form"),
    ("/coordinator/community", {}, 400, "slug must be lowercase letters"),
    (
        "/coordinator/community",
        {"slug": "new", "name": "N", "lat": "north", "lon": "0", "population": "1"},
        400,
        "must be a number",
    ),
    (
        "/coordinator/site",
        {"community": "nowhere", "slug": "s", "name": "S", "kind": "pump", "lat": "0", "lon": "0"},
        400,
        "no community",
    ),
    (
        "/coordinator/need",
        {"community": "utuado", "good": "water", "minimum": "9", "target": "1"},
        400,
        "at least the minimum",
    ),
    (
        "/coordinator/member",
        {"community": "utuado", "name": "M", "lat": "0", "lon": "0", "skills": "Bad Skill"},
        400,
        "skills must be slugs",
    ),
]


def _answers(response: Any, status: int, message: str) -> str | None:
    """None if `response` is the expected 4xx with the message, else what it was instead."""
    text = response.get_data(as_text=True)
    if response.status_code == status and message in text:
        return None
    return f"{response.status_code}: {text[:300]}"


def test_bad_get_requests_are_4xx_with_a_message(auth: Auth, ids: dict[str, int]) -> None:
    """One store and one login for every case (each is refused, so none changes what the next sees)."""
    auth.login("coord")
    wrong = {
        path: found
        for path, status, message in BAD_GETS
        if (found := _answers(auth.client.get(path.format(**ids)), status, message))
    }
    assert wrong == {}


def test_bad_posts_are_4xx_with_a_message(auth: Auth, ids: dict[str, int]) -> None:
    auth.login("coord")
    wrong = {
        f"{path} {form}": found
        for path, form, status, message in BAD_POSTS
        if (found := _answers(auth.post(path.format(**ids), form, page="/coordinator"), status, message))
    }
    assert wrong == {}
