"""The task board's JSON API: the same checks as the forms (a 400 naming the field, a 409 for a place that
does not fit, never a 500), writes only with a session and its CSRF token, counts and never names for the
public, and each route in the OpenAPI document.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from gateway.contract.clock import now as clock_now
from tests import test_dashboard_pages as pages
from tests.test_dashboard_pages import Auth

ids, password_hash, app, client, auth = pages.ids, pages.password_hash, pages.app, pages.client, pages.auth


def _draft(**changes: Any) -> dict[str, Any]:
    day = (clock_now() + timedelta(days=2)).date()
    draft: dict[str, Any] = {
        "title": "Solar retrofit of the <i>community centre</i>",
        "sector": "maintenance",
        "community": "utuado",
        "starts_at": f"{day}T09:00:00Z",
        "ends_at": f"{day}T12:00:00Z",
        "urgency": "high",
        "poster_kind": "guild",
        "poster_name": "Solar guild",
        "slots": [
            {"skill": "solar-installer"},
            {"skill": "pump-mechanic"},
            {"skill": None, "newcomer": True},
        ],
    }
    draft.update(changes)
    return draft


def _token(auth: Auth, user: str) -> str:
    auth.login(user)
    return auth.token("/board")


def _write(auth: Auth, method: str, path: str, token: str, body: Any = None) -> Any:
    return auth.client.open(path, method=method, json=body, headers={"X-CSRF-Token": token})


def test_post_take_and_read_back_with_counts_only(auth: Auth, ids: dict[str, int]) -> None:
    token = _token(auth, "ana")
    created = _write(auth, "POST", "/api/board", token, _draft())
    assert created.status_code == 201, created.get_json()
    task = created.get_json()
    assert task["poster"] == "Solar guild (guild)" and task["urgency"] == "high"
    shift = task["shifts"][0]
    slot = next(s for s in task["slots"] if s["skill"] == "pump-mechanic")
    taken = _write(auth, "POST", f"/api/board/shifts/{shift['id']}/slots/{slot['id']}/take", token)
    assert taken.status_code == 201 and taken.get_json()["state"] == "taken"
    again = _write(auth, "POST", f"/api/board/shifts/{shift['id']}/slots/{slot['id']}/take", token)
    assert again.status_code == 409 and "already have this place" in again.get_json()["message"]
    mine = auth.client.get("/api/board/mine").get_json()
    assert [p["title"] for p in mine["places"]] == [task["title"]] and mine["csrf_token"] == token
    own = auth.client.get(f"/api/board/{task['id']}").get_json()["shifts"][0]
    assert own["filled"] == 1 and own["mine"][0]["state"] == "taken"
    auth.client.post("/logout", data={"csrf_token": token})
    public = auth.client.get("/api/board?sector=maintenance").get_json()
    assert public["count"] == 1
    row = public["tasks"][0]["shifts"][0]
    assert row["filled"] == 1 and row["places"] == 3 and row["mine"] == []
    assert "Ana" not in auth.client.get("/api/board").get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": ""}, "title"),
        ({"sector": "mining"}, "sector must be one of"),
        ({"slots": []}, "at least one slot"),
        ({"slots": [{"skill": "<b>"}]}, "a skill is a short name"),
        ({"starts_at": "tomorrow"}, "starts_at must be an ISO time"),
        ({"recurrence": {"days": [9], "start": "09:00", "end": "12:00"}}, "recurrence days"),
        ({"urgency": "apocalyptic"}, "urgency"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"poster_kind": "coordinator"}, "only a coordinator"),
        ({"lat": 18.2}, "give both lat and lon"),
    ],
)
def test_a_bad_task_is_a_400_naming_the_field(auth: Auth, changes: dict[str, Any], message: str) -> None:
    token = _token(auth, "ana")
    response = _write(auth, "POST", "/api/board", token, _draft(**changes))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.get_json()["message"]


def test_writes_need_a_session_and_its_token(auth: Auth) -> None:
    assert auth.client.post("/api/board", json=_draft()).status_code == 400  # no CSRF token
    token = auth.token("/login")  # a token, but nobody signed in
    response = _write(auth, "POST", "/api/board", token, _draft())
    assert response.status_code == 401 and "sign in" in response.get_json()["message"]
    token = _token(auth, "viewer")
    assert _write(auth, "POST", "/api/board", token, "not an object").status_code == 400
    created = _write(auth, "POST", "/api/board", token, _draft()).get_json()
    slot = created["slots"][0]["id"]
    refused = _write(auth, "POST", f"/api/board/slots/{slot}/take-series", token)
    assert refused.status_code == 403 and "not linked to a member" in refused.get_json()["message"]


def test_change_and_cancel_by_the_poster_only(auth: Auth) -> None:
    token = _token(auth, "viewer")
    task = _write(auth, "POST", "/api/board", token, _draft()).get_json()
    changed = _write(auth, "PATCH", f"/api/board/{task['id']}", token, {"title": "Retrofit, day one"})
    assert changed.status_code == 200 and changed.get_json()["title"] == "Retrofit, day one"
    bad = _write(auth, "PATCH", f"/api/board/{task['id']}", token, {"sector": "food"})
    assert bad.status_code == 400 and "cannot be changed" in bad.get_json()["message"]
    auth.client.post("/logout", data={"csrf_token": token})
    other = _token(auth, "ana")
    assert _write(auth, "POST", f"/api/board/{task['id']}/cancel", other, {"reason": "x"}).status_code == 403
    auth.client.post("/logout", data={"csrf_token": other})
    coord = _token(auth, "coord")
    done = _write(auth, "POST", f"/api/board/{task['id']}/cancel", coord, {"reason": "rain"})
    assert done.status_code == 200 and done.get_json() == {"id": task["id"], "status": "cancelled", "told": 0}
    assert _write(auth, "POST", f"/api/board/{task['id']}/cancel", coord, {}).status_code == 409


@pytest.mark.parametrize("query", ["sector=mining", "km=x", "km=5", "from=soon", "skill=%3Cb%3E", "limit=5"])
def test_bad_filters_are_a_400(auth: Auth, query: str) -> None:
    response = auth.client.get(f"/api/board?{query}")
    assert response.status_code == 400 and response.get_json()["message"]


def test_unknown_task_signup_and_action(auth: Auth, app: Flask) -> None:
    token = _token(auth, "ana")
    assert auth.client.get("/api/board/999").status_code == 404
    assert _write(auth, "POST", "/api/board/signups/999/accept", token).status_code == 404
    assert _write(auth, "POST", "/api/board/signups/999/dance", token).status_code == 404
    assert _write(auth, "POST", "/api/board/shifts/1/slots/999/take", token).status_code == 404


def test_goals_api_reads_progress_and_coordinators_set_and_remove(auth: Auth) -> None:
    public = auth.client.get("/api/goals").get_json()
    assert public["goals"] == [] and {s["sector"] for s in public["sectors"]} >= {"food", "other"}
    assert auth.client.get("/api/goals?x=1").status_code == 400
    token = _token(auth, "ana")
    refused = _write(auth, "POST", "/api/goals", token, {"sector": "food", "kind": "hours", "target": 10})
    assert refused.status_code == 403
    auth.client.post("/logout", data={"csrf_token": token})
    token = _token(auth, "coord")
    bad = _write(auth, "POST", "/api/goals", token, {"sector": "food", "kind": "smiles", "target": 10})
    assert bad.status_code == 400 and "kind" in bad.get_json()["message"]
    made = _write(auth, "POST", "/api/goals", token, {"sector": "food", "kind": "hours", "target": 10})
    assert made.status_code == 201
    goal = made.get_json()["id"]
    listed = auth.client.get("/api/goals").get_json()
    assert listed["goals"][0] | {"achieved": 0} == {
        "id": goal,
        "sector": "food",
        "kind": "hours",
        "community": None,
        "community_name": listed["goals"][0]["community_name"],
        "target": 10.0,
        "achieved": 0,
        "met": False,
        "percent": 0,
    }
    food = next(s for s in listed["sectors"] if s["sector"] == "food")
    assert food["sentence"].startswith("Food: ") and "goals met" in food["sentence"]
    assert _write(auth, "DELETE", f"/api/goals/{goal}", token).get_json()["removed"] is True
    assert _write(auth, "DELETE", f"/api/goals/{goal}", token).status_code == 404


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"urgency": "²"}, "urgency must be 0-3"),
        ({"starts_at": "9999-12-31T23:00:00-05:00"}, "years 2000 to 2100"),
        ({"starts_at": "0001-01-01T00:30:00+01:00"}, "years 2000 to 2100"),
        ({"title": "Pickup\x00 day"}, "control character"),
        ({"place": "Hall\u2028X-INJECT:1"}, "control character"),
    ],
)
def test_inputs_that_once_gave_a_500_are_a_400(auth: Auth, changes: dict[str, Any], message: str) -> None:
    token = _token(auth, "ana")
    response = _write(auth, "POST", "/api/board", token, _draft(**changes))
    assert response.status_code == 400 and message in response.get_json()["message"]


@pytest.mark.parametrize(
    "query",
    [
        "to=9999-12-31",
        "from=9999-12-31",
        "from=2026-01-01garbage",
        "from=2027-01-10&to=2027-01-01",
        "to=2099-01-01",
    ],
)
def test_dates_out_of_range_or_malformed_are_a_400(auth: Auth, query: str) -> None:
    for path in ("/api/board", "/board"):
        assert auth.client.get(f"{path}?{query}").status_code == 400, (path, query)


def test_a_change_keeps_the_rules_of_a_post(auth: Auth) -> None:
    token = _token(auth, "ana")
    task = _write(auth, "POST", "/api/board", token, _draft()).get_json()
    path = f"/api/board/{task['id']}"
    for body, message in (
        ({"hours_per_slot": 24}, "longer than one occurrence"),
        ({"ends_at": "2999-01-01T00:00:00Z"}, "years 2000 to 2100"),
        ({"starts_at": "2001-01-01T09:00:00Z"}, "lasts at most 24 h"),
        ({"starts_at": "2020-01-01T09:00:00Z", "ends_at": "2020-01-01T10:00:00Z"}, "would be over already"),
    ):
        response = _write(auth, "PATCH", path, token, body)
        assert response.status_code == 400 and message in response.get_json()["message"], body
    assert _write(auth, "PATCH", path, token, {"hours_per_slot": 2}).status_code == 200


def test_a_weekly_change_cannot_stretch_the_series(auth: Auth) -> None:
    token = _token(auth, "ana")
    day = (clock_now() + timedelta(days=2)).date()
    weekly = _draft(
        starts_at=f"{day}T00:00:00Z",
        ends_at=f"{day + timedelta(days=20)}T00:00:00Z",
        recurrence={"days": [day.weekday()], "start": "09:00", "end": "11:00"},
    )
    task = _write(auth, "POST", "/api/board", token, weekly).get_json()
    response = _write(auth, "PATCH", f"/api/board/{task['id']}", token, {"ends_at": "2099-01-01T00:00:00Z"})
    assert response.status_code == 400 and "at most 366 days" in response.get_json()["message"]


def test_the_skill_filter_lists_only_tasks_with_such_a_place_free(auth: Auth) -> None:
    token = _token(auth, "ana")
    task = _write(auth, "POST", "/api/board", token, _draft()).get_json()
    slot = next(s["id"] for s in task["slots"] if s["skill"] == "pump-mechanic")
    assert auth.client.get("/api/board?skill=pump-mechanic").get_json()["count"] == 1
    _write(auth, "POST", f"/api/board/shifts/{task['shifts'][0]['id']}/slots/{slot}/take", token)
    assert auth.client.get("/api/board?skill=pump-mechanic").get_json()["count"] == 0
    assert auth.client.get("/api/board?skill=none").get_json()["count"] == 1  # the newcomer place is free


def test_big_ids_and_thousands_separators_are_refused_cleanly(auth: Auth) -> None:
    token = _token(auth, "ana")
    assert _write(auth, "POST", "/api/board/signups/99999999999999999999/accept", token).status_code == 404
    auth.client.post("/logout", data={"csrf_token": token})
    token = _token(auth, "coord")
    comma = _write(auth, "POST", "/api/goals", token, {"sector": "food", "kind": "hours", "target": "1,000"})
    assert comma.status_code == 400 and "thousands separator" in comma.get_json()["message"]
    zero = _write(
        auth, "POST", "/api/goals", token, {"sector": "food", "kind": "hours", "target": 5, "month": 0}
    )
    assert zero.status_code == 400 and "month" in zero.get_json()["message"]


def test_a_series_on_a_cancelled_task_is_a_409(auth: Auth) -> None:
    token = _token(auth, "coord")
    task = _write(auth, "POST", "/api/board", token, _draft(poster_kind="coordinator")).get_json()
    _write(auth, "POST", f"/api/board/{task['id']}/cancel", token, {})
    auth.client.post("/logout", data={"csrf_token": token})
    token = _token(auth, "ana")
    slot = task["slots"][2]["id"]
    response = _write(auth, "POST", f"/api/board/slots/{slot}/take-series", token)
    assert response.status_code == 409 and "no coming dates" in response.get_json()["message"]
