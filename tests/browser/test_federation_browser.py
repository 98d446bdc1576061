"""A node's federation page in Chromium on a phone (360 px wide): a coordinator accepts a shipment waiting for
this node and sees its status change, and the page fits the screen. A screenshot goes to
/tmp/fedui-360.png (RHIZOME_FEDUI_SCREENSHOT to change it), and one of the map with the popup of a community
whose node's link is down beside it (-map.png), for a person to look at."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from dashboard.web.accounts import MemoryAccountStore, make_account
from dashboard.web.store import get_store
from tests.browser.conftest import PASSWORD
from tests.test_dashboard_federation import ME, PEER, Node, answers, node_app, seed_store

pytestmark = pytest.mark.browser
SCREENSHOT = Path(os.environ.get("RHIZOME_FEDUI_SCREENSHOT", "/tmp/fedui-360.png"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    """The node camuy's dashboard on 127.0.0.1 (a free port), with a coordinator account."""
    accounts = MemoryAccountStore([make_account("coord", PASSWORD, "coordinator")])
    node = node_app(seed_store(tmp_path), tmp_path, accounts, planners=[PEER, ME], lease_s=600)
    server = make_server("127.0.0.1", 0, node.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="fedui-http", daemon=True)
    thread.start()
    yield node, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    get_store(node.app).engine.dispose()


def test_a_coordinator_accepts_a_shipment_on_a_phone(browser: Any, served: tuple[Node, str]) -> None:
    node, base_url = served
    context = browser.new_context(viewport={"width": 360, "height": 780}, base_url=base_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    try:
        page.goto("/login?next=/federation")
        page.fill("input[name=username]", "coord")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/federation")
        shipment = page.locator(f'li[data-ref="{node.ref("1")}"]')
        assert shipment.locator(".rz-status").inner_text() == "waiting for us"
        assert page.locator('tr[data-node="arecibo"] .rz-link-state').inner_text() == "link down for 12 min"
        accept = shipment.get_by_role("button", name="Accept")
        box = accept.bounding_box()
        assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 360  # thumb-sized
        with page.expect_navigation():
            accept.click()
        assert page.url.endswith("/federation")
        shipment = page.locator(f'li[data-ref="{node.ref("1")}"]')
        assert shipment.locator(".rz-status").inner_text() == "waiting for them"
        assert shipment.get_by_role("button").count() == 0
        assert "Accepted: 400 kg Rice" in page.locator(".rz-flash").inner_text()
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 360, f"the page is {width} px wide on a 360 px screen"
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert answers(node) == [{"ref": node.ref("1"), "community": ME, "accept": True, "by": "coord"}]
        # The map marks the peer's community with its link down, and says so in its popup.
        page.goto("/")
        page.wait_for_function("() => window.RhizomeMap && RhizomeMap.registry.layers.communities")
        down = page.evaluate(
            """() => RhizomeMap.registry.layers.communities.getLayers()
                .filter(m => m.options.rzLinkDown).map(m => m.options.rzCommunity)"""
        )
        assert down == [PEER]
        page.evaluate(
            """() => RhizomeMap.registry.layers.communities.getLayers()
                .find(m => m.options.rzLinkDown).openPopup()"""
        )
        assert page.locator(".rz-popup .rz-link-down").inner_text() == "node arecibo: link down for 12 min"
        page.locator(".rz-legend-toggle").click()  # folded on a phone
        assert "link down: its node is cut off" in page.locator(".rz-legend").inner_text()
        page.screenshot(path=str(SCREENSHOT.with_name(SCREENSHOT.stem + "-map.png")))
        assert errors == []
    finally:
        context.close()
