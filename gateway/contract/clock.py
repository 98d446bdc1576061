"""The work clock: the time on which people's hours are planned and counted.

In production it is the real UTC time. A simulation (the demo, the region week) runs a day in minutes; its
people live on the simulated clock, so a route "tomorrow 08:00" or a pledge "per week" must mean simulated
time in every process alike. The process that starts the others sets RHIZOME_WORK_CLOCK to
"<simulated start, ISO 8601>@<real start, Unix seconds>x<speed>", and every process reads the same clock.
Stdlib only: devices, gateway and planners share it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final

ENV: Final = "RHIZOME_WORK_CLOCK"


@dataclass(frozen=True)
class WorkClock:
    """Simulated time = `start` + (real time - `real_start`) x `speed`."""

    start: datetime
    real_start: float
    speed: float

    def now(self) -> datetime:
        """The clock's current time."""
        return self.start + timedelta(seconds=(time.time() - self.real_start) * self.speed)

    def encode(self) -> str:
        """The RHIZOME_WORK_CLOCK value for child processes."""
        return f"{self.start.isoformat()}@{self.real_start:.3f}x{self.speed:g}"


@lru_cache(maxsize=4)
def parse(text: str) -> WorkClock:
    """A RHIZOME_WORK_CLOCK value; ValueError naming the expected form."""
    try:
        start_text, rest = text.split("@", 1)
        real_text, speed_text = rest.split("x", 1)
        start = datetime.fromisoformat(start_text)
        clock = WorkClock(
            start if start.tzinfo else start.replace(tzinfo=UTC), float(real_text), float(speed_text)
        )
    except ValueError as exc:
        raise ValueError(f"{ENV}={text!r}: expected <ISO start>@<unix seconds>x<speed>") from exc
    if not clock.speed > 0:
        raise ValueError(f"{ENV}={text!r}: the speed must be > 0")
    return clock


def simulated(start: datetime, speed: float) -> WorkClock:
    """A clock starting now at `start`, `speed` simulated seconds per real second."""
    return WorkClock(start, time.time(), speed)


def now() -> datetime:
    """The work clock's current time: real UTC unless RHIZOME_WORK_CLOCK is set."""
    text = os.environ.get(ENV, "").strip()
    return parse(text).now() if text else datetime.now(UTC)


def simulating() -> bool:
    """Whether this process runs on a simulated work clock."""
    return bool(os.environ.get(ENV, "").strip())


def at_or_now(at: datetime | None) -> datetime:
    """The work-clock time of an event stamped `at` on the real clock: `at` itself in production (or now
    when not given), the simulated now in a simulation (events are recorded as they happen)."""
    if simulating():
        return now()
    return at or datetime.now(UTC)


def speed() -> float:
    """Simulated seconds per real second (1 in production)."""
    text = os.environ.get(ENV, "").strip()
    return parse(text).speed if text else 1.0
