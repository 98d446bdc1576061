"""The vocabulary of simulation scenarios: fault names and durations (stdlib only).

devices/scenario.py reads scenario files with it; the week benchmark measures against the same names.
"""

from __future__ import annotations

import re
from typing import Final

FAULTS: Final = (
    "pump_failure",
    "dry_run",
    "overcurrent",
    "cold_room_failure",
    "sensor_drift",
    "stuck_sensor",
    "power_loss",
    "link_outage",
)
_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNIT_S: Final = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string like '90s', '15m', '6h', '2d' or '1d6h30m'."""
    if isinstance(value, bool):
        raise ValueError(f"duration {value!r} is not a number or a string like '6h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value and _DURATION_RE.sub("", value.strip()) == "":
        seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_RE.findall(value))
    else:
        raise ValueError(f"duration {value!r} is not a number or a string like '6h', '15m' or '1d6h'")
    if not 0 <= seconds < 10 * 365 * 86400:
        raise ValueError(f"duration {value!r} out of range")
    return seconds
