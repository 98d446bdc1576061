"""The whole chain against the real broker and database in CI (embedded broker and SQLite elsewhere):
simulated devices publish, the gateway stores, the dashboard's API returns the stored stock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dashboard.web.app import create_app
from dashboard.web.store import get_store
from gateway.ingest.service import GatewayService
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import Community, Device, Good, Reading, Site, Stock, StockLedgerEntry
from gateway.store.region import load_region
from tests.conftest import Broker, tiny_region_data
from tests.test_gateway_service import Running, wait_until

pytestmark = pytest.mark.network


def stored_stock(engine: Engine, community: str) -> dict[tuple[str, str], float]:
    with Session(engine) as session:
        rows = session.execute(
            select(Site.slug, Good.slug, Stock.quantity)
            .join(Site, Stock.site_id == Site.id)
            .join(Community, Site.community_id == Community.id)
            .join(Good, Stock.good_id == Good.id)
            .where(Community.slug == community)
        )
        return {(site, good): quantity for site, good, quantity in rows}


def test_devices_gateway_store_dashboard(
    engine: Engine, database_url: str, broker: Broker, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    region = tiny_region_data(tag)
    region_file = tmp_path / "region.json"
    region_file.write_text(json.dumps(region))
    with make_session_factory(engine).begin() as session:
        load_region(session, region)
    initial = stored_stock(engine, f"utuado{tag}")
    settings = Settings(
        mqtt_url=broker.url,
        mqtt_protocol=broker.protocol,
        database_url=database_url,
        gateway_client_id=f"e2e-{tag}",
    )
    gateway = Running(GatewayService(settings, engine, session_expiry_s=0))
    try:
        env = {**os.environ, "RHIZOME_MQTT_URL": broker.url, "RHIZOME_MQTT_PROTOCOL": broker.protocol}
        simulate = [
            sys.executable,
            "-m",
            "gateway.process.cli",
            "--data-dir",
            str(tmp_path),
            "devices",
            "simulate",
        ]
        # Yesterday's daytime: people use stock by day, so a run that starts at night may change nothing.
        start = (datetime.now(UTC) - timedelta(days=1)).replace(hour=14, minute=0, second=0, microsecond=0)
        options = ["--region", str(region_file), "--speed", "600", "--duration", "6", "--seed", "3"]
        options += ["--start", start.isoformat()]
        result = subprocess.run([*simulate, *options], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]

        def all_offline() -> bool:
            with Session(engine) as session:
                states = session.scalars(select(Device.state)).all()
            return len(states) == 3 and set(states) == {"offline"}

        wait_until(all_offline, timeout=20)  # the clean "offline" is each device's last message
    finally:
        gateway.close()

    with Session(engine) as session:
        readings = session.scalars(select(Reading)).all()
        kinds = {r.kind for r in readings}
        assert len(readings) >= 10 and kinds == {"telemetry", "stock"}
        sensor_entries = session.scalars(
            select(StockLedgerEntry)
            .join(Site, StockLedgerEntry.site_id == Site.id)
            .join(Community, Site.community_id == Community.id)
            .where(StockLedgerEntry.source == "sensor", Community.slug == f"utuado{tag}")
            .order_by(StockLedgerEntry.id)
        ).all()
        assert any(entry.delta != 0 for entry in sensor_entries), "stock reports changed no stock"
        sites = {site.id: site.slug for site in session.scalars(select(Site))}
        goods = {good.id: good.slug for good in session.scalars(select(Good))}
    final = stored_stock(engine, f"utuado{tag}")
    # The ledger explains the stock: what was loaded plus every change the boxes reported is what is stored
    # (a box may also report a level back where it started, so the totals need not differ from the start).
    expected = dict(initial)
    for entry in sensor_entries:
        key = (sites[entry.site_id], goods[entry.good_id])
        expected[key] = expected.get(key, 0.0) + entry.delta
        assert entry.quantity_after == pytest.approx(expected[key])
    assert final == pytest.approx(expected)

    app = create_app(settings, test_config={"TESTING": True})
    client = app.test_client()
    try:
        response = client.get(f"/api/stock?community=utuado{tag}")
        devices = client.get(f"/api/devices?community=utuado{tag}").get_json()["devices"]
    finally:
        get_store(app).engine.dispose()
    assert response.status_code == 200
    api = {(row["site"], row["good"]): row["quantity"] for row in response.get_json()["stock"]}
    assert api == pytest.approx(final)
    assert {d["state"] for d in devices} == {"offline"}
