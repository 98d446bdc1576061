"""Fault scenarios without a broker: the file format, and what each fault does to the seeded models."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.faults import Transition, check_scenario
from devices.regionfile import DeviceSpec, devices_of, read_devices, sample_region_path
from devices.scenario import KIND_FAULTS, load_scenario, parse_duration, scenario_of
from devices.simulator import Reading, Schedule
from tests.test_devices_models import START, region

SPECS = devices_of(region(1))  # a pump, a farm's soil and stock, a clinic's cold room, a hub's stock
PUMP, SOIL, COLD = SPECS[0], SPECS[1], SPECS[3]
SCENARIOS = Path(__file__).resolve().parents[1] / "devices" / "scenarios"


def scenario(*events: dict[str, Any], **random: Any) -> Any:
    return scenario_of({"format": "rhizome-scenario/1", "events": list(events), "random": random})


def play(
    specs: list[DeviceSpec], hours: float, sc: Any = None, seed: int = 1
) -> tuple[list[tuple[float, dict[str, Any] | None]], list[Transition]]:
    """(hours since start, values) of every reading of the first device, and every transition."""
    schedule = Schedule(specs, seed, START, sc)
    readings, transitions = [], []
    while schedule.peek() <= hours * 3600:
        item = schedule.pop()
        if isinstance(item, Transition):
            transitions.append(item)
        elif item.index == 0:
            readings.append(((item.at - START).total_seconds() / 3600, item.values))
    return readings, transitions


def between(readings: list[tuple[float, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [values for hour, values in readings if start <= hour < end]


def pump_is_normal(r: dict[str, Any]) -> bool:
    if r["running"]:
        return (
            250 <= r["pressure_kpa"] <= 400 and 30 <= r["flow_lpm"] <= 80 and 5 <= r["motor_current_a"] <= 12
        )
    return r["flow_lpm"] == 0 and r["motor_current_a"] == 0 and r["pressure_kpa"] < 50


def test_scripted_pump_failure_then_repair_gives_the_expected_readings() -> None:
    sc = scenario(
        {"at": "2h", "device": PUMP.slug, "event": "pump_failure"},
        {"at": "14h", "device": PUMP.slug, "event": "repair"},
    )
    readings, transitions = play([PUMP], 30, sc)
    assert [(t.event, t.at - START, t.actions) for t in transitions] == [
        ("pump_failure", timedelta(hours=2), ()),
        ("repair", timedelta(hours=14), ()),
    ]
    assert all(pump_is_normal(r) for r in between(readings, 0, 2))
    failing = between(readings, 2, 14)
    assert len(failing) == 12 * 60  # one reading a minute, none lost
    running = [r for r in failing if r["running"]]
    # Running but no flow and the pressure collapsed; the motor turns unloaded.
    assert running and all(r["flow_lpm"] < 1 and r["pressure_kpa"] < 30 for r in running)
    assert all(3 < r["motor_current_a"] < 8 for r in running)
    # Nothing reaches the tank: it only falls, the float switch calls the pump, and the pump never stops.
    levels = [r["tank_level_pct"] for r in failing]
    assert all(b <= a for a, b in itertools.pairwise(levels))
    first_run = next(i for i, r in enumerate(failing) if r["running"])
    assert all(r["running"] for r in failing[first_run:])
    # After the repair: normal readings at once, and the tank refills.
    repaired = between(readings, 14, 30)
    assert all(pump_is_normal(r) for r in repaired)
    assert repaired[0]["running"] and repaired[0]["flow_lpm"] >= 30
    assert max(r["tank_level_pct"] for r in repaired) > levels[-1] + 40


def test_dry_run_and_overcurrent_have_their_own_signatures() -> None:
    dry, _ = play([PUMP], 20, scenario({"at": 0, "device": PUMP.slug, "event": "dry_run", "for": "20h"}))
    running = [r for _, r in dry if r["running"]]
    assert running and all(r["flow_lpm"] < 0.5 and r["pressure_kpa"] < 10 for r in running)
    assert all(r["motor_current_a"] < 5 for r in running)  # no load at all
    hot, _ = play([PUMP], 20, scenario({"at": 0, "device": PUMP.slug, "event": "overcurrent"}))
    running = [r for _, r in hot if r["running"]]
    assert running and all(r["motor_current_a"] > 12 for r in running)
    assert all(10 < r["flow_lpm"] < 50 for r in running)


def test_cold_room_failure_warms_the_room_and_the_repair_cools_it_again() -> None:
    sc = scenario(
        {"at": "1h", "device": COLD.slug, "event": "cold_room_failure"},
        {"at": "7h", "device": COLD.slug, "event": "repair"},
    )
    readings, _ = play([COLD], 12, sc)
    assert all(r["temperature_c"] < 7 for r in between(readings, 0, 1))
    temps = [r["temperature_c"] for r in between(readings, 1, 7)]
    hourly = temps[::60]
    assert all(b > a for a, b in itertools.pairwise(hourly))  # climbing, hour after hour
    assert temps[-1] > 15
    assert all(r["temperature_c"] < 6 for r in between(readings, 9, 12))


def test_sensor_drift_adds_a_growing_offset_to_exactly_the_true_reading() -> None:
    sc = scenario({"at": "1h", "device": SOIL.slug, "event": "sensor_drift", "per_hour": 2.0})
    base, _ = play([SOIL], 11)
    drifted, _ = play([SOIL], 11, sc)
    for (hour, true), (_, shown) in zip(base, drifted, strict=True):
        offset = 2.0 * max(0.0, hour - 1)
        assert shown["soil_moisture_pct"] == pytest.approx(
            min(100.0, true["soil_moisture_pct"] + offset), abs=0.01
        )
        assert shown["temperature_c"] == true["temperature_c"]  # other sensors unaffected
    assert drifted[-1][1]["soil_moisture_pct"] - base[-1][1]["soil_moisture_pct"] == pytest.approx(
        20, abs=0.1
    )


def test_stuck_sensor_repeats_one_value_until_repaired() -> None:
    sc = scenario(
        {"at": "1h", "device": PUMP.slug, "event": "stuck_sensor", "metric": "tank_level_pct", "for": "5h"}
    )
    readings, transitions = play([PUMP], 10, sc)
    stuck = {r["tank_level_pct"] for r in between(readings, 1, 6)}
    assert len(stuck) == 1
    assert len({r["pressure_kpa"] for r in between(readings, 1, 6)}) > 50
    assert len({r["tank_level_pct"] for r in between(readings, 6, 10)}) > 20
    assert [(t.event, t.cause) for t in transitions] == [("stuck_sensor", "script"), ("repair", "timer")]


@pytest.mark.parametrize(("link", "action"), [("drop", "power_off_drop"), ("hang", "power_off_hang")])
def test_power_loss_silences_the_device_and_power_back_reboots_it(link: str, action: str) -> None:
    sc = scenario({"at": "1h", "device": PUMP.slug, "event": "power_loss", "link": link, "for": "2h"})
    readings, transitions = play([PUMP], 6, sc)
    assert [t.actions for t in transitions] == [(action,), ("power_on",)]
    assert all(values is None for values in between(readings, 1, 3))
    assert all(values is not None and pump_is_normal(values) for values in between(readings, 3, 6))
    assert len(between(readings, 0, 1)) >= 60


def test_power_loss_stops_the_pump_and_its_tank_drains() -> None:
    sc = scenario({"at": 0, "device": PUMP.slug, "event": "power_loss", "for": "12h"})
    schedule = Schedule([PUMP], 1, START, sc)
    while schedule.peek() < 12 * 3600:
        schedule.pop()
    assert schedule.models[0].running is False  # type: ignore[attr-defined]
    assert schedule.models[0].level < 30  # type: ignore[attr-defined]


def test_link_outage_keeps_measuring_and_asks_the_fleet_to_drop_and_restore_the_link() -> None:
    sc = scenario(
        {"at": "30m", "device": PUMP.slug, "event": "link_outage"},
        {"at": "1h", "device": PUMP.slug, "event": "power_loss", "link": "hang"},
        {"at": "2h", "device": PUMP.slug, "event": "repair", "fault": "link_outage"},
        {"at": "3h", "device": PUMP.slug, "event": "repair"},
    )
    readings, transitions = play([PUMP], 4, sc)
    assert [t.actions for t in transitions] == [
        ("link_down",),
        ("power_off_hang",),
        ("link_up",),
        ("power_on",),
    ]
    assert all(v is not None for v in between(readings, 0.5, 1))  # measured, waiting in the spool
    assert all(v is None for v in between(readings, 1, 3))


def test_other_devices_read_exactly_as_without_a_scenario() -> None:
    sc = scenario(
        {"at": "1h", "device": PUMP.slug, "event": "pump_failure"},
        {"at": "2h", "device": COLD.slug, "event": "power_loss"},
    )
    quiet, noisy = Schedule(SPECS, 3, START), Schedule(SPECS, 3, START, sc)

    def others(schedule: Schedule) -> list[Any]:
        out = []
        while schedule.peek() <= 6 * 3600:
            item = schedule.pop()
            if isinstance(item, Reading) and item.index not in (0, 3):
                out.append(item)
        return out

    assert others(quiet) == others(noisy)


def test_random_faults_follow_the_mtbf_are_repaired_and_replay_identically() -> None:
    sc = scenario(pump={"mtbf": "12h", "mttr": "3h", "faults": ["pump_failure", "power_loss"]})
    hourly = [replace(spec, interval_s=3600.0) for spec in (PUMP, SOIL)]  # a month, quickly
    _, transitions = play(hourly, 24 * 30, sc, seed=4)
    assert transitions == play(hourly, 24 * 30, sc, seed=4)[1]
    assert {t.index for t in transitions} == {0}  # soil devices have no random faults here
    faults = [t for t in transitions if t.event != "repair"]
    repairs = [t for t in transitions if t.event == "repair"]
    assert {t.event for t in faults} == {"pump_failure", "power_loss"} and {t.cause for t in transitions} == {
        "random"
    }
    assert 25 <= len(faults) <= 75  # about 30 days / (12 h + 3 h)
    assert len(repairs) in (len(faults), len(faults) - 1)  # each fault repaired, the last maybe still open
    assert [t.event for t in transitions[:2]] != ["repair", "repair"]
    assert transitions != play(hourly, 24 * 30, sc, seed=5)[1]


def test_events_at_an_absolute_time_and_devices_not_simulated(caplog: pytest.LogCaptureFixture) -> None:
    at = (START + timedelta(hours=1)).isoformat()
    sc = scenario(
        {"at": at, "device": PUMP.slug, "event": "dry_run"},
        {"at": 0, "device": "elsewhere", "event": "repair"},
    )
    _, transitions = play([PUMP], 2, sc)
    assert [(t.event, t.at) for t in transitions] == [("dry_run", START + timedelta(hours=1))]
    assert "elsewhere" in caplog.text
    early = scenario(
        {"at": (START - timedelta(hours=1)).isoformat(), "device": PUMP.slug, "event": "dry_run"}
    )
    with pytest.raises(ValueError, match="before the simulated start"):
        check_scenario(early, [PUMP], START)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("6h", 21600.0),
        ("1d6h30m", 109800.0),
        ("0.5h", 1800.0),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6x", "h", "-5", -5, True, None, "6h 30", [1]])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def event(**fields: Any) -> dict[str, Any]:
    return {"format": "rhizome-scenario/1", "events": [{"at": 0, "device": "d", "event": "repair", **fields}]}


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"format": "rhizome-scenario/2"}, "rhizome-scenario/1"),
        ({"format": "rhizome-scenario/1", "faults": []}, "unknown keys"),
        (event(event="meteor"), "not one of"),
        (event(device="Not A Slug"), "slug"),
        (event(at="soon"), "duration"),
        (event(at="2025-06-01T10:00:00"), "timezone"),
        (event(event="power_loss", link="wobbly"), "link"),
        (event(event="dry_run", metric="pressure_kpa"), "takes no metric"),
        (event(event="sensor_drift", metric="pressure_psi"), "not a metric"),
        (event(event="sensor_drift", per_hour="fast"), "per_hour"),
        (event(fault="gremlins"), "fault"),
        (event(**{"for": "1h"}), "no duration"),
        (event(event="dry_run", **{"for": 0}), "positive"),
        (event(colour="red"), "unknown keys"),
        ({"format": "rhizome-scenario/1", "random": {"toaster": {"mtbf": "1d"}}}, "device kind"),
        ({"format": "rhizome-scenario/1", "random": {"pump": {"mttr": "1d"}}}, "mtbf"),
        (
            {"format": "rhizome-scenario/1", "random": {"stock": {"mtbf": "1d", "faults": ["dry_run"]}}},
            "stock",
        ),
        ({"format": "rhizome-scenario/1", "random": {"pump": {"mtbf": 0}}}, "positive"),
    ],
)
def test_bad_scenarios_are_rejected_with_a_reason(doc: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        scenario_of(doc)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"device": COLD.slug, "event": "pump_failure"}, "does not apply"),
        ({"device": "t-farm-0-stock", "event": "stuck_sensor"}, "does not apply"),
        ({"device": SOIL.slug, "event": "stuck_sensor", "metric": "pressure_kpa"}, "does not report"),
        ({"device": PUMP.slug, "event": "sensor_drift", "metric": "running"}, "cannot drift"),
        ({"device": SOIL.slug, "event": "repair", "fault": "dry_run"}, "cannot have"),
    ],
)
def test_events_must_fit_the_device_kind(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_scenario(scenario({"at": 0, **fields}), SPECS)


def test_every_kind_has_faults_and_power_and_link_apply_to_all() -> None:
    assert all({"power_loss", "link_outage"} <= set(faults) for faults in KIND_FAULTS.values())


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.json")), ids=lambda p: p.name)
def test_bundled_scenarios_fit_the_sample_region(path: Path) -> None:
    sc = load_scenario(path)
    specs = read_devices(sample_region_path())
    slugs = {spec.slug for spec in specs}
    assert all(event.device in slugs for event in sc.events)
    assert check_scenario(sc, specs, START) or sc.random
    assert json.loads(path.read_text())["description"]


def test_unreadable_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_scenario(tmp_path / "s.json")
    with pytest.raises(ValueError, match="cannot read"):
        load_scenario(tmp_path / "missing.json")
