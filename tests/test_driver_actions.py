"""A driver's actions applied once by their action id (POST /api/routes/<id>/actions and the page's forms),
the 4xx answers with their messages, the installable page's worker and manifest, merged visits and the error
pages' links. The offline queue itself is driven in Chromium (tests/browser/test_driver_browser.py)."""

from __future__ import annotations

import json
import struct
import threading
import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from dashboard.read.routes import RouteView, StopView
from dashboard.read.visits import map_data, visits
from dashboard.web.store import get_store
from gateway.contract.errors import Conflict, InvalidInput
from gateway.store import route_actions
from gateway.store.models import DriverAction, Stock, StockLedgerEntry
from gateway.store.models.vocab import DriverActionKind
from tests import test_dashboard_pages as pages
from tests.test_dashboard_pages import Auth

ids, password_hash, app, client, auth = pages.ids, pages.password_hash, pages.app, pages.client, pages.auth


def _csrf(auth: Auth, route: int) -> dict[str, str]:
    return {"X-CSRF-Token": auth.token(f"/routes/{route}")}


def _send(auth: Auth, route: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    given = headers if headers is not None else _csrf(auth, route)
    return auth.client.post(f"/api/routes/{route}/actions", json=body, headers=given)


def _ledger(app: Flask, shipment: int) -> list[float]:
    with get_store(app).sessions() as session:
        query = select(StockLedgerEntry.delta).where(StockLedgerEntry.shipment_id == shipment)
        return list(session.scalars(query.order_by(StockLedgerEntry.id)))


def _recorded(app: Flask) -> list[tuple[str, str | None]]:
    with get_store(app).sessions() as session:
        rows = session.execute(
            select(DriverAction.kind, DriverAction.refused).order_by(DriverAction.created_at)
        )
        return [(kind, refused) for kind, refused in rows]


def _pickup(ids: dict[str, int], quantity: float = 100.0, action_id: str | None = None) -> dict[str, Any]:
    return {
        "id": action_id or str(uuid.uuid4()),
        "kind": "picked_up",
        "stop": ids["pickup"],
        "quantity": quantity,
    }


def test_the_same_action_id_sent_twice_is_applied_once(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("anadriver")
    body = _pickup(ids)
    first = _send(auth, ids["route"], body)
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {
        "id": body["id"],
        "message": "Picked up.",
        "replayed": False,
        "route_status": "in_progress",
    }
    again = _send(auth, ids["route"], body | {"id": body["id"].upper()})  # ids compare in lowercase
    assert again.status_code == 200 and again.get_json() == first.get_json() | {"replayed": True}
    assert _ledger(app, ids["shipment"]) == [-100.0]
    assert _recorded(app) == [("picked_up", None)]
    with get_store(app).sessions() as session:
        assert session.get_one(Stock, (ids["jayuya_hub"], ids["water"])).quantity == 8900.0


def test_a_form_sent_twice_with_its_action_id_moves_the_stock_once(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("anadriver")
    route = f"/routes/{ids['route']}"
    form = {"quantity": "100", "action_id": str(uuid.uuid4())}
    for _ in range(2):  # a double tap, or the browser re-sending the form
        assert auth.post(f"{route}/stops/{ids['pickup']}/done", form, page=route).status_code == 302
    assert _ledger(app, ids["shipment"]) == [-100.0]
    assert "Picked up." in auth.client.get(route).get_data(as_text=True)


def test_a_refusal_is_replayed_and_a_corrected_try_under_the_same_id_is_applied(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("anadriver")
    early = {"id": str(uuid.uuid4()), "kind": "delivered", "stop": ids["drop"]}
    for replayed in (False, True):
        answer = _send(auth, ids["route"], early)
        assert answer.status_code == 409 and answer.get_json()["replayed"] is replayed
        assert answer.get_json()["message"] == "pick the goods up first: the shipment has not been picked up"
    too_much = _pickup(ids, 101.0)
    answer = _send(auth, ids["route"], too_much)
    assert answer.status_code == 400 and "at most the planned 100" in answer.get_json()["message"]
    corrected = _send(auth, ids["route"], too_much | {"quantity": 100.0})  # the box fixed, the form re-sent
    assert corrected.status_code == 200 and corrected.get_json()["replayed"] is False
    assert _ledger(app, ids["shipment"]) == [-100.0]
    assert sorted(_recorded(app), key=str) == sorted(
        [("delivered", "conflict"), ("picked_up", None)], key=str
    )


def test_an_id_already_applied_to_another_action_is_a_409(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("anadriver")
    body = _pickup(ids)
    assert _send(auth, ids["route"], body).status_code == 200
    reused = _send(auth, ids["route"], {"id": body["id"], "kind": "delivered", "stop": ids["drop"]})
    assert reused.status_code == 409 and "already used for another action" in reused.get_json()["message"]
    assert _ledger(app, ids["shipment"]) == [-100.0]


BAD_BODIES = [
    ("not json", 400, "send a JSON object"),
    ({"id": "x", "kind": "accept", "extra": 1}, 400, "unknown field 'extra'"),
    ({"kind": "accept"}, 400, "id must be the action's UUID"),
    ({"id": "not-a-uuid", "kind": "accept"}, 400, "must be a UUID"),
    ({"id": "{uuid}", "kind": "teleport"}, 400, "kind must be one of picked_up, delivered"),
    ({"id": "{uuid}", "kind": "picked_up", "quantity": 5}, 400, "needs the stop it is for"),
    ({"id": "{uuid}", "kind": "accept", "stop": "{pickup}"}, 400, "is for the route, not a stop"),
    (
        {"id": "{uuid}", "kind": "picked_up", "stop": "{pickup}", "quantity": "5"},
        400,
        "quantity must be a number",
    ),
    ({"id": "{uuid}", "kind": "picked_up", "stop": "{pickup}", "quantity": True}, 400, "quantity must be"),
    ({"id": "{uuid}", "kind": "picked_up", "stop": True, "quantity": 5}, 400, "stop must be the stop's id"),
    (
        {"id": "{uuid}", "kind": "failed", "stop": "{drop}", "reason": "x" * 501},
        400,
        "at most 500 characters",
    ),
    (
        {"id": "{uuid}", "kind": "picked_up", "stop": "{pickup}"},
        400,
        "say how much you loaded (planned: 100 L)",
    ),
    ({"id": "{uuid}", "kind": "picked_up", "stop": "{pickup}", "quantity": 0}, 400, "more than 0"),
    ({"id": "{uuid}", "kind": "failed", "stop": "{drop}"}, 400, "say why the delivery failed"),
    ({"id": "{uuid}", "kind": "delivered", "stop": "{pickup}"}, 409, "this stop is a pickup"),
    ({"id": "{uuid}", "kind": "picked_up", "stop": "{drop}", "quantity": 5}, 409, "this stop is a drop-off"),
    ({"id": "{uuid}", "kind": "delivered", "stop": 999999}, 404, "no such stop on this route"),
    ({"id": "{uuid}", "kind": "accept"}, 409, "only a proposed route can be accepted"),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if value == "{uuid}":
        return str(uuid.uuid4())
    if isinstance(value, str) and value.startswith("{") and value.strip("{}") in ids:
        return ids[value.strip("{}")]
    return value


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES, ids=[m for _, _, m in BAD_BODIES])
def test_bad_actions_are_4xx_with_a_message_and_move_nothing(
    app: Flask, auth: Auth, ids: dict[str, int], body: Any, status: int, message: str
) -> None:
    auth.login("anadriver")
    headers = _csrf(auth, ids["route"])
    if body == "not json":
        answer = auth.client.post(f"/api/routes/{ids['route']}/actions", data="x", headers=headers)
    else:
        answer = _send(auth, ids["route"], _fill(body, ids), headers)
    assert answer.status_code == status and message in answer.get_json()["message"], answer.get_json()
    assert answer.get_json()["status"] == status
    assert _ledger(app, ids["shipment"]) == []


def test_only_the_routes_driver_signed_in_with_a_csrf_token_may_send(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    body = _pickup(ids)
    url = f"/api/routes/{ids['route']}/actions"
    auth.token()  # a session with a CSRF token, signed out
    signed_out = auth.client.post(url, json=body, headers={"X-CSRF-Token": auth.token()})
    assert signed_out.status_code == 401 and "sign in again" in signed_out.get_json()["message"]
    auth.login("viewer")
    assert _send(auth, ids["route"], body, {"X-CSRF-Token": auth.token()}).status_code == 403
    auth.login("other")
    assert _send(auth, ids["route"], body, {"X-CSRF-Token": auth.token()}).status_code == 404
    auth.login("anadriver")
    stale = auth.client.post(url, json=body, headers={"X-CSRF-Token": "stale"})
    assert stale.status_code == 400 and "security token" in stale.get_json()["message"]
    assert _ledger(app, ids["shipment"]) == [] and _recorded(app) == []


def test_a_decline_needs_no_reason_and_says_what_went_back(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("anadriver")
    answer = _send(auth, ids["route"], {"id": str(uuid.uuid4()), "kind": "decline"})
    assert answer.status_code == 200
    assert answer.get_json()["message"] == "Route given back; its 1 shipment go back to the planner."
    assert answer.get_json()["route_status"] == "declined"


def test_sends_racing_each_other_apply_the_action_once(app: Flask, ids: dict[str, int]) -> None:
    """Four sends of one id at once (a phone and its retry): one applies it, the others get its answer."""
    ask = route_actions.Ask(
        str(uuid.uuid4()), ids["route"], DriverActionKind.PICKED_UP, "anadriver", ids["pickup"], 100.0
    )
    answers: list[route_actions.Answer] = []
    errors: list[BaseException] = []
    factory = get_store(app).sessions

    def send() -> None:
        try:
            answers.append(route_actions.perform(factory, ask))
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(answers) == 4
    assert sorted(a.replayed for a in answers) == [False, True, True, True]
    assert {(a.message, a.refused) for a in answers} == {("Picked up.", None)}
    assert _ledger(app, ids["shipment"]) == [-100.0]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(DriverAction)) == 1


def test_an_ask_checks_its_own_form() -> None:
    with pytest.raises(InvalidInput, match="must be a UUID"):
        route_actions.Ask("1", 1, DriverActionKind.ACCEPT, "a")
    with pytest.raises(InvalidInput, match="needs the stop"):
        route_actions.Ask(str(uuid.uuid4()), 1, DriverActionKind.FAILED, "a")
    with pytest.raises(InvalidInput, match="must be a number"):
        route_actions.Ask(str(uuid.uuid4()), 1, DriverActionKind.PICKED_UP, "a", 3, float("inf"))
    assert issubclass(route_actions.REFUSALS["conflict"], Conflict)


def _stop(n: int, site: int, action: str, status: str = "pending") -> StopView:
    return StopView(
        n,
        n,
        action,
        status,
        f"Site ({site}) & co",
        "C",
        18.0 + site,
        -66.0,
        "Rice",
        5.0,
        "kg",
        None,
        None,
        site,
    )


def test_consecutive_stops_at_one_site_are_one_visit_and_a_site_has_one_marker() -> None:
    route = RouteView(
        1,
        "accepted",
        1,
        10.0,
        30.0,
        (
            _stop(0, 1, "pickup", "done"),
            _stop(1, 1, "pickup"),
            _stop(2, 2, "delivery"),
            _stop(3, 1, "delivery", "failed"),
        ),
    )
    found = visits(route)
    assert [(v.n, v.site_id, len(v.stops)) for v in found] == [(1, 1, 2), (2, 2, 1), (3, 1, 1)]
    assert [v.status for v in found] == ["pending", "pending", "failed"]
    assert (len(found[0].pickups), len(found[0].dropoffs)) == (2, 0)
    assert found[0].geo == "geo:19.000000,-66.000000?q=19.000000,-66.000000(Site%20%281%29%20%26%20co)"
    drawn = map_data(found)
    assert drawn["path"] == [[19.0, -66.0], [20.0, -66.0], [19.0, -66.0]]
    assert [(m["visits"], m["status"]) for m in drawn["markers"]] == [([1, 3], "pending"), ([2], "pending")]


def test_the_route_page_offers_its_manifest_and_a_worker_scoped_to_routes(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("anadriver")
    page = auth.client.get(f"/routes/{ids['route']}").get_data(as_text=True)
    assert '<link rel="manifest" href="/routes/manifest.webmanifest">' in page
    assert 'data-worker="/routes/sw.js" data-scope="/routes"' in page
    worker = auth.client.get("/routes/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert worker.headers["Service-Worker-Allowed"] == "/routes"
    first = worker.get_data(as_text=True).splitlines()[0]
    config = json.loads(first.removeprefix("const RZ_CONFIG = ").removesuffix(";"))
    assert config["scope"] == "/routes" and len(config["version"]) == 16
    # the route map draws the sample's PMTiles basemap (no tile server here), small enough to keep whole
    assert (config["basemap"], config["basemapWhole"]) == ("/map/basemap.pmtiles", True)
    with auth.client.get(config["basemap"]) as basemap:
        assert basemap.headers["ETag"].strip('"') == config["basemapId"]
    assert "vendor/protomaps-leaflet/protomaps-leaflet.js" in page
    for asset in config["assets"]:
        with auth.client.get(asset) as served:
            assert served.status_code == 200, asset
    manifest = auth.client.get("/routes/manifest.webmanifest")
    doc = manifest.get_json(force=True)
    assert manifest.mimetype == "application/manifest+json"
    assert (doc["start_url"], doc["scope"], doc["display"]) == ("/routes", "/routes", "standalone")
    for icon in doc["icons"]:
        with auth.client.get(icon["src"]) as served:
            data = served.get_data()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert "{}x{}".format(*struct.unpack(">II", data[16:24])) == icon["sizes"]


def test_the_driver_page_requires_loaded_and_merges_nothing_it_should_not(
    auth: Auth, ids: dict[str, int]
) -> None:
    auth.login("anadriver")
    page = auth.client.get(f"/routes/{ids['route']}").get_data(as_text=True)
    field = page[page.index('name="quantity"') : page.index(">", page.index('name="quantity"'))]
    assert "required" in field and "value=" not in field  # never pre-filled with the plan
    assert page.count('class="rz-visit ') == 2 and page.count('href="geo:') == 2


def test_error_pages_link_the_route_my_routes_and_sign_in(auth: Auth, ids: dict[str, int]) -> None:
    signed_out = auth.client.get("/routes/abc").get_data(as_text=True)
    assert ">Sign in</a>" in signed_out and ">The map</a>" in signed_out
    auth.login("anadriver")
    missing = auth.client.get("/routes/999999").get_data(as_text=True)
    assert 'href="/routes">My routes</a>' in missing and "Sign in" not in missing.split("rz-error")[1]
    route = f"/routes/{ids['route']}"
    refused = auth.post(f"{route}/accept", {}, page=route)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409 and f'href="{route}">Back to route {ids["route"]}</a>' in text
    assert 'href="/routes">My routes</a>' in text
    bad = auth.post(f"{route}/stops/{ids['pickup']}/done", {}, page=route)
    assert bad.status_code == 400 and f">Back to route {ids['route']}</a>" in bad.get_data(as_text=True)
