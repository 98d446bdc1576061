"""The coordinator's desk in headless Chromium: the plan page (coverage, why shortages go unmet, pause,
re-plan and approve driving a real planner loop), members and workload (coordinators only), the routes
list's filters with failed deliveries first, and no page scrolling sideways at 360 or 1366 px.

Each test has its own store (the tiny region plus shortages no plan can meet) and its own server, so the
planner's runs and the controls never leak into the shared browser scenario."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from dashboard.web.accounts import MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.store import get_store
from gateway.process.settings import Settings
from gateway.store import hours
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Community, Member, PlanRun, Route, RouteStop, Shipment, Vehicle, utcnow
from gateway.store.models.vocab import WorkKind
from gateway.store.region import load_region
from logistics import service
from tests.browser.conftest import PASSWORD
from tests.browser.test_layout_browser import overflow
from tests.test_plan_desk import desk_region

pytestmark = pytest.mark.browser


@dataclass
class Desk:
    """A served dashboard on its own store."""

    url: str
    sessions: sessionmaker[Session]
    ana: int


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        load_region(session, desk_region())
        session.execute(update(Vehicle).values(capacity_kg=5000.0))
        session.execute(update(Member).values(hours_per_week=40))
        ana = session.scalars(select(Member.id).where(Member.name == "Ana")).one()
    accounts = MemoryAccountStore(
        [make_account("coord", PASSWORD, "coordinator"), make_account("driver", PASSWORD, "driver", ana)]
    )
    app = create_app(Settings(database_url=url), accounts=accounts)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="desk-http", daemon=True)
    thread.start()
    yield Desk(f"http://127.0.0.1:{server.server_port}", sessions, ana)
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    get_store(app).engine.dispose()
    engine.dispose()


@pytest.fixture
def tab(browser: Any, desk: Desk) -> Iterator[Callable[[str], Any]]:
    """A function opening a signed-in page (as "coord", "driver", or nobody for None) in a fresh profile
    that refuses every request leaving 127.0.0.1 and fails on any script error."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_as(user: str | None) -> Any:
        ctx = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=desk.url)
        contexts.append(ctx)
        ctx.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(("http://127.0.0.1", "data:"))
                else route.abort("blockedbyclient")
            ),
        )
        page = ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if user is not None:
            page.goto("/login")
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            assert page.locator("form[action='/logout']").count() == 1
        return page

    yield open_as
    for ctx in contexts:
        ctx.close()
    assert errors == []


def planned_runs(desk: Desk) -> list[PlanRun]:
    with desk.sessions() as session:
        return list(session.scalars(select(PlanRun).where(PlanRun.outcome == "planned").order_by(PlanRun.id)))


def wait_until(check: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def planner_loop(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real planner loop on the desk's store, with an hour's timer: only the desk makes it run again."""
    monkeypatch.setattr(service, "CONTROL_POLL_S", 0.2)
    stop = threading.Event()
    thread = threading.Thread(target=service.run_loop, args=(desk.sessions, 3600.0, 10.0, stop), daemon=True)
    thread.start()
    wait_until(lambda: len(planned_runs(desk)) == 1)
    yield
    stop.set()
    thread.join(timeout=60)


def test_the_plan_page_shows_coverage_and_why_and_its_controls_drive_the_planner(
    desk: Desk, tab: Callable[[str | None], Any], planner_loop: None
) -> None:
    page = tab("coord")
    page.goto("/coordinator/plan")
    facts = page.locator("#rz-plan-facts").inner_text()
    assert "by run" in facts and "the planner starting" in facts
    reasons = page.locator("#rz-plan-reasons").inner_text()
    assert "1 shortage: no community has any to spare" in reasons
    assert "1 shortage: no surplus within reach (too far, or it would spoil on the way)" in reasons
    shortfalls = page.locator("#rz-plan-shortfalls").inner_text()
    assert "Diesel" in shortfalls and "Insulin" in shortfalls and "Water" not in shortfalls
    water = page.locator("#rz-plan-by-good tr", has_text="Water").inner_text()
    assert "100 %" in water
    page.click("#rz-plan-reasons a:has-text('no community has any to spare')")
    assert "Insulin" not in page.locator("#rz-plan-shortfalls").inner_text()

    page.click("#rz-plan-pause")  # pause: a re-plan asked for now waits for the resume
    assert "Paused" in page.locator("#rz-plan-state").inner_text()
    page.click("#rz-plan-replan")
    assert "runs once you resume" in page.locator(".rz-flash").inner_text()
    wait_until(lambda: _has_paused_run(desk), 20.0)  # the loop noticed the pause while it waited
    for _ in range(10):  # two seconds of a paused planner with a request pending: nothing planned
        time.sleep(0.2)
        assert len(planned_runs(desk)) == 1
    page.click("#rz-plan-resume")
    assert "Running" in page.locator("#rz-plan-state").inner_text()
    wait_until(lambda: len(planned_runs(desk)) == 2)
    assert planned_runs(desk)[1].trigger == "coordinator"

    page.click("#rz-plan-replan")  # re-plan now: a run within seconds, the timer is an hour
    wait_until(lambda: len(planned_runs(desk)) == 3, 30.0)
    page.goto("/coordinator/plan")
    runs = page.locator("#rz-plan-runs li").all_inner_texts()
    assert runs[0].count("a coordinator (re-plan now)") == 1 and any(
        "paused by a coordinator" in r for r in runs
    )
    page.goto("/coordinator/audit")
    trail = page.locator("main").inner_text()
    assert "plan_paused" in trail and "plan_resumed" in trail and "plan_requested" in trail


def _has_paused_run(desk: Desk) -> bool:
    with desk.sessions() as session:
        return session.scalar(select(PlanRun.id).where(PlanRun.outcome == "paused")) is not None


def test_approving_the_plan_offers_its_routes_to_the_driver(
    desk: Desk, tab: Callable[[str | None], Any]
) -> None:
    coord = tab("coord")
    coord.goto("/coordinator/plan")
    coord.click("#rz-plan-approval")  # require approval of new routes
    assert "New routes wait for a coordinator's approval" in coord.locator("#rz-plan-state").inner_text()
    service.deliveries_once(desk.sessions, 20.0, route_time_s=5.0)  # the planner's run
    with desk.sessions() as session:
        held = session.scalars(select(Route.id).where(Route.status == "proposed")).all()
    assert held
    driver = tab("driver")
    driver.goto("/routes")
    assert driver.locator("#rz-routes a").count() == 0
    assert driver.goto(f"/routes/{held[0]}").status == 404
    coord.goto("/coordinator/plan")
    assert f"{len(held)} route" in coord.locator("#rz-plan-held").inner_text()
    coord.click("#rz-plan-approve")
    assert f"Approved: {len(held)} route" in coord.locator(".rz-flash").inner_text()
    driver.goto("/routes")
    assert driver.locator("#rz-routes a").count() == len(held)
    assert driver.goto(f"/routes/{held[0]}").status == 200


def test_members_show_hours_given_against_the_offer_for_coordinators_only(
    desk: Desk, tab: Callable[[str | None], Any]
) -> None:
    now = utcnow()
    with desk.sessions.begin() as session:
        ana = session.get(Member, desk.ana)
        assert ana is not None
        ana.hours_per_year, ana.sector_hours = 10.0, None
        hours.offer(session, ana.id, WorkKind.REPAIR, 1, "health", 3.0, now, now + timedelta(hours=3))
        hours.start(session, WorkKind.REPAIR, 1, now)
        hours.finish(session, WorkKind.REPAIR, 1, now + timedelta(hours=8.5))
        session.add(
            Member(name="Beto", community_id=ana.community_id, lat=18.2, lon=-66.6, hours_per_year=150)
        )
    page = tab("coord")
    page.goto("/coordinator/members")
    rows = page.locator("#rz-members tbody tr")
    assert rows.all_inner_texts()[0].startswith("Ana") and rows.all_inner_texts()[1].startswith(
        "Beto"
    )  # by name
    ana_row = page.locator(f"#rz-members tr[data-member='{desk.ana}']")
    assert "8.5 + 0.0 / 10.0 h" in ana_row.inner_text() and "near limit" in ana_row.inner_text()
    assert page.locator("#rz-members tr[data-near]").count() == 1
    assert "never a ranking" in page.locator("main").inner_text()
    page.select_option("select[name=role]", "crew")
    page.click("#rz-member-filters button[type=submit]")
    assert page.locator("#rz-members tbody tr").count() == 1 and "role=crew" in page.url

    driver = tab("driver")
    assert driver.goto("/coordinator/members").status == 403
    anonymous = tab(None)
    anonymous.goto("/coordinator/members")
    assert "/login" in anonymous.url and "Ana" not in anonymous.content()


def test_routes_filter_by_driver_state_and_day_with_failed_deliveries_first(
    desk: Desk, tab: Callable[[str | None], Any]
) -> None:
    service.deliveries_once(desk.sessions, 20.0, route_time_s=5.0)
    now = utcnow()
    with desk.sessions.begin() as session:
        planned = session.scalars(select(Route).where(Route.status == "proposed")).all()
        assert planned
        community = session.scalars(select(Community.id)).first()
        other = Member(name="Zoe", community_id=community, lat=18.2, lon=-66.6, is_driver=True)
        session.add(other)
        session.flush()
        shipment = session.scalars(select(Shipment)).first()
        assert shipment is not None
        gone = Route(
            plan_id=shipment.plan_id, member_id=other.id, status="done", starts_at=now - timedelta(days=3)
        )
        session.add(gone)
        session.flush()
        failed = Shipment(
            plan_id=shipment.plan_id,
            good_id=shipment.good_id,
            from_site_id=shipment.from_site_id,
            to_site_id=shipment.to_site_id,
            quantity=5,
            status="failed",
            route_id=gone.id,
            failure_reason="bridge closed",
        )
        session.add(failed)
        session.flush()
        session.add(
            RouteStop(
                route_id=gone.id,
                position=0,
                site_id=shipment.to_site_id,
                action="delivery",
                shipment_id=failed.id,
                status="failed",
            )
        )
        zoe, done_day = other.id, (now - timedelta(days=3)).date().isoformat()
    page = tab("coord")
    page.goto("/routes")
    failed_box, list_box = (
        page.locator("#rz-failed").bounding_box(),
        page.locator("#rz-route-list").bounding_box(),
    )
    assert failed_box["y"] < list_box["y"]  # failed deliveries first
    failed_row = page.locator("#rz-failed tbody tr").first
    assert "bridge closed" in failed_row.inner_text()
    assert failed_row.locator(f"a[href='/routes/{gone.id}']").count() == 0  # a done route: no link
    assert page.locator("#rz-route-list tr[data-route]").count() == len(planned)  # current routes
    page.select_option("select[name=state]", "all")
    page.click("#rz-route-filters button[type=submit]")
    assert page.locator("#rz-route-list tr[data-route]").count() == len(planned) + 1
    page.select_option("select[name=driver]", str(zoe))
    page.click("#rz-route-filters button[type=submit]")
    rows = page.locator("#rz-route-list tr[data-route]")
    assert rows.count() == 1 and rows.first.get_attribute("data-route") == str(gone.id)
    assert "1 failed" in rows.first.inner_text()
    page.goto(f"/routes?state=all&date={done_day}")
    assert [r.get_attribute("data-route") for r in page.locator("#rz-route-list tr[data-route]").all()] == [
        str(gone.id)
    ]
    page.goto("/routes?state=done&driver=" + str(desk.ana))
    assert "No route matches" in page.locator("#rz-route-list").inner_text()
    bad = page.goto("/routes?date=soon")
    assert bad.status == 400 and "YYYY-MM-DD" in page.locator("main").inner_text()


@pytest.mark.parametrize("width", [360, 1366])
def test_the_desk_pages_fit_the_window(desk: Desk, tab: Callable[[str | None], Any], width: int) -> None:
    service.deliveries_once(desk.sessions, 20.0, route_time_s=5.0)
    page = tab("coord")
    page.set_viewport_size({"width": width, "height": 740 if width == 360 else 768})
    for path in ("/coordinator/plan", "/coordinator/members", "/routes", "/crew"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        measured = overflow(page)
        assert measured["scroll"] <= measured["inner"], (path, measured)
        page.screenshot(path=f"/tmp/desk-{width}-{path.strip('/').replace('/', '-')}.png", full_page=True)
