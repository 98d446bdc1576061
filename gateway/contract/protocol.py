"""MQTT contract v1: topics, payloads and their validation (stdlib only).

Devices import this module without SQLAlchemy or Flask, so it must stay stdlib-only. Everything a message
on the wire must satisfy lives here; `docs/mqtt.md` is the prose version of the same contract.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

VERSION: Final = 1
ROOT: Final = "rhizome/v1"
QOS: Final = 1
MAX_PAYLOAD_BYTES: Final = 16 * 1024
MAX_SEQ: Final = 2**53 - 1  # exact in JSON numbers everywhere (JavaScript included)
MAX_CLOCK_SKEW: Final = timedelta(minutes=10)
EARLIEST_TS: Final = datetime(2020, 1, 1, tzinfo=UTC)  # before this the device clock is unset (RTC reset)

SLUG_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
UPSTREAM_KINDS: Final = ("telemetry", "stock", "state")
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

Reason = Literal[
    "topic_invalid",
    "payload_too_large",
    "not_utf8",
    "not_json",
    "not_object",
    "duplicate_key",
    "version_unsupported",
    "field_missing",
    "field_unknown",
    "field_type",
    "value_not_finite",
    "value_out_of_range",
    "unknown_metric",
    "slug_invalid",
    "ts_invalid",
    "ts_in_future",
    "ts_too_old",
    "device_mismatch",
]


class ProtocolError(ValueError):
    """A message that breaks the contract; `reason` is a stable code, `detail` says what exactly."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


def is_slug(value: object) -> bool:
    """True for identifiers usable as one topic level: lowercase ASCII, digits and inner dashes."""
    return isinstance(value, str) and SLUG_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Topic:
    """One upstream topic: rhizome/v1/<community>/<site>/<device>/<kind>."""

    community: str
    site: str
    device: str
    kind: str

    def __post_init__(self) -> None:
        for name in ("community", "site", "device"):
            if not is_slug(getattr(self, name)):
                raise ProtocolError("topic_invalid", f"{name} {getattr(self, name)!r} is not a slug")
        if self.kind not in UPSTREAM_KINDS:
            raise ProtocolError("topic_invalid", f"kind {self.kind!r} not one of {UPSTREAM_KINDS}")

    @classmethod
    def parse(cls, topic: str) -> Topic:
        """Parse a topic string or raise ProtocolError('topic_invalid')."""
        return _parse_topic(topic)

    def __str__(self) -> str:
        return f"{ROOT}/{self.community}/{self.site}/{self.device}/{self.kind}"

    def sibling(self, kind: str) -> Topic:
        """The same device's topic of another kind."""
        return Topic(self.community, self.site, self.device, kind)


@dataclass(frozen=True)
class MqttTarget:
    """Where and how to reach the broker: mqtt://user:pass@host:port, or mqtts:// for TLS."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    protocol: str  # "5" or "3.1.1"
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str, protocol: str = "5", ca_file: str | None = None) -> MqttTarget:
        """Parse `mqtt://user:pass@host:port` (mqtts:// for TLS); raise ValueError on anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"MQTT URL {url!r} has no host")
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"MQTT protocol must be '5' or '3.1.1', got {protocol!r}")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            protocol=protocol,
            ca_file=ca_file,
        )


@functools.lru_cache(maxsize=65536)  # a device uses the same few topics all its life
def _parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != ROOT:
        raise ProtocolError("topic_invalid", f"expected {ROOT}/<community>/<site>/<device>/<kind>")
    return Topic(parts[2], parts[3], parts[4], parts[5])


# Subscriptions and downstream topics.
UPSTREAM_FILTER: Final = f"{ROOT}/+/+/+/+"
INTERNAL_EVENTS: Final = f"{ROOT}/internal/events"
# Simulation control: what happens to a simulated device in the world (a crew's repair, goods unloaded).
# Outside the upstream filter, so the gateway never sees it; `rhizome devices simulate --control` reads it.
SIM_CONTROL_FILTER: Final = f"{ROOT}/sim/+"


def shared_filter(group: str, topic_filter: str = UPSTREAM_FILTER) -> str:
    """An MQTT v5 shared subscription: the broker spreads messages over the group's members."""
    if not is_slug(group):
        raise ValueError(f"group {group!r} is not a slug")
    return f"$share/{group}/{topic_filter}"


def community_alerts_topic(community: str) -> str:
    """Alerts everyone in a community may see (assembly screens, crew phones)."""
    return f"{ROOT}/alerts/{community}"


def member_alerts_topic(member_id: int) -> str:
    """Alerts addressed to one crew member."""
    return f"{ROOT}/members/{member_id}/alerts"


def member_routes_topic(member_id: int) -> str:
    """Route notices addressed to one driver."""
    return f"{ROOT}/members/{member_id}/routes"


def sim_control_topic(device: str) -> str:
    """Simulation control of one simulated device: {"action": "repair"} or {"action": "receive", ...}."""
    return f"{ROOT}/sim/{device}"


def command_topic(community: str, site: str, device: str) -> str:
    """Commands addressed to one device (the only topic a device subscribes to)."""
    return f"{ROOT}/{community}/{site}/{device}/command"


def is_command_topic(topic: str) -> bool:
    """A device's command topic: downstream traffic that the gateway's upstream wildcard also matches."""
    parts = topic.split("/")
    return len(parts) == 6 and parts[5] == "command" and f"{parts[0]}/{parts[1]}" == ROOT


# Every downstream topic of one kind, as filters: what the broker's ACL lets the gateway publish.
COMMAND_FILTER: Final = f"{ROOT}/+/+/+/command"
COMMUNITY_ALERTS_FILTER: Final = f"{ROOT}/alerts/+"
MEMBER_ALERTS_FILTER: Final = f"{ROOT}/members/+/alerts"
MEMBER_ROUTES_FILTER: Final = f"{ROOT}/members/+/routes"


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
        return StateMessage(state, _counter(obj, "session"), ts, clean)  # type: ignore[arg-type]
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


# Simulation scenarios (devices/scenario.py reads them; the week benchmark measures against them).
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
