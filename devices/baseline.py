"""The same week with nobody moving goods: every stock device's levels, stepped offline from the same seed.

A stock model's harvests, use and restocking depend only on (seed, device, simulated time) and on its own
levels, so stepping the region's schedule without a broker and without drivers' `receive` messages gives
what each site would have held had no delivery been made: the baseline of the region week's coverage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from devices.regionfile import DeviceSpec
from devices.scenario import Scenario
from devices.simulator import Reading, Schedule

FORMAT = "rhizome-baseline/1"


def stock_levels(
    specs: Sequence[DeviceSpec],
    seed: int,
    start: datetime,
    days: float,
    scenario: Scenario | None = None,
    every_s: float = 3600.0,
) -> dict[str, Any]:
    """Each stock device's last reported level of every good at the end of every `every_s` of `days`.

    The levels are those the device would have reported (rounded, as on the wire), before any delivery.
    """
    if not days > 0 or not every_s > 0:
        raise ValueError("days and every_s must be positive")
    # Every model draws from its own generator (seed, slug), so the stock devices alone step as they do
    # among all the others, in a fraction of the time.
    specs = [spec for spec in specs if spec.kind == "stock" and spec.stock]
    if scenario is not None:
        slugs = {spec.slug for spec in specs}
        scenario = replace(scenario, events=tuple(e for e in scenario.events if e.device in slugs))
    schedule = Schedule(specs, seed, start, scenario)
    stock = dict(enumerate(specs))
    reported = {i: {good: float(round(q)) for good, q in spec.stock.items()} for i, spec in stock.items()}
    series: dict[int, dict[str, list[float]]] = {
        i: {good: [] for good in spec.stock} for i, spec in stock.items()
    }
    marks = math.ceil(days * 86400 / every_s - 1e-9)
    for k in range(1, marks + 1):
        mark = min(k * every_s, days * 86400)
        while schedule.peek() <= mark:
            item = schedule.pop()
            if isinstance(item, Reading) and item.index in stock and item.values is not None:
                reported[item.index].update({g: float(v) for g, v in item.values.items()})
        for i, levels in series.items():
            for good, values in levels.items():
                values.append(reported[i][good])
    return {
        "format": FORMAT,
        "seed": seed,
        "start": start.isoformat(),
        "every_s": every_s,
        "devices": {
            stock[i].slug: {"community": stock[i].community, "site": stock[i].site, "levels": levels}
            for i, levels in series.items()
        },
    }


def write(path: Path, baseline: dict[str, Any]) -> None:
    """Write a baseline as JSON."""
    path.write_text(json.dumps(baseline, separators=(",", ":")), encoding="utf-8")
