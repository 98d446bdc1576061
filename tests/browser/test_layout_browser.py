"""Layout in the field: no page scrolls sideways at 360, 1366 or 1920 px, the nav stays reachable, the
community popup shows every line, and on a phone the legend and layer control start folded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.test_dashboard_browser import open_community

pytestmark = pytest.mark.browser
WIDTHS = (360, 1366, 1920)
HEIGHTS = {360: 740, 1366: 768, 1920: 1080}


def overflow(page: Any) -> dict[str, int]:
    """How wide the document is against the window, and the widest element sticking out past it."""
    return page.evaluate(
        """() => {
            const d = document.documentElement;
            return {scroll: d.scrollWidth, inner: window.innerWidth};
        }"""
    )


def nav_reachable(page: Any) -> None:
    """Every nav link is on the screen, directly or after opening the menu."""
    toggle = page.locator(".rz-menu-toggle")
    if toggle.is_visible():
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
    width = page.evaluate("window.innerWidth")
    for link in page.locator(".rz-nav a, .rz-nav button").all():
        box = link.bounding_box()
        assert box is not None and link.is_visible(), link.inner_text()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (link.inner_text(), box)


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_fit_the_window_and_the_nav_is_reachable(
    page: Any, login: Callable[[str], None], width: int
) -> None:
    login("crew")
    page.set_viewport_size({"width": width, "height": HEIGHTS[width]})
    for url in ("/", "/shortages", "/board", "/crew"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        measured = overflow(page)
        assert measured["scroll"] <= measured["inner"], (url, measured)
        nav_reachable(page)
        if width == 360 or width == 1366:
            page.screenshot(path=f"/tmp/layout-{width}-{url.strip('/') or 'map'}.png")
    assert page.js_errors == []


def only_communities(page: Any) -> None:
    """Take every other layer off the map (the layer control may be folded on a phone)."""
    page.evaluate(
        """() => { const r = RhizomeMap.registry;
            for (const kind of ["sites", "tasks", "flows"]) r.map.removeLayer(r.layers[kind]); }"""
    )


# The popup lies inside the map; its content is not cut off: it fits, or (taller than a phone's map) it
# scrolls inside the popup (Leaflet's maxHeight), never past the map's edge.
POPUP_FITS = """(strict) => {
    const map = RhizomeMap.registry.map.getContainer().getBoundingClientRect();
    const popup = document.querySelector(".leaflet-popup");
    const content = document.querySelector(".leaflet-popup-content");
    if (!popup || !content || !content.querySelector("[data-loaded]")) return null;
    const box = popup.getBoundingClientRect();
    const inside = box.top >= map.top && box.left >= map.left && box.right <= map.right
        && box.bottom <= map.bottom;
    const unclipped = content.scrollHeight <= content.clientHeight + 1
        && content.scrollWidth <= content.clientWidth + 1;
    const scrolls = content.classList.contains("leaflet-popup-scrolled")
        && getComputedStyle(content).overflowY === "auto";
    return inside && (unclipped || (!strict && scrolls)) ? {width: box.width, unclipped} : null;
}"""


@pytest.mark.parametrize("width", (360, 1366))
def test_community_popup_opens_whole_inside_the_map(
    page: Any, drawn_map: Callable[[], dict[str, Any]], scenario: Any, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": HEIGHTS[width]})
    drawn_map()
    only_communities(page)
    detail = page.request.get(f"/api/communities/{scenario.destination}").json()
    text = open_community(page, scenario.destination)
    # After the refit's pan; at 1366 x 768 the whole table shows, on a phone it may scroll in the popup.
    fit = page.wait_for_function(POPUP_FITS, arg=width >= 1366, timeout=5000).json_value()
    assert fit["width"] >= min(220, width - 48), fit  # sized to its table, not to "loading…"
    for good in (g for g in detail["goods"] if g["minimum"] is not None):
        assert good["name"] in text
    page.screenshot(path=f"/tmp/layout-{width}-popup.png")
    # Its close button is what a finger on it finds (on a phone the layer button used to lie on it).
    on_top = page.evaluate(
        """() => {
            const close = document.querySelector(".leaflet-popup-close-button").getBoundingClientRect();
            const hit = document.elementFromPoint(close.left + close.width / 2, close.top + close.height / 2);
            return hit !== null && hit.closest(".leaflet-popup-close-button") !== null;
        }"""
    )
    assert on_top, "the popup's close button is covered"
    page.locator(".leaflet-popup-close-button").click()
    page.wait_for_selector(".leaflet-popup", state="detached", timeout=5000)
    assert page.locator(".leaflet-control-layers").is_visible()  # back once the popup is closed
    assert page.js_errors == []


def test_legend_and_layer_control_start_folded_on_a_phone(
    page: Any, drawn_map: Callable[[], dict[str, Any]]
) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    drawn_map()
    toggle = page.locator(".rz-legend-toggle")
    body = page.locator(".rz-legend-body")
    assert toggle.get_attribute("aria-expanded") == "false" and not body.is_visible()
    box = toggle.bounding_box()
    assert box is not None and box["width"] >= 44 and box["height"] >= 44, box
    toggle.focus()
    page.keyboard.press("Enter")  # a button: the keyboard opens it as a tap does
    assert toggle.get_attribute("aria-expanded") == "true" and body.is_visible()
    toggle.click()
    assert not body.is_visible()
    layers = page.locator(".leaflet-control-layers")
    assert "leaflet-control-layers-expanded" not in (layers.get_attribute("class") or "")
    assert not page.locator(".leaflet-control-layers-list").is_visible()
    layers_toggle = page.locator(".leaflet-control-layers-toggle")
    box = layers_toggle.bounding_box()
    assert box is not None and box["width"] >= 44 and box["height"] >= 44, box
    layers_toggle.focus()
    page.keyboard.press("Enter")  # Leaflet opens a folded control on Enter as on a tap
    assert page.locator(".leaflet-control-layers-list").is_visible()
    assert page.js_errors == []


def test_legend_is_open_on_a_wide_screen(page: Any, drawn_map: Callable[[], dict[str, Any]]) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})
    drawn_map()
    assert page.locator(".rz-legend-toggle").get_attribute("aria-expanded") == "true"
    assert page.locator(".rz-legend-body").is_visible()
    assert page.locator(".leaflet-control-layers-list").is_visible()
