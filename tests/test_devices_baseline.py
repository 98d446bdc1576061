"""The region week's baseline: stock devices stepped offline with nobody moving goods."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devices.baseline import stock_levels
from devices.regionfile import devices_of
from devices.simulator import Reading, Schedule
from gateway.process.cli import main
from tests.conftest import tiny_region_data

START = datetime(2025, 6, 2, 4, 0, tzinfo=UTC)


def test_stock_devices_alone_step_as_they_do_among_all_devices() -> None:
    specs = devices_of(tiny_region_data())
    baseline = stock_levels(specs, seed=5, start=START, days=1.0)
    # The whole region's schedule, as `devices simulate` runs it: the hub's readings at each hour's end.
    schedule = Schedule(specs, 5, START)
    hub = next(i for i, s in enumerate(specs) if s.kind == "stock")
    seen = {good: float(round(q)) for good, q in specs[hub].stock.items()}
    expected: dict[str, list[float]] = {good: [] for good in seen}
    for hour in range(1, 25):
        while schedule.peek() <= hour * 3600:
            item = schedule.pop()
            if isinstance(item, Reading) and item.index == hub and item.values is not None:
                seen.update({g: float(v) for g, v in item.values.items()})
        for good, values in expected.items():
            values.append(seen[good])
    device = baseline["devices"][specs[hub].slug]
    assert device["levels"] == expected
    assert (device["community"], device["site"]) == (specs[hub].community, specs[hub].site)
    assert all(len(v) == 24 for v in device["levels"].values())
    assert device["levels"]["water"][-1] < device["levels"]["water"][0], "a day's use shows"


def test_the_baseline_command_writes_the_levels(tmp_path: Path) -> None:
    region = tmp_path / "region.json"
    region.write_text(json.dumps(tiny_region_data()))
    out = tmp_path / "baseline.json"
    argv = ["devices", "baseline", "--region", str(region), "--start", START.isoformat(), "--days", "0.5"]
    assert main([*argv, "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["format"] == "rhizome-baseline/1" and data["every_s"] == 3600.0
    assert [len(v) for v in data["devices"]["utuado-hub-stock"]["levels"].values()] == [12, 12]


@pytest.mark.parametrize("days", ["0", "-1"])
def test_the_baseline_command_refuses_a_period_that_is_not_positive(
    tmp_path: Path, days: str, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["devices", "baseline", "--start", START.isoformat(), "--days", days, "--out", str(tmp_path / "b")]
    assert main(argv) == 1
    assert "--days must be positive" in caplog.text and not (tmp_path / "b").exists()
