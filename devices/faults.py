"""Plays a Scenario against simulated devices: which faults are active, and what they do to the readings.

Pure (no network, no clock): the Schedule asks `peek()` and `pop()` for the next event in simulated time
and passes every reading through `apply()`. Physical faults change the model itself (a failed pump no
longer fills its tank, a cold room without cooling warms up), so a repair leads back to normal readings
through the physics, not by a switch. Faults of power and link come back as actions for the Fleet
(power off with the link dropped or hanging, power on = reboot, link down, link up). Random faults and the
noise of faulty readings draw from a generator per device seeded from (seed, slug), so a scenario plays
the same way every time and devices without faults read exactly as they would without a scenario.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from devices.models import ColdRoomModel, Model, PumpModel, device_rng
from devices.regionfile import DeviceSpec
from devices.scenario import (
    DEFAULT_METRIC,
    DRIFT_PER_HOUR,
    LINK_MODES,
    PUMP_FAULTS,
    Event,
    RandomFaults,
    Scenario,
    check_event,
)
from gateway.contract.payloads import METRICS

log = logging.getLogger(__name__)
MIN_REPAIR_S = 60.0


class Transition(NamedTuple):
    """A scenario event that took effect: what happened to which device, and what the Fleet must do."""

    index: int  # type: ignore[assignment]  # the device's index; shadows tuple.index, never called here
    at: datetime
    event: str  # a fault name, or "repair"
    actions: tuple[str, ...]  # power_off_drop, power_off_hang, power_on, link_down, link_up
    cause: str  # "script", "timer" (the end of a scripted 'for') or "random"


@dataclass
class ActiveFault:
    """A fault in effect on one device."""

    name: str
    since_s: float
    metric: str | None = None
    per_hour: float = 0.0
    link: str = "drop"
    stuck: Any = None  # the value a stuck sensor keeps reporting, taken from its first faulty reading


class FaultEngine:
    """The active faults of every device, advanced event by event in simulated time."""

    def __init__(
        self,
        scenario: Scenario,
        specs: Sequence[DeviceSpec],
        models: Sequence[Model],
        seed: int,
        sim_start: datetime,
    ) -> None:
        """Check the events against the devices and queue them, with the first random fault of each device."""
        self.specs, self.models, self.seed, self.sim_start = specs, models, seed, sim_start
        self.random = scenario.random
        self.active: list[dict[str, ActiveFault]] = [{} for _ in specs]
        self._rngs: dict[int, random.Random] = {}
        self._heap: list[tuple[float, int, int, str, Any]] = []
        self._order = itertools.count()
        index = {spec.slug: i for i, spec in enumerate(specs)}
        for event in check_scenario(scenario, specs, sim_start):
            self._push(event.offset(sim_start), index[event.device], "script", event)
        for i, spec in enumerate(specs):
            config = scenario.random.get(spec.kind)
            if config is not None:
                self._push(self._rng(i).expovariate(1 / config.mtbf_s), i, "random", None)

    def peek(self) -> float:
        """Simulated seconds since the start of the next event (inf when none is left)."""
        return self._heap[0][0] if self._heap else math.inf

    def pop(self) -> Transition:
        """Apply the next event; the Transition says what changed."""
        offset, _, i, op, payload = heapq.heappop(self._heap)
        before = self._connection(i)
        if op == "script":
            event: Event = payload
            if event.name == "repair":
                self._repair(i, event.fault)
            else:
                self._start(i, event.name, offset, event.metric, event.per_hour, event.link)
                if event.duration_s is not None:
                    self._push(offset + event.duration_s, i, "timer", event.name)
            name, cause = event.name, "script"
        elif op == "timer":
            self._repair(i, payload)
            name, cause = "repair", "timer"
        elif op == "command":  # a crew's repair, sent over the simulation control topic
            self._repair(i, None)
            name, cause = "repair", "crew"
        elif op == "random":
            name, cause = self._random_fault(i, offset), "random"
        else:  # random_repair
            self._repair(i, payload)
            config = self.random[self.specs[i].kind]
            self._push(offset + self._rng(i).expovariate(1 / config.mtbf_s), i, "random", None)
            name, cause = "repair", "random"
        self._sync_model(i)
        actions = _actions(before, self._connection(i))
        return Transition(i, self.sim_start + timedelta(seconds=offset), name, actions, cause)

    def repair_now(self, index: int, offset: float) -> None:
        """Repair every fault of a device at simulated `offset` (a crew fixed it); applied by the next pop."""
        self._push(offset, index, "command", None)

    def apply(
        self, index: int, offset: float, values: dict[str, float | bool]
    ) -> dict[str, float | bool] | None:
        """The reading as the faulty device reports it; None while it has no power."""
        active = self.active[index]
        if not active:
            return values
        if "power_loss" in active:
            return None
        values = dict(values)
        model = self.models[index]
        if isinstance(model, PumpModel) and values.get("running") is True:
            self._pump_reading(index, model, values)
        for fault in active.values():
            metric = fault.metric
            if metric is None or metric not in values:
                continue
            if fault.name == "stuck_sensor":
                if fault.stuck is None:
                    fault.stuck = values[metric]
                values[metric] = fault.stuck
            elif fault.name == "sensor_drift":
                _, low, high = METRICS[metric]
                drifted = float(values[metric]) + fault.per_hour * (offset - fault.since_s) / 3600
                values[metric] = round(min(high, max(low, drifted)), 2)
        return values

    def _pump_reading(self, index: int, model: PumpModel, values: dict[str, float | bool]) -> None:
        """A running pump with a mechanical fault: what its flow, pressure and current sensors show."""
        active, u = self.active[index], self._rng(index).uniform
        if "pump_failure" in active:  # the motor turns, nothing is pumped: no flow, pressure collapses
            values.update(flow_lpm=round(u(0.0, 0.8), 2), pressure_kpa=round(u(3.0, 25.0), 1))
            values["motor_current_a"] = round(model.current * u(0.55, 0.7), 2)
        elif "dry_run" in active:  # no water at the intake: no load, no flow, no pressure
            values.update(flow_lpm=round(u(0.0, 0.3), 2), pressure_kpa=round(u(0.0, 8.0), 1))
            values["motor_current_a"] = round(model.current * u(0.3, 0.45), 2)
        elif "overcurrent" in active:  # a seizing bearing: the motor labours, delivers less
            values["motor_current_a"] = round(min(500.0, model.current * u(1.8, 2.4)), 2)
            values["flow_lpm"] = round(float(values["flow_lpm"]) * u(0.4, 0.6), 1)
            values["pressure_kpa"] = round(float(values["pressure_kpa"]) * u(0.75, 0.9), 1)

    def _start(
        self, i: int, name: str, offset: float, metric: str | None, per_hour: float | None, link: str
    ) -> None:
        active = self.active[i]
        if name in PUMP_FAULTS:
            for other in PUMP_FAULTS:
                active.pop(other, None)
        if name in ("sensor_drift", "stuck_sensor"):
            metric = metric or DEFAULT_METRIC[self.specs[i].kind]
            per_hour = per_hour if per_hour is not None else DRIFT_PER_HOUR.get(metric, 0.0)
        active[name] = ActiveFault(name, offset, metric, per_hour or 0.0, link)

    def _repair(self, i: int, fault: str | None) -> None:
        if fault is None:
            self.active[i].clear()
        else:
            self.active[i].pop(fault, None)

    def _random_fault(self, i: int, offset: float) -> str:
        config: RandomFaults = self.random[self.specs[i].kind]
        rng = self._rng(i)
        name = rng.choice(config.faults)
        link = rng.choice(LINK_MODES)
        self._start(i, name, offset, None, None, link)
        repair_after = max(MIN_REPAIR_S, rng.expovariate(1 / config.mttr_s))
        self._push(offset + repair_after, i, "random_repair", name)
        return name

    def _sync_model(self, i: int) -> None:
        """Let the physics know: a pump without power stops, a failed pump fills nothing, a room warms."""
        active, model = self.active[i], self.models[i]
        if isinstance(model, PumpModel):
            model.powered = "power_loss" not in active
            failed = "pump_failure" in active or "dry_run" in active
            model.fill_factor = 0.0 if failed else 0.5 if "overcurrent" in active else 1.0
        elif isinstance(model, ColdRoomModel):
            model.cooling = "power_loss" not in active and "cold_room_failure" not in active

    def _connection(self, i: int) -> tuple[bool, bool, str]:
        active = self.active[i]
        power = active.get("power_loss")
        return power is None, "link_outage" not in active, power.link if power else "drop"

    def _rng(self, i: int) -> random.Random:
        if i not in self._rngs:
            self._rngs[i] = device_rng(self.seed, f"{self.specs[i].slug}/faults")
        return self._rngs[i]

    def _push(self, offset: float, i: int, op: str, payload: Any) -> None:
        heapq.heappush(self._heap, (offset, next(self._order), i, op, payload))


def check_scenario(
    scenario: Scenario, specs: Sequence[DeviceSpec], sim_start: datetime | None = None, *, warn: bool = True
) -> list[Event]:
    """The events for these devices, each checked against its device's kind (ValueError if it does not fit).

    Events of devices that are not simulated (`--limit`, `--community`) are left out with a warning.
    """
    kinds = {spec.slug: spec.kind for spec in specs}
    absent = sorted({event.device for event in scenario.events if event.device not in kinds})
    if absent and warn:
        log.warning("scenario events of devices not simulated here are ignored: %s", ", ".join(absent))
    events = [event for event in scenario.events if event.device in kinds]
    for event in events:
        check_event(event, kinds[event.device])
        if sim_start is not None:
            event.offset(sim_start)
    return events


def _actions(before: tuple[bool, bool, str], after: tuple[bool, bool, str]) -> tuple[str, ...]:
    """What the Fleet must do for a change of (powered, link up, link mode of the power loss)."""
    actions = []
    if before[0] and not after[0]:
        actions.append(f"power_off_{after[2]}")
    elif after[0] and not before[0]:
        actions.append("power_on")
    if before[1] and not after[1]:
        actions.append("link_down")
    elif after[1] and not before[1]:
        actions.append("link_up")
    return tuple(actions)
