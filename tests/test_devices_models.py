"""Simulator models and schedule without a broker: reproducible, valid on the wire, physically plausible."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.models import StockModel, demand, device_rng, make_model, solar_hour
from devices.regionfile import DeviceSpec, devices_of, read_devices, sample_region_path, select
from devices.simulator import Schedule, make_body
from gateway.contract.payloads import METRICS, StockReport, Telemetry, encode, parse_message
from gateway.contract.topics import Topic

START = datetime(2025, 6, 1, 4, 0, tzinfo=UTC)  # midnight in Puerto Rico (lon -66)
LON = -66.5


def region(devices_per_kind: int = 2) -> dict[str, Any]:
    """A small region: one community with a farm, a pump site, a clinic and a storage hub."""
    sites = []
    for n in range(devices_per_kind):
        sites += [
            {"slug": f"pump-{n}", "kind": "pump", "lon": LON, "devices": [dev(f"t-pump-{n}", "pump", 60)]},
            {
                "slug": f"farm-{n}",
                "kind": "farm",
                "lon": LON,
                "stock": {"plantains": 300, "coffee": 120},
                "devices": [dev(f"t-farm-{n}-soil", "soil", 300), dev(f"t-farm-{n}-stock", "stock", 300)],
            },
            {
                "slug": f"clinic-{n}",
                "kind": "clinic",
                "lon": LON,
                "devices": [dev(f"t-clinic-{n}", "cold_room", 60)],
            },
            {
                "slug": f"hub-{n}",
                "kind": "storage",
                "lon": LON,
                "stock": {"drinking-water": 5000, "rice": 400, "insulin": 3},
                "devices": [dev(f"t-hub-{n}-stock", "stock", 300)],
            },
        ]
    return {"format": "rhizome-region/1", "communities": [{"slug": "tiny", "sites": sites}]}


def dev(slug: str, kind: str, interval_s: int) -> dict[str, Any]:
    return {"slug": slug, "kind": kind, "interval_s": interval_s}


def run_schedule(
    specs: list[DeviceSpec], seed: int, hours: float
) -> list[tuple[int, datetime, dict[str, Any]]]:
    """Every reading of `hours` simulated hours, in order."""
    schedule = Schedule(specs, seed, START)
    out = []
    while schedule.peek() <= hours * 3600:
        out.append(schedule.pop())
    return out


def by_kind(
    specs: list[DeviceSpec], readings: list[tuple[int, datetime, dict[str, Any]]], kind: str
) -> list[Any]:
    return [values for i, _, values in readings if specs[i].kind == kind]


SPECS = devices_of(region())


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    first = run_schedule(SPECS, seed=7, hours=6)
    assert first == run_schedule(SPECS, seed=7, hours=6)
    assert first != run_schedule(SPECS, seed=8, hours=6)


def test_a_device_behaves_the_same_whichever_devices_run_beside_it() -> None:
    alone = [v for _, _, v in run_schedule([SPECS[0]], seed=3, hours=4)]
    together = [v for i, _, v in run_schedule(SPECS, seed=3, hours=4) if i == 0]
    assert alone == together


def test_thousands_of_payloads_pass_the_contract() -> None:
    readings = run_schedule(SPECS, seed=1, hours=48)
    assert len(readings) > 3000
    now = datetime.now(UTC)
    kinds: Counter[str] = Counter()
    for seq, (i, _at, values) in enumerate(readings, start=1):
        spec = SPECS[i]
        body = make_body("stock" if spec.kind == "stock" else "telemetry", seq, now, values)
        topic = Topic(spec.community, spec.site, spec.slug, body.kind)
        message = parse_message(str(topic), encode(body), now=now)
        assert message.body.to_dict() == body.to_dict()
        kinds[spec.kind] += 1
    assert set(kinds) == {"pump", "soil", "cold_room", "stock"}


def test_metric_names_and_types_follow_the_contract() -> None:
    for values in by_kind(SPECS, run_schedule(SPECS, seed=2, hours=24), "pump"):
        for name, value in values.items():
            kind, low, high = METRICS[name]
            assert isinstance(value, bool) == (kind == "bool"), name
            assert low <= value <= high


def test_pump_readings_in_range_and_duty_cycle() -> None:
    pumps = by_kind(SPECS, run_schedule(SPECS, seed=4, hours=72), "pump")
    running = [p for p in pumps if p["running"]]
    assert 0.15 < len(running) / len(pumps) < 0.85
    for p in running:
        assert (
            250 <= p["pressure_kpa"] <= 400 and 30 <= p["flow_lpm"] <= 80 and 5 <= p["motor_current_a"] <= 12
        )
    for p in pumps:
        assert 0 <= p["tank_level_pct"] <= 100
        if not p["running"]:
            assert p["flow_lpm"] == 0 and p["motor_current_a"] == 0 and p["pressure_kpa"] < 250


def test_pump_tank_rises_while_running() -> None:
    model = make_model(SPECS[0], seed=5)
    rises = []
    previous = model.step(START, 0)
    for k in range(1, 2000):
        reading = model.step(START + timedelta(minutes=k), 60)
        if previous["running"] and reading["running"]:
            rises.append(reading["tank_level_pct"] - previous["tank_level_pct"])
        previous = reading
    assert rises and statistics.mean(rises) > 0


def test_water_use_follows_the_hour_of_day() -> None:
    assert statistics.mean(demand(h / 10) for h in range(240)) == pytest.approx(1.0, abs=0.01)
    assert demand(7) > 2 * demand(3) and demand(19) > 2 * demand(3)
    assert solar_hour(datetime(2025, 1, 1, 16, 0, tzinfo=UTC), -66.0) == pytest.approx(11.6)


def test_soil_dries_and_gets_wet_again() -> None:
    assert SPECS[1].kind == "soil"
    soil = [v["soil_moisture_pct"] for _, _, v in run_schedule(SPECS[1:2], seed=6, hours=24 * 20)]
    assert all(0 <= m <= 100 for m in soil)
    hourly = [statistics.mean(soil[k : k + 12]) for k in range(0, len(soil), 12)]  # 12 readings: one hour
    steps = [b - a for a, b in itertools.pairwise(hourly)]
    assert sum(s < 0 for s in steps) > 0.6 * len(steps)  # mostly drying, beyond the sensor noise
    assert max(steps) > 2.5  # rain or irrigation


def test_cold_room_near_four_degrees_door_sometimes_open() -> None:
    rooms = by_kind(SPECS, run_schedule(SPECS, seed=8, hours=72), "cold_room")
    temps = [r["temperature_c"] for r in rooms]
    assert 3 <= statistics.median(temps) <= 5
    assert all(2 <= t <= 8 for t in temps)
    opened = sum(r["door_open"] for r in rooms) / len(rooms)
    assert 0.005 < opened < 0.2


def test_stock_never_negative_and_restocked_or_harvested() -> None:
    specs = [s for s in SPECS if s.kind == "stock"]
    readings = run_schedule(specs, seed=9, hours=24 * 20)
    for i, spec in enumerate(specs):
        series = [values for j, _, values in readings if j == i]
        assert set(series[0]) == set(spec.stock)
        assert series[0] == {good: float(qty) for good, qty in spec.stock.items()}
        assert all(qty >= 0 for values in series for qty in values.values())
        ups = sum(b[g] > a[g] for a, b in itertools.pairwise(series) for g in a)
        downs = sum(b[g] < a[g] for a, b in itertools.pairwise(series) for g in a)
        assert ups >= 1 and downs > ups


def test_stock_running_out_stops_at_zero() -> None:
    model = StockModel(device_rng(1, "x"), LON, {"insulin": 3.0}, "clinic")
    model.use_per_day["insulin"] = 10.0  # far faster than any restock
    levels = [model.step(START + timedelta(hours=h), 3600)["insulin"] for h in range(1, 48)]
    assert levels[-1] == 0.0 and min(levels) == 0.0


def test_stock_site_without_stock_reports_nothing() -> None:
    spec = DeviceSpec("tiny", "shed", "t-shed-stock", "stock", 300)
    assert make_model(spec, 1).step(START, 300) == {}


def test_first_reading_at_start_then_spread_over_the_interval() -> None:
    schedule = Schedule(SPECS, 11, START)
    firsts = [schedule.pop() for _ in SPECS]
    assert {at for _, at, _ in firsts} == {START}
    seconds = sorted(schedule.peek() for _ in range(1) for _ in SPECS)
    assert 0 < seconds[0] < 60


def test_make_body_kinds() -> None:
    now = datetime.now(UTC)
    assert isinstance(make_body("stock", 1, now, {"rice": 3}), StockReport)
    assert isinstance(make_body("telemetry", 2, now, {"running": True}), Telemetry)


def test_device_rng_is_stable_across_processes() -> None:
    assert device_rng(1, "abc").random() == device_rng(1, "abc").random() != device_rng(2, "abc").random()


def test_region_selection(tmp_path: Path) -> None:
    assert [s.slug for s in select(SPECS, limit=2)] == [SPECS[0].slug, SPECS[1].slug]
    assert select(SPECS, community="nowhere") == []
    path = tmp_path / "r.json"
    path.write_text('{"format": "rhizome-region/1", "communities": []}')
    assert read_devices(path) == []


def one_device(community: str = "c", **device: Any) -> dict[str, Any]:
    """A region document with one device, overridable field by field."""
    fields = {"slug": "d", "kind": "pump", "interval_s": 60, **device}
    sites = [{"slug": "s", "devices": [{k: v for k, v in fields.items() if v is not None}]}]
    return {"format": "rhizome-region/1", "communities": [{"slug": community, "sites": sites}]}


@pytest.mark.parametrize(
    "doc",
    [
        {"format": "other"},
        {"format": "rhizome-region/1"},
        one_device(slug=None),
        one_device(community="Bad Slug"),
        one_device(kind="toaster"),
        one_device(interval_s=0),
    ],
)
def test_bad_region_documents_raise_value_error(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        devices_of(doc)


def test_bundled_sample_region_generates_valid_payloads() -> None:
    path = sample_region_path()
    specs = read_devices(path)
    assert len(specs) > 100 and {s.kind for s in specs} == {"pump", "soil", "cold_room", "stock"}
    now = datetime.now(UTC)
    for seq, (i, _at, values) in enumerate(run_schedule(specs, seed=1, hours=0.5), start=1):
        spec = specs[i]
        body = make_body("stock" if spec.kind == "stock" else "telemetry", seq, now, values)
        parse_message(str(Topic(spec.community, spec.site, spec.slug, body.kind)), encode(body), now=now)
