"""The device simulator: the region's devices, their models and a schedule, published through a Fleet.

Time model: a simulated clock starts at `sim_start` (default: now) and runs `speed` times faster than real
time. It drives the physics (hour of day, tank levels, drying soil) and the schedule: a device with
`interval_s` 60 publishes every 60 simulated seconds, i.e. every 60/speed real seconds. The `ts` of every
message is the real wall clock at publishing, like a real device's RTC, so it can never be ahead of the
gateway's clock (protocol.MAX_CLOCK_SKEW) whatever the speed or duration; at speed 60 a simulated day
fits into 24 real minutes of readings. Readings depend only on (seed, device slug, sim_start): runs with
the same `--seed` and `--start` produce the same values.

A scenario (devices/scenario.py, devices/faults.py) adds events to the same simulated timeline: faults
change readings, and faults of power and link act on the Fleet when their time comes.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from devices.client import now_utc
from devices.control import Command, ControlInbox
from devices.faults import FaultEngine, Transition, check_scenario
from devices.fleet import Fleet
from devices.models import Model, device_rng, make_model
from devices.regionfile import DeviceSpec
from devices.scenario import Scenario
from gateway.contract.payloads import Body, StockReport, Telemetry

log = logging.getLogger(__name__)
CONNECT_WAIT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 5.0
MAX_BACKLOG: Final = 5_000  # unacknowledged messages before the schedule waits for the broker


class DeviceError(ConnectionError):
    """The simulated devices could not reach the broker."""


def make_body(kind: str, seq: int, ts: datetime, values: dict[str, float | bool]) -> Body:
    """A telemetry or stock payload from a model's reading."""
    if kind == "stock":
        return StockReport(seq, ts, {good: float(qty) for good, qty in values.items()})
    return Telemetry(seq, ts, values)


class Reading(NamedTuple):
    """One device's reading at a simulated time; `values` is None while the device has no power."""

    index: int  # type: ignore[assignment]  # the device's index; shadows tuple.index, never called here
    at: datetime
    values: dict[str, float | bool] | None


class Schedule:
    """Every device's readings in simulated-time order: first one at start, then every `interval_s`.

    With a scenario, its events are interleaved: pop() returns a Transition when an event comes first
    (an event and a reading at the same time: the event first, so the reading shows it).
    """

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        seed: int,
        sim_start: datetime,
        scenario: Scenario | None = None,
    ) -> None:
        """Build the models; each device gets a seeded phase so readings spread over the interval."""
        self.sim_start = sim_start
        self.models: list[Model] = [make_model(spec, seed) for spec in specs]
        self.faults = FaultEngine(scenario, specs, self.models, seed, sim_start) if scenario else None
        self._intervals = [spec.interval_s for spec in specs]
        self._last = [0.0] * len(specs)
        self._phase = [device_rng(seed, f"{spec.slug}/phase").uniform(0.01, 1.0) for spec in specs]
        self._heap = [(0.0, i) for i in range(len(specs))]

    def peek(self) -> float:
        """Simulated seconds since start of the next reading or event (inf when there is none)."""
        reading = self._heap[0][0] if self._heap else math.inf
        return min(reading, self.faults.peek()) if self.faults else reading

    def pop(self) -> Reading | Transition:
        """The next event, or the next reading: the device's model advanced to its reading time."""
        if self.faults is not None and self.faults.peek() <= (self._heap[0][0] if self._heap else math.inf):
            return self.faults.pop()
        offset, i = heapq.heappop(self._heap)
        at = self.sim_start + timedelta(seconds=offset)
        values: dict[str, float | bool] | None = self.models[i].step(at, offset - self._last[i])
        if self.faults is not None:
            values = self.faults.apply(i, offset, values)  # type: ignore[arg-type]
        self._last[i] = offset
        step = self._intervals[i] * (self._phase[i] if offset == 0.0 else 1.0)
        heapq.heappush(self._heap, (offset + step, i))
        return Reading(i, at, values)


@dataclass
class RunStats:
    """What a run did, for the final log line and for tests."""

    published: int = 0
    dropped: int = 0
    skipped: int = 0  # readings with nothing to report (a stock device on a site without stock)
    silent: int = 0  # readings not taken: the device had no power (scenario)
    events: int = 0  # scenario events that took effect
    received: int = 0  # control messages that moved stock (a driver's pickup or delivery)
    max_lag_s: float = 0.0
    lag_s: float = 0.0  # how late the latest reading was taken, for progress and benchmarks
    elapsed_s: float = 0.0


class Simulator:
    """Runs a Schedule in (accelerated) real time and publishes every reading through a Fleet."""

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        fleet: Fleet,
        *,
        seed: int = 1,
        speed: float = 1.0,
        sim_start: datetime | None = None,
        log_every_s: float = 10.0,
        scenario: Scenario | None = None,
        control: ControlInbox | None = None,
    ) -> None:
        """Check the arguments; nothing connects until run()."""
        if not speed > 0 or not math.isfinite(speed):
            raise ValueError(f"--speed must be a positive number, got {speed}")
        if len(fleet.channels) != len(specs):
            raise ValueError("the fleet must have one channel per device")
        self.specs = list(specs)
        self.fleet = fleet
        self.seed = seed
        self.speed = speed
        self.sim_start = sim_start
        self.log_every_s = log_every_s
        self.scenario = scenario
        self.control = control
        self._index = {spec.slug: i for i, spec in enumerate(self.specs)}
        if scenario is not None:  # a bad event fails here, before anything connects
            check_scenario(scenario, self.specs, sim_start, warn=False)
        self.stats = RunStats()

    def run(self, stop: threading.Event, duration: float | None = None) -> RunStats:
        """Publish until `stop` is set or `duration` real seconds passed, then stop every device cleanly."""
        self.fleet.start()
        if self.control is not None:
            self.control.start()
        connected = self._wait_connected(stop)
        if connected == 0 and self.specs and not stop.is_set():
            self.fleet.stop(1.0)
            raise DeviceError(
                f"no device could connect to the broker: {self.fleet.last_error() or 'timeout'}"
            )
        if connected < len(self.specs):
            log.warning("%s of %s devices connected; the others keep retrying", connected, len(self.specs))
        schedule = Schedule(self.specs, self.seed, self.sim_start or now_utc(), self.scenario)
        log.info("simulating %s devices at speed %s from %s", len(self.specs), self.speed, schedule.sim_start)
        try:
            self._loop(schedule, stop, duration)
        finally:
            if self.control is not None:
                self.control.stop()
            log.info("stopping: publishing offline for %s devices", len(self.specs))
            self.fleet.stop(STOP_TIMEOUT_S)
        stats = self.stats
        log.info(
            "published %s messages in %.1f s (%s dropped, max lag %.1f s, %s scenario events, "
            "%s stock movements)",
            stats.published,
            stats.elapsed_s,
            stats.dropped,
            stats.max_lag_s,
            stats.events,
            stats.received,
        )
        return stats

    def _loop(self, schedule: Schedule, stop: threading.Event, duration: float | None) -> None:
        stats, channels = self.stats, self.fleet.channels
        started = time.monotonic()
        end = started + duration if duration is not None else math.inf
        next_log, last_count = started + self.log_every_s, 0
        while not stop.is_set():
            now = time.monotonic()
            stats.elapsed_s = now - started
            if now >= end:
                return
            if self.control is not None:
                for command in self.control.pending():
                    self._command(schedule, command, (now - started) * self.speed)
            if now >= next_log:
                self._progress(schedule, now - started, stats.published - last_count, now - next_log)
                next_log, last_count = now + self.log_every_s, stats.published
            due = started + schedule.peek() / self.speed
            if due > now:
                stop.wait(min(due, end, next_log) - now)
                continue
            if stats.published % 64 == 0:
                self._throttle(stop, end)
            stats.lag_s = now - due
            stats.max_lag_s = max(stats.max_lag_s, stats.lag_s)
            item = schedule.pop()
            if isinstance(item, Transition):
                self._apply(item)
                continue
            index, _at, values = item
            if values is None:
                stats.silent += 1
                continue
            if not values:
                stats.skipped += 1
                continue
            channel = channels[index]
            body = make_body(schedule.models[index].kind, channel.next_seq(), now_utc(), values)
            if channel.publish(body):
                stats.published += 1
            else:
                stats.dropped += 1

    def _command(self, schedule: Schedule, command: Command, offset: float) -> None:
        """Apply a control message at simulated `offset` (now, on the simulated clock)."""
        index = self._index.get(command.device)
        if index is None:
            log.warning("control: %s is not simulated here; ignored", command.device)
            return
        if command.action == "repair":
            if schedule.faults is None:
                log.warning("control: repair of %s ignored: no scenario, so no faults", command.device)
                return
            schedule.faults.repair_now(index, max(offset, 0.0))
            return
        model = schedule.models[index]
        receive = getattr(model, "receive", None)
        if receive is None:
            log.warning("control: %s is not a stock device; goods ignored", command.device)
            return
        for good, quantity in command.goods.items():
            if not receive(good, quantity):
                log.info("control: %s holds no %s; its stock report leaves it out", command.device, good)
        self.stats.received += 1

    def _apply(self, transition: Transition) -> None:
        """Carry out a scenario event's effect on the device's connection."""
        self.stats.events += 1
        spec = self.specs[transition.index]
        log.info(
            "scenario (%s) at %s: %s %s%s",
            transition.cause,
            transition.at.isoformat(timespec="seconds"),
            spec.slug,
            transition.event,
            f" -> {', '.join(transition.actions)}" if transition.actions else "",
        )
        fleet, index = self.fleet, transition.index
        for action in transition.actions:
            if action.startswith("power_off_"):
                fleet.power_off(index, drop=action == "power_off_drop")
            elif action == "power_on":
                fleet.power_on(index)
            elif action == "link_down":
                fleet.link_down(index)
            else:
                fleet.link_up(index)

    def _wait_connected(self, stop: threading.Event) -> int:
        """Give every device a chance to connect (bounded, interruptible) before the clock starts."""
        deadline = time.monotonic() + CONNECT_WAIT_S
        while self.fleet.connected() < len(self.specs) and time.monotonic() < deadline:
            if stop.wait(0.05):
                break
        return self.fleet.connected()

    def _throttle(self, stop: threading.Event, end: float) -> None:
        """Let the broker catch up rather than queue without bound when the speed is beyond its reach."""
        while self.fleet.backlog() > MAX_BACKLOG and not stop.is_set() and time.monotonic() < end:
            stop.wait(0.02)

    def _progress(self, schedule: Schedule, elapsed: float, recent: int, late: float) -> None:
        window = self.log_every_s + max(0.0, late)
        sim_now = schedule.sim_start + timedelta(seconds=min(schedule.peek(), elapsed * self.speed))
        log.info(
            "%s messages published (%.0f/s), %s/%s devices connected, %s awaiting ack, %s spooled, "
            "simulated time %s",
            self.stats.published,
            recent / window,
            self.fleet.connected(),
            len(self.specs),
            self.fleet.backlog(),
            self.fleet.spooled(),
            sim_now.isoformat(timespec="minutes"),
        )
