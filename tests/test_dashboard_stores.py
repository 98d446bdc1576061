"""The dashboard on the integration store (PostgreSQL in CI) and on the bundled sample region."""

from __future__ import annotations

import time

from sqlalchemy import Engine

from dashboard.web.app import create_app
from dashboard.web.store import get_store
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.region import load_region, read_region, sample_region_path
from tests.test_dashboard_app import REGION, XSS

MAX_SAMPLE_PAGE_SECONDS = 10.0  # generous for CI; about 0.4 s on a 2-core machine


def test_same_answers_on_the_integration_store(engine: Engine, database_url: str) -> None:
    with make_session_factory(engine).begin() as session:
        load_region(session, REGION)
    app = create_app(Settings(database_url=database_url))
    client = app.test_client()
    levels = {c["slug"]: c["level"] for c in client.get("/api/communities").get_json()["communities"]}
    assert levels == {"alpha": "short", "beta": "critical", "xss": "ok"}
    water = client.get("/api/stock?good=water").get_json()["stock"]
    assert [(r["community"], r["quantity"]) for r in water] == [("alpha", 500), ("beta", 200)]
    page = client.get("/").get_data(as_text=True)
    assert XSS not in page and "https://" not in page
    get_store(app).engine.dispose()


def test_sample_region_map(engine: Engine, database_url: str) -> None:
    path = sample_region_path()
    data = read_region(path)
    with make_session_factory(engine).begin() as session:
        load_region(session, data)
    app = create_app(Settings(database_url=database_url))
    client = app.test_client()
    started = time.perf_counter()
    response = client.get("/")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and elapsed < MAX_SAMPLE_PAGE_SECONDS
    page = response.get_data(as_text=True)
    assert f"{len(data['communities'])} communities" in page and "https://" not in page
    assert client.get("/api/communities").get_json()["count"] == len(data["communities"])
    get_store(app).engine.dispose()
