"""Per-kind device physics: seeded, reproducible, plausible readings with daily patterns.

A model only knows simulated time: `step(at, dt_s)` advances its state by `dt_s` simulated seconds ending at
`at` and returns the reading (telemetry metrics, or stock levels). Each device draws from its own generator,
seeded from (seed, slug), so a device behaves the same whichever devices run beside it.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import datetime, timedelta
from typing import Literal, Protocol

from devices.regionfile import DeviceSpec

SUBSTEP_S = 60.0  # integration step: coarse enough to be cheap, fine enough for tanks and rain


def device_rng(seed: int, slug: str) -> random.Random:
    """A generator per device, independent of Python's hash randomisation and of the other devices."""
    digest = hashlib.sha256(f"{seed}:{slug}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def solar_hour(at: datetime, lon: float | None) -> float:
    """Local solar hour (0-24) from UTC and longitude: what the sun, and people's days, follow."""
    hour = at.hour + at.minute / 60 + at.second / 3600
    return (hour + (lon or 0.0) / 15.0) % 24.0


def _bump(hour: float, centre: float, width: float) -> float:
    d = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-((d / width) ** 2))


def _raw_demand(hour: float) -> float:
    return 0.25 + 1.3 * _bump(hour, 7.0, 1.5) + 1.0 * _bump(hour, 19.0, 2.0) + 0.5 * _bump(hour, 13.0, 4.0)


_MEAN_DEMAND = sum(_raw_demand(m / 60) for m in range(24 * 60)) / (24 * 60)


def demand(hour: float) -> float:
    """Relative use of water and goods by hour of day: morning and evening peaks, quiet nights; mean 1."""
    return _raw_demand(hour) / _MEAN_DEMAND


def daylight(hour: float) -> float:
    """0 at night, up to 1 at solar noon."""
    return max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0))


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _substeps(at: datetime, dt_s: float) -> list[tuple[float, float]]:
    """(length in hours, UTC seconds offset) slices covering the dt_s seconds that end at `at`."""
    slices = []
    elapsed = 0.0
    while elapsed < dt_s:
        length = min(SUBSTEP_S, dt_s - elapsed)
        slices.append((length / 3600, elapsed + length - dt_s))
        elapsed += length
    return slices


class Model(Protocol):
    """What the simulator asks of every kind."""

    @property
    def kind(self) -> Literal["telemetry", "stock"]: ...

    def step(self, at: datetime, dt_s: float) -> dict[str, float | bool]: ...


class PumpModel:
    """A well pump filling a tank: hysteresis control sets the duty cycle, use follows the hour of day.

    Faults (devices/faults.py) set `powered` (off: the pump stops) and `fill_factor` (the share of its
    normal output that reaches the tank: 0 for a failed or dry-running pump).
    """

    kind: Literal["telemetry"] = "telemetry"

    def __init__(self, rng: random.Random, lon: float | None) -> None:
        self.rng, self.lon = rng, lon
        self.fill_pct_h = rng.uniform(18, 30)
        self.use_pct_h = self.fill_pct_h * rng.uniform(0.3, 0.6)  # mean use / capacity = duty cycle
        self.low, self.high = rng.uniform(25, 40), rng.uniform(85, 95)
        self.level = rng.uniform(40, 90)
        self.running = self.level < self.low
        self.pressure, self.flow = rng.uniform(290, 350), rng.uniform(40, 70)
        self.current, self.rssi = rng.uniform(7, 10), rng.uniform(-95, -60)
        self.powered, self.fill_factor = True, 1.0

    def step(self, at: datetime, dt_s: float) -> dict[str, float | bool]:
        for hours, offset in _substeps(at, dt_s):
            hour = solar_hour(at + timedelta(seconds=offset), self.lon)
            use = self.use_pct_h * demand(hour) * self.rng.uniform(0.7, 1.3)
            fill = self.fill_pct_h * self.fill_factor if self.running else 0.0
            self.level = _clamp(self.level + fill * hours - use * hours, 0, 100)
            if not self.powered:
                self.running = False
            elif self.level <= self.low:
                self.running = True
            elif self.level >= self.high:
                self.running = False
        g = self.rng.gauss
        on = self.running
        return {
            "running": on,
            "tank_level_pct": round(self.level, 1),
            "pressure_kpa": round(
                _clamp(self.pressure + g(0, 12), 250, 400) if on else _clamp(g(15, 5), 0, 40), 1
            ),
            "flow_lpm": round(_clamp(self.flow + g(0, 3), 30, 80), 1) if on else 0.0,
            "motor_current_a": round(_clamp(self.current + g(0, 0.3), 5, 12), 2) if on else 0.0,
            "rssi_dbm": float(round(_clamp(self.rssi + g(0, 2), -120, -30))),
        }


class SoilModel:
    """Soil moisture that dries by day, jumps with afternoon showers and with irrigation when too dry."""

    kind: Literal["telemetry"] = "telemetry"

    def __init__(self, rng: random.Random, lon: float | None) -> None:
        self.rng, self.lon = rng, lon
        self.moisture = rng.uniform(25, 40)
        self.capacity = rng.uniform(42, 55)  # field capacity: rain drains away above it
        self.dry_pct_h = rng.uniform(0.2, 0.4)
        self.irrigated = rng.random() < 0.6
        self.threshold = rng.uniform(18, 24)
        self.rssi = rng.uniform(-100, -70)

    def step(self, at: datetime, dt_s: float) -> dict[str, float | bool]:
        rng = self.rng
        for hours, offset in _substeps(at, dt_s):
            hour = solar_hour(at + timedelta(seconds=offset), self.lon)
            self.moisture -= (0.03 + self.dry_pct_h * daylight(hour)) * hours * self.moisture / 30
            showers_per_h = 0.01 + 0.08 * _bump(hour, 15.5, 2.0)  # tropical afternoon showers
            if rng.random() < showers_per_h * hours:
                self.moisture += rng.uniform(3, 20)
            if self.irrigated and self.moisture < self.threshold and rng.random() < 0.5 * hours:
                self.moisture += rng.uniform(10, 18)
            self.moisture = _clamp(min(self.moisture, self.capacity + 5), 5, 100)
        hour = solar_hour(at, self.lon)
        return {
            "soil_moisture_pct": round(_clamp(self.moisture + rng.gauss(0, 0.3), 0, 100), 1),
            "temperature_c": round(24 + 3 * math.sin(2 * math.pi * (hour - 9) / 24) + rng.gauss(0, 0.2), 1),
            "battery_v": round(_clamp(3.75 + 0.35 * daylight(hour) + rng.gauss(0, 0.02), 3.3, 4.2), 2),
            "rssi_dbm": float(round(_clamp(self.rssi + rng.gauss(0, 2), -120, -30))),
        }


class ColdRoomModel:
    """A cold room held at ~4 C; door openings (mostly in working hours) warm it briefly.

    Without `cooling` (a failed compressor, no power) the room warms towards the ambient temperature.
    """

    kind: Literal["telemetry"] = "telemetry"
    RECOVERY_S = 600.0  # time constant of the compressor pulling the temperature back
    WARMING_S = 4 * 3600.0  # time constant of an insulated room warming up without cooling
    AMBIENT_C = 27.0

    def __init__(self, rng: random.Random, lon: float | None) -> None:
        self.rng, self.lon = rng, lon
        self.setpoint = rng.uniform(3.6, 4.4)
        self.temperature = self.setpoint
        self.rssi = rng.uniform(-90, -55)
        self.cooling = True

    def step(self, at: datetime, dt_s: float) -> dict[str, float | bool]:
        rng = self.rng
        target, tau = (self.setpoint, self.RECOVERY_S) if self.cooling else (self.AMBIENT_C, self.WARMING_S)
        self.temperature = target + (self.temperature - target) * math.exp(-dt_s / tau)
        hour = solar_hour(at, self.lon)
        door_open = rng.random() < (0.08 if 7 <= hour < 18 else 0.01)
        if door_open:  # a warm breath, never above what the room held anyway
            warmed = min(self.temperature + rng.uniform(0.3, 1.0), self.setpoint + 2.5)
            self.temperature = max(self.temperature, warmed)
        return {
            "temperature_c": round(self.temperature + rng.gauss(0, 0.1), 2),
            "humidity_pct": round(_clamp(85 + rng.gauss(0, 2) + (5 if door_open else 0), 60, 99), 1),
            "door_open": door_open,
            "rssi_dbm": float(round(_clamp(self.rssi + rng.gauss(0, 2), -120, -30))),
        }


class StockModel:
    """Stock levels of a site: used by hour of day, restocked (stores) or harvested (farms) now and then."""

    kind: Literal["stock"] = "stock"

    def __init__(
        self, rng: random.Random, lon: float | None, stock: dict[str, float], site_kind: str
    ) -> None:
        self.rng, self.lon = rng, lon
        self.initial = dict(stock)
        self.levels = dict(stock)
        self.farm = site_kind == "farm"
        self.use_per_day = {
            good: rng.uniform(0.05, 0.12) if self.farm else rng.uniform(0.03, 0.08) for good in stock
        }

    def step(self, at: datetime, dt_s: float) -> dict[str, float | bool]:
        rng = self.rng
        for hours, offset in _substeps(at, dt_s):
            hour = solar_hour(at + timedelta(seconds=offset), self.lon)
            for good, level in self.levels.items():
                use = self.initial[good] * self.use_per_day[good] * demand(hour) * hours / 24
                self.levels[good] = max(0.0, level - use * rng.uniform(0.5, 1.5))
            if 8 <= hour < 17 and rng.random() < 0.05 * hours:  # ~0.45 events per working day
                self._arrival()
        return {good: float(round(level)) for good, level in self.levels.items()}

    def receive(self, good: str, delta: float) -> bool:
        """Goods unloaded (positive) or picked up (negative) by a driver; False for a good not held here."""
        if good not in self.levels:
            return False
        self.levels[good] = max(0.0, self.levels[good] + delta)
        return True

    def _arrival(self) -> None:
        """A harvest on a farm (one crop), a delivery elsewhere (every good running low)."""
        rng = self.rng
        if self.farm:
            good = rng.choice(sorted(self.levels))
            self.levels[good] += self.initial[good] * rng.uniform(0.2, 0.5)
            return
        for good, level in self.levels.items():
            if level < 0.6 * self.initial[good]:
                self.levels[good] = min(
                    level + self.initial[good] * rng.uniform(0.4, 0.9), 1.5 * self.initial[good]
                )


def make_model(spec: DeviceSpec, seed: int) -> Model:
    """The model for a device, seeded from (seed, slug)."""
    rng = device_rng(seed, spec.slug)
    if spec.kind == "pump":
        return PumpModel(rng, spec.lon)
    if spec.kind == "soil":
        return SoilModel(rng, spec.lon)
    if spec.kind == "cold_room":
        return ColdRoomModel(rng, spec.lon)
    return StockModel(rng, spec.lon, dict(spec.stock), spec.site_kind)
