"""A short region week through the real processes (gateway, planner, dashboard, simulator as subprocesses):
three scripted faults in a seven-community slice of the sample region are detected, tasked, alerted to a
crew member, repaired by the simulated crew through the dashboard and confirmed by the readings; stored
readings equal sent ones; the report is written with both plots. Real broker and database in CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.week.cli import run_and_report
from bench.week.runner import WeekConfig
from bench.week.timescale import MIN_STORE_INTERVAL_S, scaled_rules, store_region
from gateway.process.settings import Settings
from gateway.store.region import read_region, sample_region_path
from tests.conftest import Broker

COMMUNITIES = {"utuado", "adjuntas", "lares", "jayuya", "ponce", "humacao", "yauco"}
EVENTS = [
    {"at": "1h", "device": "utuado-pump-1-pump", "event": "pump_failure"},
    {"at": "2h", "device": "humacao-hub-cold", "event": "cold_room_failure"},
    {"at": "3h", "device": "adjuntas-pump-2-pump", "event": "dry_run"},
]


def small_region() -> dict[str, object]:
    region = read_region(sample_region_path())
    region["communities"] = [c for c in region["communities"] if c["slug"] in COMMUNITIES]
    region["members"] = [m for m in region["members"] if m["community"] in COMMUNITIES]
    return region


def test_rules_and_intervals_are_scaled_by_the_speed() -> None:
    text = scaled_rules(600.0)
    assert "for_s = 0.1\n" in text and "per_min = 180.0" in text  # pump_failure 60 s; warming 0.3/min
    region = store_region(small_region(), 600.0)
    intervals = {
        d["interval_s"] for c in region["communities"] for s in c["sites"] for d in s.get("devices", [])
    }
    # 60-300 simulated s is under a real second: the floor keeps stale detection sane.
    assert intervals == {MIN_STORE_INTERVAL_S}


@pytest.mark.network
@pytest.mark.slow
def test_a_short_week_closes_every_scripted_fault_through_the_real_chain(
    broker: Broker, database_url: str, tmp_path: Path
) -> None:
    region_file = tmp_path / "region.json"
    region_file.write_text(json.dumps(small_region()))
    for event in EVENTS:  # the slice holds every device the scenario names
        assert event["device"] in region_file.read_text()
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"format": "rhizome-scenario/1", "events": EVENTS}))
    settings = Settings(
        mqtt_url=broker.url, mqtt_protocol=broker.protocol, database_url=database_url, data_dir=tmp_path
    )
    config = WeekConfig(
        scenario=scenario,
        region=region_file,
        days=0.75,
        speed=2400.0,
        seed=3,
        plan_every_h=4.0,
        behaviour={"decline_p": 0.0, "no_show_p": 0.0},  # declines are measured by the week, not here
    )
    report = tmp_path / "report" / "week.md"
    figures = run_and_report(settings, config, report)

    assert figures["faults"] == 3
    assert (
        figures["faults_detected"] == 3 and figures["faults_tasked"] == 3 and figures["faults_alerted"] == 3
    )
    assert figures["faults_repaired"] == 3 and figures["faults_confirmed"] == 3
    assert figures["tasks_closed_unconfirmed"] == 0
    assert figures["stored_equals_sent"] is True and figures["readings_stored"] > 0
    assert figures["outbox_unpublished"] == 0
    assert 0 < figures["fault_to_alert_median_s"] < 30  # real seconds; generous on a loaded machine
    assert figures["essential_coverage"] is None or 0 <= figures["essential_coverage"] <= 1
    text = report.read_text()
    assert "| 3 | adjuntas-pump-2-pump | dry_run |" in text
    for png in ("week_downtime.png", "week_shortage.png"):
        assert (report.parent / png).stat().st_size > 5000 and f"]({png})" in text
