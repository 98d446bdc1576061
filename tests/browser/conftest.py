"""Browser tests: the dashboard served on 127.0.0.1 and driven by Playwright with Debian's Chromium.

Chromium (/usr/bin/chromium, or RHIZOME_TEST_CHROMIUM) and the `playwright` package are required in CI
(RHIZOME_TEST_REQUIRE_SERVICES=1): missing either fails the run. Elsewhere the tests skip with the reason.
Playwright never downloads a browser here: it drives the system Chromium through `executable_path`.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select, update
from werkzeug.serving import BaseWSGIServer, make_server

from dashboard.web.accounts import MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig
from dashboard.web.store import get_store
from gateway.process.settings import Settings
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import (
    Community,
    Device,
    Good,
    Member,
    RepairTask,
    Route,
    RouteStop,
    Shipment,
    Site,
    TaskEvent,
    utcnow,
)
from gateway.store.region import load_region, read_region, sample_region_path
from logistics.service import plan_once

CHROMIUM_ENV = "RHIZOME_TEST_CHROMIUM"
REQUIRE_ENV = "RHIZOME_TEST_REQUIRE_SERVICES"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IMG_XSS = "<img src=x onerror=alert(document.domain)>"
SCRIPT_XSS = "Río </script><script>alert(2)</script>"
PASSWORD = "correct horse battery"  # test accounts only


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the dashboard in headless Chromium (Playwright)")


def _missing(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, or the one RHIZOME_TEST_CHROMIUM names."""
    path = os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"
    if not (Path(path).is_file() and os.access(path, os.X_OK)) and shutil.which(path) is None:
        _missing(f"Chromium not found at {path} (apt-get install chromium, or set {CHROMIUM_ENV})")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium for the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing(
            "the playwright package is not installed (pip install playwright; no browser download needed)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass(frozen=True)
class Scenario:
    """What the browser store holds, by id."""

    url: str
    communities: int
    crew_member: int
    crew_task: int
    route: int
    driver_member: int
    pickup_stop: int
    delivery_stop: int
    failing_stop: int
    destination: str  # community slug the route delivers to
    good_name: str
    quantity: float


def _hostile_communities(data: dict[str, Any]) -> None:
    """Two communities named to break pages that trust names: offshore, so nothing overlaps them."""
    for i, name in enumerate((IMG_XSS, SCRIPT_XSS)):
        data["communities"].append(
            {
                "slug": f"hostile-{i}",
                "name": name,
                "lat": 18.05 + 0.12 * i,
                "lon": -67.55,
                "population": 3000,
                "sites": [
                    {
                        "slug": "hub",
                        "name": f"{name} hub",
                        "kind": "storage",
                        "lat": 18.05 + 0.12 * i,
                        "lon": -67.56,
                        "devices": [{"slug": f"hostile-{i}-stock", "kind": "stock"}],
                        "stock": {"rice": 10},
                    }
                ],
                "needs": {"rice": {"minimum": 50, "target": 100}},
            }
        )


def _seed(url: str) -> Scenario:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    data = read_region(sample_region_path())
    _hostile_communities(data)
    with sessions.begin() as session:
        load_region(session, data)
        now = utcnow()
        # The demo's picture: every sensor reporting, a few faulty or silent.
        session.execute(update(Device).values(state="online", last_seen_at=now, state_changed_at=now))
        slugs = list(session.scalars(select(Device.slug).order_by(Device.slug)))
        faulty, silent = slugs[7::60], slugs[31::45]
        session.execute(update(Device).where(Device.slug.in_(faulty)).values(state="fault"))
        session.execute(
            update(Device)
            .where(Device.slug.in_(silent))
            .values(state="offline", last_seen_at=now - timedelta(hours=3))
        )
        crew = session.scalar(select(Member).where(Member.is_crew).order_by(Member.id))
        assert crew is not None
        for n, slug in enumerate(faulty):
            device = session.scalar(select(Device).where(Device.slug == slug))
            assert device is not None
            task = RepairTask(
                site_id=device.site_id,
                title=f"Pump fault at {slug}",
                status="assigned" if n == 0 else "open",
                urgency=5 - n,
                required_skills=["pump-mechanic"],
                assigned_member_id=crew.id if n == 0 else None,
                explanation="pressure dropped to zero while the motor ran",
            )
            session.add(task)
            session.flush()
            session.add(TaskEvent(task_id=task.id, member_id=crew.id, event="assigned"))
        crew_task = session.scalar(select(RepairTask.id).where(RepairTask.assigned_member_id == crew.id))
        assert crew_task is not None
    plan_once(sessions, 20.0)  # the real planner: flows on the map
    with sessions.begin() as session:
        driver = session.scalar(select(Member).where(Member.is_driver).order_by(Member.id))
        assert driver is not None
        shipments = list(session.scalars(select(Shipment).order_by(Shipment.quantity.desc()).limit(2)))
        route = Route(plan_id=shipments[0].plan_id, member_id=driver.id, status="accepted", distance_km=42.0)
        session.add(route)
        session.flush()
        ends = [(s, s.from_site_id, "pickup") for s in shipments] + [
            (s, s.to_site_id, "delivery") for s in shipments
        ]
        stops = [
            RouteStop(route_id=route.id, position=n, site_id=site, action=action, shipment_id=shipment.id)
            for n, (shipment, site, action) in enumerate(ends)
        ]
        for shipment in shipments:
            shipment.status, shipment.route_id = "assigned", route.id
        session.add_all(stops)
        session.flush()
        first = shipments[0]
        destination = session.scalar(
            select(Community.slug)
            .join(Site, Site.community_id == Community.id)
            .where(Site.id == first.to_site_id)
        )
        good = session.get(Good, first.good_id)
        assert destination is not None and good is not None
        scenario = Scenario(
            url=url,
            communities=len(data["communities"]),
            crew_member=crew.id,
            crew_task=crew_task,
            route=route.id,
            driver_member=driver.id,
            pickup_stop=stops[0].id,
            delivery_stop=stops[2].id,
            failing_stop=stops[3].id,
            destination=destination,
            good_name=good.name,
            quantity=first.quantity,
        )
    engine.dispose()
    return scenario


@pytest.fixture(scope="session")
def hostile_names() -> tuple[str, str]:
    """The two community names that would run code or break the map if pages trusted them."""
    return IMG_XSS, SCRIPT_XSS


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The sample region plus two hostile names, sensors online, tasks, a plan and a route (SQLite)."""
    return _seed(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'rhizome.db'}")


@pytest.fixture(scope="session")
def app(scenario: Scenario) -> Iterator[Flask]:
    accounts = MemoryAccountStore(
        [
            make_account("crew", PASSWORD, "crew", scenario.crew_member),
            make_account("driver", PASSWORD, "driver", scenario.driver_member),
            make_account("coord", PASSWORD, "coordinator"),
            make_account("guild", PASSWORD, "viewer"),  # a guild member with no member record of their own
        ]
    )
    app = create_app(
        Settings(database_url=scenario.url), DashboardConfig(sse_poll_s=0.2, sse_max_s=30.0), accounts
    )
    yield app
    get_store(app).engine.dispose()


@pytest.fixture(scope="session")
def base_url(app: Flask) -> Iterator[str]:
    """The app served by Werkzeug on 127.0.0.1 (a free port) in a thread, as `rhizome dashboard` does."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@dataclass
class Traffic:
    """Every URL the page asked for; anything not on 127.0.0.1 was refused and kept in `outside`."""

    requested: list[str]
    outside: list[str]
    failed: list[str]


@pytest.fixture
def traffic() -> Traffic:
    return Traffic([], [], [])


@pytest.fixture
def context(browser: Any, traffic: Traffic, base_url: str) -> Iterator[Any]:
    """A fresh browser profile that refuses (and records) every request leaving 127.0.0.1."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 800}, base_url=base_url)

    def guard(route: Any) -> None:
        url = route.request.url
        traffic.requested.append(url)
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            traffic.outside.append(url)
            route.abort("blockedbyclient")

    ctx.route("**/*", guard)

    def failed(request: Any) -> None:
        # Leaving the crew page cancels its open event stream, and leaving the map (or panning it) cancels
        # the basemap's tile range reads in flight (protomaps-leaflet aborts them): the page's own doing.
        cancelled = ("/crew/events" in request.url or "/map/basemap.pmtiles" in request.url) and (
            request.failure == "net::ERR_ABORTED"
        )
        if not cancelled:
            traffic.failed.append(f"{request.url}: {request.failure}")

    ctx.on("requestfailed", failed)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    """A page that fails the test on any JavaScript error or dialog (an alert() would be injected code)."""
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    tab.js_errors = errors
    return tab


@pytest.fixture
def login(page: Any) -> Callable[[str], None]:
    """Sign `page` in through the login form as one of the test accounts (crew, driver, coord)."""

    def sign_in(username: str) -> None:
        page.goto("/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert page.locator("form[action='/logout']").count() == 1, page.content()[:500]

    return sign_in


def map_state(page: Any) -> dict[str, Any]:
    """What the map drew: markers per layer, how many are on the map and inside the visible bounds."""
    return page.evaluate(
        """() => {
            const r = RhizomeMap.registry, bounds = r.map.getBounds(), out = {};
            for (const [kind, layer] of Object.entries(r.layers)) {
                const markers = layer.getLayers ? layer.getLayers() : [];
                out[kind] = {
                    total: markers.length,
                    on_map: r.map.hasLayer(layer),
                    visible: markers.filter(m => m.getLatLng && bounds.contains(m.getLatLng())).length,
                };
            }
            return out;
        }"""
    )


@pytest.fixture
def drawn_map(page: Any) -> Callable[[], dict[str, Any]]:
    """Open the map and wait until every layer is built; returns a function reading `map_state`."""

    def open_map() -> dict[str, Any]:
        page.goto("/")
        page.wait_for_function("() => window.RhizomeMap && RhizomeMap.registry.layers.tasks !== undefined")
        page.wait_for_selector(".rz-cluster-icon")  # the site clusters are drawn (the last async layer)
        return map_state(page)

    return open_map
