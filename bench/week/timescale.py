"""Compress simulated time for the running system: rules and report intervals divided by the speed.

The gateway judges durations on the devices' clocks, which are real wall clocks (devices/simulator.py), so at
speed 1200 a rule's "60 s of no flow" must be 0.05 real seconds and "silent for 1.5 report intervals" must
count intervals of real time. Everything else (detection logic, thresholds) is the shipped configuration.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from importlib import resources
from typing import Any, Final

# Stale after 4.5 real s at least (0.6 simulated h at speed 500, so a one-hour link outage is seen, as it
# is at speed 1): the gateway stores a reading within a second here (alert p99 0.3 s), and the runner sweeps
# every SWEEP_EVERY_S. Ten seconds had hidden a cold room's one-hour outage.
MIN_STORE_INTERVAL_S: Final = 3
SWEEP_EVERY_S: Final = 1.0  # real seconds between the gateway's checks for silent devices
# Report intervals for a week at high speed (simulated seconds): a box on a metered link reporting every 15
# minutes (stock and soil hourly) keeps the whole region within what one gateway stores on a shared machine.
WEEK_INTERVALS: Final = {"pump": 900, "cold_room": 900, "stock": 3600, "soil": 3600}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} to TOML")


def scaled_rules(speed: float, text: str | None = None) -> str:
    """The rules file (default: the bundled one) with durations divided by `speed`, rates multiplied."""
    if not speed > 0:
        raise ValueError("speed must be positive")
    if text is None:
        text = (resources.files("gateway.ingest") / "faults" / "rules.toml").read_text(encoding="utf-8")
    lines = [f"# gateway/ingest/faults/rules.toml with simulated durations at speed {speed:g} (bench/week)"]
    for rule in tomllib.loads(text).get("rule", []):
        rule = dict(rule)
        for key in ("for_s", "clear_after_s"):
            if key in rule or key == "clear_after_s":
                rule[key] = float(rule.get(key, 300.0)) / speed
        if "per_min" in rule:
            rule["per_min"] = float(rule["per_min"]) * speed
        lines.append("\n[[rule]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in rule.items()]
    return "\n".join(lines) + "\n"


def with_intervals(region: dict[str, Any], intervals: dict[str, int]) -> dict[str, Any]:
    """The region with each device's report interval set by its kind (kinds not listed keep theirs)."""
    changed = copy.deepcopy(region)
    for community in changed.get("communities", []):
        for site in community.get("sites", []):
            for device in site.get("devices", []):
                if device.get("kind") in intervals:
                    device["interval_s"] = intervals[device["kind"]]
    return changed


def store_region(region: dict[str, Any], speed: float) -> dict[str, Any]:
    """The region as the store should see it: each device's expected interval in real seconds."""
    scaled = copy.deepcopy(region)
    for community in scaled.get("communities", []):
        for site in community.get("sites", []):
            for device in site.get("devices", []):
                interval = float(device.get("interval_s", 60))
                device["interval_s"] = max(MIN_STORE_INTERVAL_S, math.ceil(interval / speed))
    return scaled
