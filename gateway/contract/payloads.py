"""MQTT contract v1: the payloads, their encoding and their validation (stdlib only).

Everything a message body on the wire must satisfy lives here; devices import it without SQLAlchemy or Flask.
`docs/mqtt.md` is the prose version of the same contract.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from gateway.contract.reasons import ProtocolError
from gateway.contract.topics import Topic, is_slug

VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 16 * 1024
MAX_SEQ: Final = 2**53 - 1  # exact in JSON numbers everywhere (JavaScript included)
MAX_CLOCK_SKEW: Final = timedelta(minutes=10)
EARLIEST_TS: Final = datetime(2020, 1, 1, tzinfo=UTC)  # before this the device clock is unset (RTC reset)

DEVICE_STATES: Final = ("online", "offline")
DEVICE_KINDS: Final = ("pump", "soil", "cold_room", "stock")

# Known metrics: name (unit in the suffix) -> (kind, minimum, maximum). Adding one is a contract change.
METRICS: Final[Mapping[str, tuple[str, float, float]]] = {
    "pressure_kpa": ("number", 0.0, 2000.0),
    "flow_lpm": ("number", 0.0, 10000.0),
    "motor_current_a": ("number", 0.0, 500.0),
    "running": ("bool", 0, 1),
    "tank_level_pct": ("number", 0.0, 100.0),
    "soil_moisture_pct": ("number", 0.0, 100.0),
    "temperature_c": ("number", -60.0, 90.0),
    "humidity_pct": ("number", 0.0, 100.0),
    "door_open": ("bool", 0, 1),
    "battery_v": ("number", 0.0, 60.0),
    "rssi_dbm": ("number", -150.0, 0.0),
}
MAX_STOCK_QUANTITY: Final = 1e9
MAX_FAULT_CODES: Final = 16


@dataclass(frozen=True)
class Telemetry:
    """Periodic measurements of one device."""

    seq: int
    ts: datetime
    metrics: Mapping[str, float | bool]
    faults: tuple[str, ...] = ()
    kind: Literal["telemetry"] = field(default="telemetry", init=False)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"v": VERSION, "seq": self.seq, "ts": format_ts(self.ts)}
        body["metrics"] = dict(self.metrics)
        if self.faults:
            body["faults"] = list(self.faults)
        return body


@dataclass(frozen=True)
class StockReport:
    """Absolute stock levels per good at the device's site (idempotent: replays change nothing)."""

    seq: int
    ts: datetime
    levels: Mapping[str, float]
    kind: Literal["stock"] = field(default="stock", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "seq": self.seq, "ts": format_ts(self.ts), "levels": dict(self.levels)}


@dataclass(frozen=True)
class StateMessage:
    """Retained birth (`online`) or will/clean stop (`offline`), paired by `session` (Sparkplug bdSeq)."""

    state: Literal["online", "offline"]
    session: int
    ts: datetime | None = None
    clean: bool = False
    kind: Literal["state"] = field(default="state", init=False)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"v": VERSION, "state": self.state, "session": self.session}
        if self.ts is not None:
            body["ts"] = format_ts(self.ts)
        if self.clean:
            body["clean"] = True
        return body


Body = Telemetry | StockReport | StateMessage


@dataclass(frozen=True)
class Message:
    """A validated upstream message."""

    topic: Topic
    body: Body


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a Z suffix."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(body: Body) -> bytes:
    """Serialise a payload; raises ValueError if it would be rejected by `parse_payload`."""
    raw = json.dumps(body.to_dict(), separators=(",", ":"), allow_nan=False).encode()
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    return raw


def parse_message(topic: str, payload: bytes, *, now: datetime | None = None) -> Message:
    """Validate one upstream message (topic and payload) or raise ProtocolError."""
    parsed_topic = Topic.parse(topic)
    return Message(parsed_topic, parse_payload(parsed_topic, payload, now=now))


def parse_payload(topic: Topic, payload: bytes, *, now: datetime | None = None) -> Body:
    """Validate a payload for the given topic kind or raise ProtocolError."""
    obj = _decode(payload)
    if "v" not in obj:
        raise ProtocolError("field_missing", "v (schema version)")
    if type(obj["v"]) is not int or obj["v"] != VERSION:
        raise ProtocolError("version_unsupported", f"v={obj['v']!r}, this gateway speaks v{VERSION}")
    if "device" in obj and obj["device"] != topic.device:
        raise ProtocolError("device_mismatch", f"payload names {obj['device']!r}, topic {topic.device!r}")
    now = now or datetime.now(UTC)
    if topic.kind == "state":
        _only(obj, {"v", "device", "state", "session", "ts", "clean"})
        state = _require(obj, "state", str)
        if state not in DEVICE_STATES:
            raise ProtocolError("value_out_of_range", f"state {state!r} not one of {DEVICE_STATES}")
        clean = obj.get("clean", False)
        if type(clean) is not bool:
            raise ProtocolError("field_type", "clean must be a boolean")
        ts = _ts(obj["ts"], now) if "ts" in obj else None
        return StateMessage(state, _counter(obj, "session"), ts, clean)
    seq = _counter(obj, "seq")
    ts = _ts(_require(obj, "ts", str), now)
    if topic.kind == "telemetry":
        _only(obj, {"v", "device", "seq", "ts", "metrics", "faults"})
        return Telemetry(seq, ts, _metrics(_require(obj, "metrics", dict)), _faults(obj.get("faults", [])))
    _only(obj, {"v", "device", "seq", "ts", "levels"})
    return StockReport(seq, ts, _levels(_require(obj, "levels", dict)))


def _reject_constant(name: str) -> float:
    raise ProtocolError("value_not_finite", f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ProtocolError("duplicate_key", "a JSON object repeats a key")
    return obj


def _decode(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("payload_too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("not_utf8", str(exc)) from exc
    try:
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError besides JSONDecodeError: an integer beyond Python's 4,300-digit conversion limit.
        raise ProtocolError("not_json", str(exc)[:200]) from exc
    if not isinstance(obj, dict):
        raise ProtocolError("not_object", f"top level is {type(obj).__name__}")
    return obj


def _only(obj: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ProtocolError("field_unknown", ", ".join(extra)[:200])


def _require(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in obj:
        raise ProtocolError("field_missing", name)
    value = obj[name]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ProtocolError("field_type", f"{name} must be {kind.__name__}")
    return value


def _counter(obj: Mapping[str, Any], name: str) -> int:
    value = _require(obj, name, int)
    if not 0 <= value <= MAX_SEQ:
        raise ProtocolError("value_out_of_range", f"{name}={value} outside 0..2^53-1")
    return value


def _ts(text: object, now: datetime) -> datetime:
    if not isinstance(text, str):
        raise ProtocolError("field_type", "ts must be an RFC 3339 string")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ProtocolError("ts_invalid", f"{text[:40]!r} is not RFC 3339") from exc
    if ts.tzinfo is None:
        raise ProtocolError("ts_invalid", "ts needs a timezone (use Z for UTC)")
    try:
        ts = ts.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 with an offset that leaves the datetime range
        raise ProtocolError("ts_invalid", f"{text[:40]!r} is outside the representable range") from exc
    if ts > now + MAX_CLOCK_SKEW:
        raise ProtocolError("ts_in_future", f"{format_ts(ts)} is ahead of the gateway clock")
    if ts < EARLIEST_TS:
        raise ProtocolError("ts_too_old", f"{format_ts(ts)}: device clock not set")
    return ts


def _number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("field_type", f"{name} must be a number")
    if isinstance(value, float) and not math.isfinite(value):  # an int may exceed any float: no isfinite
        raise ProtocolError("value_not_finite", name)
    if not low <= value <= high:
        raise ProtocolError("value_out_of_range", f"{name}={value} outside {low}..{high}")
    return float(value)


def _metrics(raw: Mapping[str, Any]) -> dict[str, float | bool]:
    if not raw:
        raise ProtocolError("field_missing", "metrics is empty")
    metrics: dict[str, float | bool] = {}
    for name, value in raw.items():
        if name not in METRICS:
            raise ProtocolError("unknown_metric", name[:60])
        kind, low, high = METRICS[name]
        if kind == "bool":
            if type(value) is not bool:
                raise ProtocolError("field_type", f"{name} must be a boolean")
            metrics[name] = value
        else:
            metrics[name] = _number(name, value, low, high)
    return metrics


def _faults(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_FAULT_CODES:
        raise ProtocolError("field_type", f"faults must be a list of at most {MAX_FAULT_CODES} codes")
    for code in raw:
        if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", code):
            raise ProtocolError("field_type", f"fault code {str(code)[:40]!r} is not a short code")
    return tuple(raw)


def _levels(raw: Mapping[str, Any]) -> dict[str, float]:
    if not raw:
        raise ProtocolError("field_missing", "levels is empty")
    levels: dict[str, float] = {}
    for good, value in raw.items():
        if not is_slug(good):
            raise ProtocolError("slug_invalid", f"good {good[:60]!r}")
        levels[good] = _number(good, value, 0.0, MAX_STOCK_QUANTITY)
    return levels
