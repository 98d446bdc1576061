"""The driver's route page on a phone with poor connectivity, in headless Chromium: it opens with the network
cut (its service worker kept it), a pickup pressed offline waits on the phone, visibly, and reaches the
store exactly once when the connection is back, even though the phone sends it twice (the first answer is
lost on the way). Loaded is required; every control is at least 48 px; nothing overflows 360 px; stops at
one site are one card. The README's phone screenshot (docs/driver.png) is taken here."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from dashboard.web.store import get_store
from gateway.store.models import (
    Community,
    Decline,
    DeliveryPlan,
    DriverAction,
    Route,
    RouteStop,
    Shipment,
    Site,
    Stock,
    StockLedgerEntry,
    utcnow,
)

pytestmark = pytest.mark.browser
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "driver.png"
PHONE = {"width": 360, "height": 780}
LOADED = 3.0  # of the 5 planned: what the driver found at the hub


@dataclass(frozen=True)
class DriverRoute:
    """A route of the test driver: two pickups at one hub (one visit), then two drop-offs elsewhere."""

    id: int
    pickups: tuple[int, int]
    drops: tuple[int, int]
    shipments: tuple[int, int]


@pytest.fixture
def make_route(app: Flask, scenario: Any) -> Callable[[str], DriverRoute]:
    """A fresh route in `status` for the driver, from a hub holding two goods, so tests do not share one."""

    def make(status: str) -> DriverRoute:
        with get_store(app).sessions.begin() as session:
            real = Site.community_id.in_(select(Community.id).where(~Community.slug.startswith("hostile")))
            rows = session.execute(
                select(Stock.site_id, Stock.good_id)
                .join(Site, Site.id == Stock.site_id)
                .where(Stock.quantity >= 50, real)
                .order_by(Stock.site_id, Stock.good_id)
            ).all()
            goods: dict[int, list[int]] = {}
            for site_id, good_id in rows:
                goods.setdefault(site_id, []).append(good_id)
            hub = next(s for s, g in goods.items() if len(g) >= 2)
            ends = list(
                session.scalars(select(Site.id).where(Site.id != hub, real).order_by(Site.id.desc()).limit(2))
            )
            plan = session.scalar(select(func.max(DeliveryPlan.id)))
            starts = utcnow().replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=1)
            route = Route(
                plan_id=plan,
                member_id=scenario.driver_member,
                status=status,
                distance_km=18.0,
                duration_min=95.0,
                starts_at=starts,
                ends_at=starts + timedelta(minutes=150),
            )
            session.add(route)
            session.flush()
            shipments = [
                Shipment(
                    plan_id=plan,
                    good_id=good,
                    from_site_id=hub,
                    to_site_id=end,
                    quantity=5.0,
                    status="assigned",
                    route_id=route.id,
                )
                for good, end in zip(goods[hub][:2], ends, strict=True)
            ]
            session.add_all(shipments)
            session.flush()
            stops = [
                RouteStop(route_id=route.id, position=n, site_id=site, action=action, shipment_id=s.id)
                for n, (s, site, action) in enumerate(
                    [(s, hub, "pickup") for s in shipments]
                    + [(s, s.to_site_id, "delivery") for s in shipments]
                )
            ]
            session.add_all(stops)
            session.flush()
            return DriverRoute(
                route.id,
                (stops[0].id, stops[1].id),
                (stops[2].id, stops[3].id),
                (shipments[0].id, shipments[1].id),
            )

    return make


def ledger_entries(app: Flask, shipment_id: int) -> list[float]:
    with get_store(app).sessions() as session:
        return list(
            session.scalars(
                select(StockLedgerEntry.delta)
                .where(StockLedgerEntry.shipment_id == shipment_id)
                .order_by(StockLedgerEntry.id)
            )
        )


def recorded_actions(app: Flask, route_id: int) -> list[tuple[str, str | None]]:
    with get_store(app).sessions() as session:
        rows = session.execute(
            select(DriverAction.kind, DriverAction.refused).where(DriverAction.route_id == route_id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def open_route(page: Any, route_id: int) -> None:
    """The route page, once its service worker has kept it (and what it loaded) on the phone."""
    page.goto(f"/routes/{route_id}")
    page.wait_for_selector("#rz-driver[data-offline-ready='1']", timeout=20_000)


def sync_text(page: Any) -> str:
    return str(page.locator("#rz-sync-text").inner_text())


def readme_screenshot(page: Any) -> None:
    """docs/driver.png: the phone offline, one pickup waiting to send, the hub's card with its two pickups."""
    page.evaluate(
        """() => {
            const card = document.getElementById("visit-1").getBoundingClientRect();
            const above = document.getElementById("rz-sync").getBoundingClientRect().bottom;
            window.scrollTo(0, window.scrollY + card.top - above - 8);
        }"""
    )
    page.wait_for_timeout(300)  # the map's last frame
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (PHONE["width"], PHONE["height"])


def test_the_route_opens_offline_and_an_offline_pickup_reaches_the_store_once(
    page: Any,
    context: Any,
    login: Callable[[str], None],
    make_route: Callable[[str], DriverRoute],
    app: Flask,
) -> None:
    route = make_route("accepted")
    page.set_viewport_size(PHONE)
    login("driver")
    open_route(page, route.id)
    assert "Saved on this phone" in sync_text(page)

    context.set_offline(True)
    page.reload()
    assert page.locator("h1").inner_text() == f"Route {route.id}"  # the kept copy, not the browser's error
    assert page.locator(".rz-visit").count() == 3 and page.locator(".rz-stop").count() == 4
    assert sync_text(page).startswith("Offline: this route as saved on this phone at ")
    gpx = page.evaluate("(url) => fetch(url).then(r => r.text())", f"/routes/{route.id}.gpx")
    assert gpx.startswith("<?xml") and gpx.count("<rtept ") == 4  # the GPX is kept too
    assert page.evaluate("() => RhizomeRouteMap.map !== undefined")  # Leaflet came from the phone's copy
    # the basemap too: drawn from the phone's copy, which answers the reader's ranges with a 206
    page.wait_for_function("() => RhizomeRouteMap.basemapLoadedAt !== undefined", timeout=10_000)
    head = page.evaluate(
        """() => fetch("/map/basemap.pmtiles", {headers: {Range: "bytes=0-6"}})
            .then(r => r.text().then(t => [r.status, r.headers.get("Content-Range"), t]))"""
    )
    assert head[0] == 206 and head[1].startswith("bytes 0-6/") and head[2] == "PMTiles"
    stop = page.locator(f"#stop-{route.pickups[0]}")
    stop.locator("input[name=quantity]").fill(f"{LOADED:g}")
    stop.get_by_role("button", name="Picked up").click()
    assert "waiting to send" in stop.inner_text()
    assert sync_text(page).startswith("Offline. 1 action waiting to send")
    page.reload()  # still offline: the press survives a reload (it is kept on the phone, not in the tab)
    assert "waiting to send" in page.locator(f"#stop-{route.pickups[0]}").inner_text()
    assert "1 action waiting to send" in sync_text(page)
    assert ledger_entries(app, route.shipments[0]) == [] and recorded_actions(app, route.id) == []
    readme_screenshot(page)

    sent: list[str] = []

    def lose_the_first_answer(request_route: Any) -> None:
        sent.append(request_route.request.post_data)
        if len(sent) == 1:
            request_route.fetch()  # it reaches the server, which applies it...
            request_route.abort("connectionreset")  # ...and the answer is lost: the phone will send it again
        else:
            request_route.fallback()

    context.route("**/api/routes/*/actions", lose_the_first_answer)
    context.set_offline(False)
    page.locator(f"#stop-{route.pickups[0]}", has_text="Done").wait_for(timeout=30_000)
    assert len(sent) == 2 and sent[0] == sent[1]  # the same action, with the same id, twice
    assert ledger_entries(app, route.shipments[0]) == [-LOADED]  # applied once
    assert recorded_actions(app, route.id) == [("picked_up", None)]
    assert "Picked up" in sync_text(page)
    with get_store(app).sessions() as session:
        shipment = session.get_one(Shipment, route.shipments[0])
        assert (shipment.status, shipment.quantity) == ("picked_up", LOADED)

    # the phone (or anything else) sends the same id again: the first answer, nothing moves
    body = page.evaluate("() => JSON.parse(localStorage.getItem('rhizome.driver.queue.v1') || '[]').length")
    assert body == 0
    again = page.request.post(
        f"/api/routes/{route.id}/actions",
        data=sent[0],
        headers={
            "Content-Type": "application/json",
            "X-CSRF-Token": page.locator("#rz-driver").get_attribute("data-csrf"),
        },
    )
    assert again.status == 200 and again.json()["replayed"] is True
    assert ledger_entries(app, route.shipments[0]) == [-LOADED]
    assert page.js_errors == []


def test_loaded_is_required_on_the_page_and_by_the_server(
    page: Any,
    context: Any,
    login: Callable[[str], None],
    make_route: Callable[[str], DriverRoute],
    app: Flask,
) -> None:
    route = make_route("accepted")
    login("driver")
    open_route(page, route.id)
    posts: list[str] = []
    context.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    stop = page.locator(f"#stop-{route.pickups[0]}")
    stop.get_by_role("button", name="Picked up").click()
    error = stop.locator(".rz-field-error")
    assert "Enter how much you loaded (planned: 5). An empty box is never taken as the planned quantity." in (
        error.inner_text()
    )
    assert stop.locator("input[name=quantity]").get_attribute("aria-invalid") == "true"
    assert posts == [] and "waiting" not in sync_text(page)
    answer = page.request.post(
        f"/api/routes/{route.id}/actions",
        data={"id": str(uuid.uuid4()), "kind": "picked_up", "stop": route.pickups[0]},
        headers={"X-CSRF-Token": page.locator("#rz-driver").get_attribute("data-csrf")},
    )
    assert answer.status == 400 and "say how much you loaded (planned: 5" in answer.json()["message"]
    assert ledger_entries(app, route.shipments[0]) == []
    assert page.js_errors == []


def test_on_a_phone_every_control_is_48px_nothing_overflows_and_one_site_is_one_card(
    page: Any, login: Callable[[str], None], make_route: Callable[[str], DriverRoute]
) -> None:
    route = make_route("proposed")
    page.set_viewport_size(PHONE)
    login("driver")
    open_route(page, route.id)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    controls = page.locator(
        "#rz-driver button:visible, #rz-driver a.rz-button:visible, #rz-driver summary:visible,"
        " #rz-driver input:not([type=hidden]):visible"
    )
    assert controls.count() >= 12
    for i in range(controls.count()):
        box = controls.nth(i).bounding_box()
        assert box["height"] >= 48 and box["width"] >= 48, (controls.nth(i).inner_text(), box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    hub = page.locator("#visit-1")
    assert hub.locator(".rz-stop").count() == 2  # both pickups at the hub: one card
    assert page.locator(".rz-visit").count() == 3 and page.locator(".rz-stop-icon").count() == 3
    geo = page.locator("a[href^='geo:']")
    assert geo.count() == 3
    assert all(
        h.startswith("geo:") and "?q=" in h for h in geo.evaluate_all("links => links.map(a => a.href)")
    )
    assert page.get_by_role("button", name="Accept this route").is_visible()
    assert page.get_by_role("button", name="Decline this route").is_visible()
    page.locator("#visit-3").get_by_role("button", name="On the map").click()
    assert page.evaluate("() => RhizomeRouteMap.map.getZoom()") >= 14  # centred on that place
    assert page.js_errors == []


def test_a_driver_accepts_one_offered_route_offline_and_declines_another_without_a_reason(
    page: Any,
    context: Any,
    login: Callable[[str], None],
    make_route: Callable[[str], DriverRoute],
    app: Flask,
) -> None:
    accepted, declined = make_route("proposed"), make_route("proposed")
    login("driver")
    open_route(page, accepted.id)
    context.set_offline(True)
    page.get_by_role("button", name="Accept this route").click()
    assert page.locator(".rz-waiting").inner_text() == f"Accept route {accepted.id} \u00b7 waiting to send"
    assert not page.locator("#rz-offer").is_visible()  # not pressed twice
    assert "1 action waiting to send" in sync_text(page) and recorded_actions(app, accepted.id) == []
    context.set_offline(False)
    page.locator("#rz-route-status", has_text="accepted").wait_for(timeout=15_000)
    assert page.get_by_role("button", name="Give back this route").is_visible()
    page.goto(f"/routes/{declined.id}")
    page.get_by_role("button", name="Decline this route").click()  # the reason box left empty
    page.locator("#rz-route-dead", has_text="this route was declined").wait_for(timeout=15_000)
    with get_store(app).sessions() as session:
        assert session.get_one(Route, accepted.id).status == "accepted"
        assert session.get_one(Route, declined.id).status == "declined"
        reasons = session.scalars(select(Decline.reason).where(Decline.route_id == declined.id)).all()
        assert reasons and set(reasons) == {""}
    assert recorded_actions(app, accepted.id) == [("accept", None)]
    assert page.js_errors == []
