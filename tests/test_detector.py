"""Fault detection on named sequences of readings: one fault per incident, cleared only by normal data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.ingest.detector import RATE_SAMPLES, Cleared, Detector, Opened
from gateway.ingest.rules import load_rules

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
RULES = load_rules()
PUMP_OK = {
    "running": True,
    "flow_lpm": 40.0,
    "pressure_kpa": 300.0,
    "tank_level_pct": 60.0,
    "motor_current_a": 8.0,
}
PUMP_BROKEN = {**PUMP_OK, "flow_lpm": 0.2, "pressure_kpa": 20.0}


def feed(detector: Detector, kind: str, readings: list[tuple[int, dict]]) -> list[tuple[int, str, str]]:
    """Feed (seconds after T0, metrics) readings of device 1; return (second, event, rule) tuples."""
    events = []
    for second, metrics in readings:
        for e in detector.observe(1, kind, T0 + timedelta(seconds=second), metrics):
            events.append((second, type(e).__name__, e.rule.name))
    return events


def every(step: int, start: int, stop: int, metrics: dict) -> list[tuple[int, dict]]:
    return [(s, metrics) for s in range(start, stop, step)]


def test_pump_failure_opens_after_60_s_and_clears_after_5_min_of_normal_flow() -> None:
    readings = every(10, 0, 100, PUMP_OK) + every(10, 100, 400, PUMP_BROKEN) + every(10, 400, 800, PUMP_OK)
    assert feed(Detector(RULES), "pump", readings) == [
        (160, "Opened", "pump_failure"),
        (700, "Cleared", "pump_failure"),
    ]


def test_a_flapping_reading_is_one_incident_not_many() -> None:
    flapping = [(s, PUMP_BROKEN if (s // 10) % 4 else PUMP_OK) for s in range(0, 1200, 10)]
    events = feed(Detector(RULES), "pump", every(10, 0, 60, PUMP_BROKEN) + flapping)
    assert [e[1] for e in events] == ["Opened"]  # normal spells of 10 s never reach the 300 s needed to clear


def test_a_short_dip_does_not_open_a_fault() -> None:
    readings = every(10, 0, 50, PUMP_BROKEN) + every(10, 50, 300, PUMP_OK)
    assert feed(Detector(RULES), "pump", readings) == []


def test_first_abnormal_time_is_kept() -> None:
    detector = Detector(RULES)
    events = [
        e
        for s, m in every(10, 0, 100, PUMP_BROKEN)
        for e in detector.observe(1, "pump", T0 + timedelta(seconds=s), m)
    ]
    assert len(events) == 1 and isinstance(events[0], Opened)
    assert events[0].first_abnormal_at == T0 and events[0].at == T0 + timedelta(seconds=60)


def test_a_pump_that_also_empties_its_tank_is_still_one_incident() -> None:
    draining = [(s, {**PUMP_BROKEN, "tank_level_pct": max(0.0, 60.0 - s / 10)}) for s in range(0, 1200, 10)]
    assert feed(Detector(RULES), "pump", draining) == [(60, "Opened", "pump_failure")]


def test_cold_chain_breach_needs_15_minutes_above_8_c() -> None:
    warm = [(s, {"temperature_c": 9.0, "door_open": False}) for s in range(0, 1000, 60)]
    events = feed(Detector(RULES), "cold_room", [(0, {"temperature_c": 4.0}), *warm])
    assert (900, "Opened", "cold_chain_breach") in events


def test_a_fast_warming_cold_room_is_caught_before_the_breach() -> None:
    rising = [(s, {"temperature_c": 3.0 + 0.5 * s / 60}) for s in range(0, 700, 60)]
    events = feed(Detector(RULES), "cold_room", rising)
    assert events[0] == (600, "Opened", "cold_room_warming")


def test_a_room_reporting_every_second_keeps_a_bounded_window_and_is_still_caught() -> None:
    """The rate window holds at most RATE_SAMPLES samples, whatever the report rate (memory of 10k rooms)."""
    detector = Detector(RULES)
    steady = [(s, {"temperature_c": 4.0 + (s % 2) * 0.01}) for s in range(0, 1800)]
    assert feed(detector, "cold_room", steady) == []
    watch = detector._watches[(1, "cold_room_warming")]
    assert len(watch.samples) <= RATE_SAMPLES + 1
    rising = [(s, {"temperature_c": 4.0 + 0.5 * (s - 1800) / 60}) for s in range(1800, 2500)]
    # 0.5 C/min after 10 flat minutes: the 10-minute slope passes 0.3 C/min once 6 min of it are in the window
    assert feed(detector, "cold_room", rising)[0] == (2161, "Opened", "cold_room_warming")
    assert len(watch.samples) <= RATE_SAMPLES + 1


def test_a_stuck_sensor_is_reported() -> None:
    frozen = [(s, {"temperature_c": 4.25}) for s in range(0, 7300, 300)]
    assert feed(Detector(RULES), "cold_room", frozen) == [(7200, "Opened", "sensor_stuck")]


def test_device_reported_fault_codes() -> None:
    detector = Detector(RULES)
    opened = detector.observe(1, "pump", T0, PUMP_OK, ("E17",))
    assert [(type(e).__name__, e.rule.name) for e in opened] == [("Opened", "device_fault_code")]
    assert opened[0].details == {"codes": ["E17"]}


def test_readings_without_the_metrics_of_a_rule_say_nothing_about_it() -> None:
    readings = every(10, 0, 100, PUMP_BROKEN) + every(10, 100, 800, {"running": True})
    assert feed(Detector(RULES), "pump", readings) == [(60, "Opened", "pump_failure")]  # never cleared


def test_late_readings_are_not_judged_again() -> None:
    detector = Detector(RULES)
    feed(detector, "pump", every(10, 600, 700, PUMP_OK))
    assert feed(detector, "pump", every(10, 0, 100, PUMP_BROKEN)) == []


def test_open_incidents_survive_a_restart() -> None:
    detector = Detector(RULES)
    detector.restore([(1, "pump_failure")])
    events = feed(detector, "pump", every(10, 0, 400, PUMP_OK))
    assert events == [(300, "Cleared", "pump_failure")]


def test_silence_opens_and_data_clears() -> None:
    detector = Detector(RULES)
    silent = next(r for r in RULES if r.name == "pump_silent")
    assert isinstance(detector.observe_silence(1, silent, True, T0), Opened)
    assert detector.observe_silence(1, silent, True, T0) is None
    assert isinstance(detector.observe_silence(1, silent, False, T0), Cleared)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('name = "x"\nkind = "magic"\nseverity = "low"\ndevice_kind = "pump"', "kind"),
        ('name = "x"\nkind = "threshold"\nseverity = "urgent"\ndevice_kind = "pump"', "severity"),
        ('name = "x"\nkind = "threshold"\nseverity = "low"\ndevice_kind = "toaster"', "device_kind"),
        ('name = "x"\nkind = "threshold"\nseverity = "low"\ndevice_kind = "pump"', "needs `when`"),
        (
            'name = "x"\nkind = "threshold"\nseverity = "low"\ndevice_kind = "pump"\n'
            'when = [["flow_gpm", "<", 1]]',
            "bad condition",
        ),
        (
            'name = "x"\nkind = "stuck"\nseverity = "low"\ndevice_kind = "pump"\nmetric = "nope"',
            "unknown metric",
        ),
        (
            'name = "x"\nkind = "stuck"\nseverity = "low"\ndevice_kind = "pump"\nmetric = "pressure_kpa"\n'
            "min_readings = 0",
            "min_readings",
        ),
        (
            'name = "x"\nkind = "threshold"\nseverity = "low"\ndevice_kind = "pump"\n'
            'when = [["flow_lpm", "<", 1]]\nwhile = [["spinning", "==", true]]',
            "bad condition",
        ),
    ],
)
def test_bad_rules_files_are_refused_with_the_rule_named(rule: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(f"[[rule]]\n{rule}\n")
    with pytest.raises(ValueError, match=message):
        load_rules(path)


def test_a_labouring_motor_is_an_overcurrent_and_the_busiest_normal_pump_is_not() -> None:
    """Normal draw is 5-12 A; a seizing bearing draws 1.8-2.4 times normal (13-24 A, docs/scenarios.md)."""
    busy = every(60, 0, 600, {**PUMP_OK, "motor_current_a": 12.0})
    assert feed(Detector(RULES), "pump", busy) == []
    seizing = [(s, {**PUMP_OK, "motor_current_a": 7.0 * 1.9, "flow_lpm": 20.0}) for s in range(0, 200, 60)]
    assert feed(Detector(RULES), "pump", seizing)[0] == (60, "Opened", "motor_overcurrent")


def test_an_hourly_probe_repeating_a_slow_value_is_not_stuck_until_six_readings_say_so() -> None:
    twice = [
        (0, {"soil_moisture_pct": 31.5}),
        (3600, {"soil_moisture_pct": 31.5}),
        (7200, {"soil_moisture_pct": 31.5}),
    ]
    assert feed(Detector(RULES), "soil", twice) == []  # two hours, but three readings
    frozen = [(h * 3600, {"soil_moisture_pct": 31.5}) for h in range(8)]
    assert feed(Detector(RULES), "soil", frozen) == [(5 * 3600, "Opened", "sensor_stuck")]


def test_a_stopped_motor_says_nothing_about_overcurrent() -> None:
    """`while running`: the float switch stopping the pump neither clears the fault nor counts as normal."""
    labouring = {**PUMP_OK, "motor_current_a": 15.0, "flow_lpm": 20.0}
    stopped = {**PUMP_OK, "running": False, "motor_current_a": 0.0, "flow_lpm": 0.0}
    readings = [(0, labouring), (60, labouring), *every(60, 120, 1200, stopped), (1200, labouring)]
    assert feed(Detector(RULES), "pump", readings) == [(60, "Opened", "motor_overcurrent")]
