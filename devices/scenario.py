"""Fault scenario files (`rhizome-scenario/1` JSON): scripted events and random faults, validated on load.

The prose version, with every event and its parameters, is docs/scenarios.md. This module only reads and
checks the file; devices/faults.py plays it against the simulated devices.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from gateway.contract.payloads import METRICS
from gateway.contract.scenarios import FAULTS, parse_duration
from gateway.contract.topics import is_slug

FORMAT: Final = "rhizome-scenario/1"
EVENTS: Final = (*FAULTS, "repair")
PUMP_FAULTS: Final = ("pump_failure", "dry_run", "overcurrent")  # one mechanical state at a time
_ANY = ("power_loss", "link_outage")
_SENSOR = ("sensor_drift", "stuck_sensor")
KIND_FAULTS: Final[Mapping[str, tuple[str, ...]]] = {
    "pump": (*PUMP_FAULTS, *_SENSOR, *_ANY),
    "soil": (*_SENSOR, *_ANY),
    "cold_room": ("cold_room_failure", *_SENSOR, *_ANY),
    "stock": _ANY,
}
KIND_METRICS: Final[Mapping[str, tuple[str, ...]]] = {
    "pump": ("running", "tank_level_pct", "pressure_kpa", "flow_lpm", "motor_current_a", "rssi_dbm"),
    "soil": ("soil_moisture_pct", "temperature_c", "battery_v", "rssi_dbm"),
    "cold_room": ("temperature_c", "humidity_pct", "door_open", "rssi_dbm"),
}
DEFAULT_METRIC: Final[Mapping[str, str]] = {
    "pump": "pressure_kpa",
    "soil": "soil_moisture_pct",
    "cold_room": "temperature_c",
}
DRIFT_PER_HOUR: Final[Mapping[str, float]] = {
    "pressure_kpa": -5.0,
    "flow_lpm": -1.0,
    "motor_current_a": 0.2,
    "tank_level_pct": 1.0,
    "soil_moisture_pct": 0.5,
    "temperature_c": 0.3,
    "battery_v": -0.02,
    "humidity_pct": 0.5,
    "rssi_dbm": -1.0,
}
LINK_MODES: Final = ("drop", "hang")
DEFAULT_MTTR_S: Final = 4 * 3600.0
_EVENT_KEYS = {"at", "device", "event", "for", "metric", "per_hour", "link", "fault"}


@dataclass(frozen=True)
class Event:
    """One scripted event: a fault on a device, or its repair, at a simulated time."""

    device: str
    name: str
    at_s: float | None = None  # seconds after the simulated start...
    at_time: datetime | None = None  # ...or an absolute simulated time
    duration_s: float | None = None  # repaired automatically after this long
    metric: str | None = None
    per_hour: float | None = None
    link: str = "drop"
    fault: str | None = None  # repair: only this fault (default: every fault of the device)

    def offset(self, sim_start: datetime) -> float:
        """Seconds after `sim_start`; ValueError for a time before the start."""
        offset = self.at_s if self.at_s is not None else (self.at_time - sim_start).total_seconds()  # type: ignore[operator]
        if offset < 0:
            raise ValueError(f"scenario event {self.name} of {self.device} is before the simulated start")
        return offset


@dataclass(frozen=True)
class RandomFaults:
    """Random faults of one device kind: exponential times between failures and to repair."""

    mtbf_s: float
    mttr_s: float
    faults: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    """A validated scenario file."""

    events: tuple[Event, ...] = ()
    random: Mapping[str, RandomFaults] = field(default_factory=dict)
    description: str = ""


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; ValueError names what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read scenario file {path}: {exc}") from exc
    try:
        return scenario_of(data)
    except ValueError as exc:
        raise ValueError(f"scenario {path}: {exc}") from exc


def scenario_of(data: Any) -> Scenario:
    """Validate a parsed scenario document."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    _only(data, {"format", "description", "events", "random"}, "the document")
    events = data.get("events", [])
    randoms = data.get("random", {})
    if not isinstance(events, list) or not isinstance(randoms, dict):
        raise ValueError("events must be a list and random an object")
    parsed = tuple(_event(raw, n) for n, raw in enumerate(events, start=1))
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description must be a string")
    return Scenario(parsed, {kind: _random(kind, raw) for kind, raw in randoms.items()}, description)


def check_event(event: Event, kind: str) -> None:
    """ValueError unless `event` makes sense for a device of `kind` (its metric included)."""
    if event.name == "repair":
        if event.fault is not None and event.fault not in KIND_FAULTS[kind]:
            raise ValueError(f"{event.device} ({kind}) cannot have {event.fault} to repair")
        return
    if event.name not in KIND_FAULTS[kind]:
        raise ValueError(f"{event.name} does not apply to {event.device}, a {kind} device")
    if event.metric is not None:
        if event.metric not in KIND_METRICS.get(kind, ()):
            raise ValueError(f"{event.device} ({kind}) does not report {event.metric}")
        if event.name == "sensor_drift" and METRICS[event.metric][0] != "number":
            raise ValueError(f"{event.metric} is not a number and cannot drift")


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ValueError(f"unknown keys in {where}: {', '.join(extra)}")


def _event(raw: Any, n: int) -> Event:
    where = f"event {n}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not an object")
    _only(raw, _EVENT_KEYS, where)
    for key in ("at", "device", "event"):
        if key not in raw:
            raise ValueError(f"{where} has no {key!r}")
    name, device = raw["event"], raw["device"]
    if name not in EVENTS:
        raise ValueError(f"{where}: event {name!r} is not one of {', '.join(EVENTS)}")
    if not is_slug(device):
        raise ValueError(f"{where}: device {device!r} is not a slug")
    at_s, at_time = _at(raw["at"], where)
    allowed = {
        "sensor_drift": {"metric", "per_hour"},
        "stuck_sensor": {"metric"},
        "power_loss": {"link"},
        "repair": {"fault"},
    }.get(name, set())
    given = set(raw) - {"at", "device", "event", "for"}
    if given - allowed:
        raise ValueError(f"{where}: {name} takes no {', '.join(sorted(given - allowed))}")
    if name == "repair" and "for" in raw:
        raise ValueError(f"{where}: a repair has no duration")
    metric = raw.get("metric")
    if metric is not None and metric not in METRICS:
        raise ValueError(f"{where}: {metric!r} is not a metric of the contract")
    per_hour = raw.get("per_hour")
    if per_hour is not None and (isinstance(per_hour, bool) or not isinstance(per_hour, int | float)):
        raise ValueError(f"{where}: per_hour must be a number")
    link = raw.get("link", "drop")
    if link not in LINK_MODES:
        raise ValueError(f"{where}: link must be one of {LINK_MODES}")
    fault = raw.get("fault")
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"{where}: fault {fault!r} is not one of {', '.join(FAULTS)}")
    duration = parse_duration(raw["for"]) if "for" in raw else None
    if duration is not None and duration <= 0:
        raise ValueError(f"{where}: 'for' must be positive")
    return Event(
        device=device,
        name=name,
        at_s=at_s,
        at_time=at_time,
        duration_s=duration,
        metric=metric,
        per_hour=float(per_hour) if per_hour is not None else None,
        link=link,
        fault=fault,
    )


def _at(value: Any, where: str) -> tuple[float | None, datetime | None]:
    """'at': a duration after the start, or an ISO 8601 time with a timezone."""
    if isinstance(value, str) and ("-" in value or "T" in value):
        try:
            when = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{where}: at {value!r} is neither a duration nor an ISO time") from exc
        if when.tzinfo is None:
            raise ValueError(f"{where}: at {value!r} needs a timezone (Z for UTC)")
        return None, when.astimezone(UTC)
    try:
        return parse_duration(value), None
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _random(kind: str, raw: Any) -> RandomFaults:
    where = f"random.{kind}"
    if kind not in KIND_FAULTS:
        raise ValueError(f"{where}: {kind!r} is not a device kind ({', '.join(KIND_FAULTS)})")
    if not isinstance(raw, dict) or "mtbf" not in raw:
        raise ValueError(f"{where} must be an object with an 'mtbf'")
    _only(raw, {"mtbf", "mttr", "faults"}, where)
    mtbf, mttr = parse_duration(raw["mtbf"]), parse_duration(raw.get("mttr", DEFAULT_MTTR_S))
    if mtbf <= 0 or mttr <= 0:
        raise ValueError(f"{where}: mtbf and mttr must be positive")
    faults = raw.get("faults", list(KIND_FAULTS[kind]))
    if not isinstance(faults, list) or not faults:
        raise ValueError(f"{where}: faults must be a non-empty list")
    bad = [f for f in faults if f not in KIND_FAULTS[kind]]
    if bad:
        raise ValueError(f"{where}: {', '.join(map(str, bad))} cannot happen to a {kind} device")
    return RandomFaults(mtbf, mttr, tuple(faults))
