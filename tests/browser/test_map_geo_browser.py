"""The map's geography and flows with the network cut (every request off 127.0.0.1 refused): the PMTiles
basemap read by Range requests and drawn, municipios shaded by shortage, place names, grouped flows that a
filter thins, tooltips that open, arrowheads of one size in pixels at every zoom."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from dashboard.web.store import get_store
from gateway.store.models import Member
from tests.browser.test_dashboard_browser import open_community

pytestmark = pytest.mark.browser


@pytest.fixture
def ranges(page: Any) -> list[dict[str, Any]]:
    """The basemap's requests as the page made them: their Range header and the answer's status."""
    seen: list[dict[str, Any]] = []

    def answered(response: Any) -> None:
        if "/map/basemap.pmtiles" in response.url:
            seen.append({"range": response.request.headers.get("range"), "status": response.status})

    page.on("response", answered)
    return seen


def wait_for_geography(page: Any) -> None:
    page.wait_for_function("() => RhizomeMap.registry.areasDrawn > 0", timeout=15_000)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('.leaflet-tile-pane canvas'))
            .some(c => c.width > 0 && c.classList.contains('leaflet-tile-loaded'))""",
        timeout=15_000,
    )


def test_basemap_is_read_by_ranges_and_drawn_offline(
    page: Any, drawn_map: Callable[[], dict[str, Any]], ranges: list[dict[str, Any]], traffic: Any
) -> None:
    drawn_map()
    wait_for_geography(page)
    assert ranges, "the basemap was never fetched"
    assert all(r["range"] and r["range"].startswith("bytes=") for r in ranges), ranges
    assert {r["status"] for r in ranges} == {206}, ranges
    # Painted tiles: some pixel of a tile canvas is not blank (the land and the sea have colours).
    painted = page.evaluate(
        """() => Array.from(document.querySelectorAll('.leaflet-tile-pane canvas.leaflet-tile-loaded'))
            .filter(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                           for (let i = 3; i < d.length; i += 4 * 97) if (d[i] > 0) return true;
                           return false; }).length"""
    )
    assert painted > 0
    assert traffic.outside == [] and page.js_errors == []


def test_areas_are_shaded_by_shortage_and_named(
    page: Any, drawn_map: Callable[[], dict[str, Any]], traffic: Any
) -> None:
    drawn_map()
    wait_for_geography(page)
    paths = page.evaluate(
        """() => Array.from(document.querySelectorAll('.leaflet-rz-areas-pane path'))
            .map(p => ({fill: p.getAttribute('fill'), cls: p.getAttribute('class')}))"""
    )
    assert len(paths) == 78, len(paths)  # every municipio of the sample region, as SVG paths
    areas = page.evaluate("() => RhizomeMap.registry.areas")
    rows = page.evaluate("() => JSON.parse(document.getElementById('rz-data-communities').textContent)")
    levels = ["critical", "short", "ok"]
    by_name = {row[1]: levels[row[5]] for row in rows}
    # Each municipio takes its community of the same name and that community's level...
    assert all(a["communities"] >= 1 for a in areas)
    assert {a["name"]: a["level"] for a in areas} == {a["name"]: by_name[a["name"]] for a in areas}
    # ...and its colour: one fill per level, the same count of paths per level as of areas per level.
    fills: dict[str, set[str]] = {}
    for path in paths:
        level = next(c.removeprefix("rz-area-") for c in path["cls"].split() if c.startswith("rz-area-"))
        fills.setdefault(level, set()).add(path["fill"])
    assert all(len(f) == 1 for f in fills.values()), fills
    assert len({next(iter(f)) for f in fills.values()}) == len(fills) >= 2, fills  # shortages differ
    for level in fills:
        count = sum(1 for p in paths if f"rz-area-{level}" in p["cls"])
        assert count == sum(1 for a in areas if a["level"] == level), level
    labels = page.locator(".rz-label").all_inner_texts()
    assert len(labels) >= 10 and "Ponce" in labels, labels
    assert page.locator(".rz-label img, .rz-label script").count() == 0
    assert traffic.outside == [] and page.js_errors == []


# A point a third of the way along the heaviest drawn flow, in page pixels, with the other layers taken off
# (a community circle or a site cluster may lie on it), the flow's line on top of the canvas.
LINE_POINT = """() => {
    const r = RhizomeMap.registry;
    for (const kind of ["sites", "tasks", "communities"]) r.map.removeLayer(r.layers[kind]);
    const line = r.layers.flows.getLayers().find(l => l instanceof L.Polyline);
    line.bringToFront();
    const [a, b] = line.getLatLngs();
    const at = L.latLng(a.lat + (b.lat - a.lat) / 3, a.lng + (b.lng - a.lng) / 3);
    r.map.setView(at, r.map.getZoom(), {animate: false});
    const p = r.map.latLngToContainerPoint(at), box = r.map.getContainer().getBoundingClientRect();
    return {x: box.left + p.x, y: box.top + p.y};
}"""


def drawn_flows(page: Any) -> int:
    return int(page.evaluate("() => RhizomeMap.registry.flowsDrawn"))


def test_flow_filter_tooltip_and_arrow_size(page: Any, drawn_map: Callable[[], dict[str, Any]]) -> None:
    drawn_map()
    total = page.evaluate("() => RhizomeMap.registry.flowsTotal")
    first = drawn_flows(page)
    assert 0 < first <= 25 and page.locator(".rz-arrow").count() == first
    good = page.locator(".rz-flow-good")
    # One good only: the one with the fewest flows ("Rice (7)"), so fewer lines than the first view.
    options = good.locator("option").all_inner_texts()[2:]
    assert options, "no good to filter by"
    counts = {text: int(text.rsplit("(", 1)[1].rstrip(")")) for text in options}
    fewest = min(counts, key=lambda text: counts[text])
    good.select_option(label=fewest)
    one = drawn_flows(page)
    assert one == min(counts[fewest], 25) and page.locator(".rz-arrow").count() == one
    assert one != first, (one, first, counts)
    shown = page.evaluate(
        """() => RhizomeMap.registry.layers.flows.getLayers().filter(l => l instanceof L.Marker).length"""
    )
    assert shown == one
    good.select_option("all")
    page.locator(".rz-flow-all").check()
    assert drawn_flows(page) == total > first

    # Tooltips open on hover: on an arrowhead, and on a line (the canvas it shares with the communities).
    page.locator(".rz-arrow").first.hover()
    tip = page.locator(".rz-flow-tooltip")
    tip.wait_for(timeout=3000)
    assert "→" in tip.inner_text() and "shipment" in tip.inner_text()
    page.mouse.move(1, 1)
    tip.wait_for(state="detached")
    point = page.evaluate(LINE_POINT)
    page.mouse.move(point["x"], point["y"])
    tip.wait_for(timeout=3000)
    assert "→" in tip.inner_text()

    sizes = []
    for zoom in (9, 13):
        page.evaluate(f"() => {{ RhizomeMap.registry.map.setZoom({zoom}, {{animate: false}}); }}")
        box = page.locator(".rz-arrow").first.bounding_box()
        assert box is not None
        sizes.append((round(box["width"]), round(box["height"])))
    assert sizes[0] == sizes[1] and sizes[0][0] <= 20, sizes
    assert page.js_errors == []


def test_public_map_names_no_crew(
    page: Any, drawn_map: Callable[[], dict[str, Any]], app: Flask, scenario: Any
) -> None:
    with get_store(app).sessions() as session:
        names = [n for n in session.scalars(select(Member.name)) if len(n) > 3]
    assert names
    bodies: list[str] = []
    page.on("response", lambda r: bodies.append(r.text()) if "/static/" not in r.url and r.ok else None)
    drawn_map()
    wait_for_geography(page)
    open_community(page, scenario.destination)  # its popup: goods, sensors and open repair tasks
    bodies.append(page.content())
    seen = [n for n in names if any(n in body for body in bodies if body)]
    assert seen == [], seen  # the map is public: no page of it names who works where


def test_a_flow_tooltip_opens_on_tap_on_a_phone(browser: Any, base_url: str) -> None:
    phone = browser.new_context(
        viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True, base_url=base_url
    )
    outside: list[str] = []

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("blockedbyclient")

    phone.route("**/*", guard)
    try:
        page = phone.new_page()
        page.goto("/")
        page.wait_for_function("() => window.RhizomeMap && RhizomeMap.registry.flowsDrawn > 0")
        page.evaluate(  # the heaviest flow's arrowhead in the middle of the screen, zoomed in
            """() => { const r = RhizomeMap.registry;
                const head = r.layers.flows.getLayers().find(l => l instanceof L.Marker);
                r.map.setView(head.getLatLng(), 12, {animate: false}); }"""
        )
        page.locator(".rz-arrow").first.tap()
        tip = page.locator(".rz-flow-tooltip")
        tip.wait_for(timeout=3000)
        assert "→" in tip.inner_text()
        assert outside == []
    finally:
        phone.close()
