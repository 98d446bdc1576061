"""The goals page (/goals): public like the map and collective only (no name of anyone who worked), the map's
and the API's sector progress counting the goals too, and coordinators setting and removing goals through a
checked, CSRF-protected form (a bad value is a 400 with its message, never a 500)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from dashboard.web.accounts import MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig
from dashboard.web.store import get_store
from gateway.contract import clock
from gateway.process.settings import Settings
from gateway.store import goals, hours
from gateway.store.models import Community, SectorGoal
from gateway.store.models.vocab import WorkKind
from tests import test_dashboard_pages as pages
from tests.test_dashboard_pages import PASSWORD, Auth

# The pages' fixtures, shared: the tiny region with Ana's repair task and route, the app and its accounts.
ids, password_hash, app, client, auth = pages.ids, pages.password_hash, pages.app, pages.client, pages.auth


@pytest.fixture
def month_goals(app: Flask, ids: dict[str, int]) -> dict[str, int]:
    """Ana accepted 3 h on Utuado's pump this month (water work: it counts as other, in Utuado); the region
    asks 2 h of other work (met) and Utuado 6 h (half way)."""
    now = clock.now()
    month = goals.month_of(now)
    with get_store(app).sessions.begin() as session:
        hours.offer(session, ids["member"], WorkKind.REPAIR, ids["task"], "water", 3.0, now, now)
        hours.reserve(session, WorkKind.REPAIR, ids["task"])
        utuado = session.scalar(select(Community.id).where(Community.slug == "utuado"))
        region = goals.set_goal(
            session, community_id=None, sector="other", month=month, kind="hours", target=2, set_by="luz"
        )
        local = goals.set_goal(
            session, community_id=utuado, sector="other", month=month, kind="hours", target=6, set_by="luz"
        )
        return {"region": region.id, "utuado": local.id}


def _goals(app: Flask) -> set[tuple[Any, ...]]:
    """Every stored goal as (community id, sector, kind, target, set by)."""
    with get_store(app).sessions() as session:
        rows = session.execute(
            select(
                SectorGoal.community_id,
                SectorGoal.sector,
                SectorGoal.kind,
                SectorGoal.target,
                SectorGoal.set_by,
            )
        )
        return {tuple(r) for r in rows}


def test_the_public_sees_collective_progress_and_no_names(
    client: FlaskClient, month_goals: dict[str, int]
) -> None:
    page = client.get("/goals").get_data(as_text=True)
    assert "Other: 50% of this month&#39;s goals met" in page
    assert "1 of 2 work goals reached" in page
    assert "Food: no goals set" in page and "Water: 50% of this month&#39;s goals met" in page
    assert '<progress max="100" value="50"' in page and '<progress max="100" value="100"' in page
    assert "the region" in page and "Utuado" in page
    assert "Ana" not in page and "luz" not in page  # neither who worked nor who set the goal
    assert "Set a goal" not in page and "/remove" not in page


def test_the_map_and_the_api_count_the_goals(client: FlaskClient, month_goals: dict[str, int]) -> None:
    assert "Other: 50% of this month&#39;s goals met" in client.get("/").get_data(as_text=True)
    assert "Other: 50% of this month&#39;s goals met" in client.get("/shortages").get_data(as_text=True)
    sectors = {s["sector"]: s for s in client.get("/api/sectors").get_json()["sectors"]}
    assert (sectors["other"]["goals"], sectors["other"]["met"], sectors["other"]["percent"]) == (2, 1, 50)
    assert (sectors["water"]["goals"], sectors["water"]["met"]) == (2, 1)  # the stock goals, as before


def test_a_private_map_keeps_the_goals_private(
    engine: Engine, database_url: str, ids: dict[str, int]
) -> None:
    private = create_app(
        Settings(database_url=database_url),
        DashboardConfig(public_map=False),
        accounts=MemoryAccountStore([make_account("viewer", PASSWORD, "viewer")]),
    )
    client = private.test_client()
    assert client.get("/goals").status_code == 302
    Auth(client).login("viewer")
    page = client.get("/goals")
    assert page.status_code == 200 and "Set a goal" not in page.get_data(as_text=True)
    get_store(private).engine.dispose()


def test_a_coordinator_sets_changes_and_removes_goals(app: Flask, auth: Auth, ids: dict[str, int]) -> None:
    auth.login("coord")
    month = goals.month_of(clock.now())
    form = {"community": "jayuya", "sector": "health", "kind": "slots", "target": "4", "month": month}
    response = auth.post("/goals", form, page="/goals")
    assert response.status_code == 302 and response.location == "/goals"
    assert auth.post("/goals", {**form, "target": "5"}, page="/goals").status_code == 302
    region = {**form, "community": "region", "kind": "hours", "target": "12.5"}
    assert auth.post("/goals", region, page="/goals").status_code == 302
    with get_store(app).sessions() as session:
        jayuya = session.scalar(select(Community.id).where(Community.slug == "jayuya"))
    assert _goals(app) == {
        (jayuya, "health", "slots", 5.0, "coord"),
        (None, "health", "hours", 12.5, "coord"),
    }
    page = auth.client.get("/goals").get_data(as_text=True)
    assert "Goal set." in page and "Jayuya" in page and "Set a goal" in page and ">coord<" in page
    with get_store(app).sessions() as session:
        goal_id = session.scalar(select(SectorGoal.id).where(SectorGoal.kind == "slots"))
    assert auth.post(f"/goals/{goal_id}/remove", page="/goals").status_code == 302
    assert {g[2] for g in _goals(app)} == {"hours"}
    assert auth.post(f"/goals/{goal_id}/remove", page="/goals").status_code == 404


def test_a_goal_for_another_month_is_listed_under_that_month(app: Flask, auth: Auth) -> None:
    auth.login("coord")
    form = {"community": "utuado", "sector": "education", "kind": "hours", "target": "8", "month": "2031-02"}
    response = auth.post("/goals", form, page="/goals")
    assert response.status_code == 302 and response.location == "/goals?month=2031-02"
    page = auth.client.get(response.location).get_data(as_text=True)
    assert "Goals for February 2031" in page and "8 hours" in page
    assert "2031-02" not in auth.client.get("/goals").get_data(as_text=True).split("Set a goal")[0]
    assert auth.client.get("/goals?month=February").status_code == 400


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target": "0"}, "target must be a number above 0"),
        ({"target": "many"}, "target must be a number"),
        ({"target": "1e12"}, "at most 100,000 hours"),
        ({"kind": "slots", "target": "1.5"}, "whole number of places"),
        ({"sector": "water"}, "sector must be one of"),
        ({"kind": "people"}, "kind must be one of hours, slots"),
        ({"month": "2026-13"}, "01 to 12"),
        ({"community": "atlantis"}, "no community &#39;atlantis&#39;"),
    ],
)
def test_a_bad_goal_is_a_400_with_the_message_and_the_form_kept(
    app: Flask, auth: Auth, changes: dict[str, str], message: str
) -> None:
    auth.login("coord")
    form = {"community": "utuado", "sector": "food", "kind": "hours", "target": "10", "month": "2026-12"}
    response = auth.post("/goals", {**form, **changes}, page="/goals")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and message in page, page[:500]
    assert 'id="rz-goal-error"' in page and "Set a goal" in page
    assert f'value="{changes.get("target", "10")}"' in page  # what they typed, to fix one value
    assert _goals(app) == set()


def test_only_coordinators_change_goals(
    app: Flask, auth: Auth, client: FlaskClient, month_goals: dict[str, int]
) -> None:
    form = {"community": "utuado", "sector": "food", "kind": "hours", "target": "10"}
    refused = client.post("/goals", data=form)  # no token
    assert refused.status_code == 400 and "security token" in refused.get_data(as_text=True)
    anonymous = client.post("/goals", data={**form, "csrf_token": auth.token()})
    assert anonymous.status_code == 302 and anonymous.location.startswith("/login")
    auth.login("ana")
    assert auth.post("/goals", form, page="/goals").status_code == 403
    assert auth.post(f"/goals/{month_goals['region']}/remove", page="/goals").status_code == 403
    auth.login("viewer")
    assert auth.post("/goals", form, page="/goals").status_code == 403
    assert len(_goals(app)) == 2
