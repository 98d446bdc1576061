"""Internal events v1: how one Rhizome process tells the others that the store changed (stdlib only).

A writer adds the event to the outbox in the same transaction as the change, on `topics.INTERNAL_EVENTS`;
the gateway's outbox relay publishes it once committed. An event is a notice, not the data: it names what
changed (ids and the new status) and readers load the rest from the store, so a missed event costs only
latency until the reader's next catch-up. `docs/mqtt.md` lists the types and who publishes and reads each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from gateway.contract.payloads import format_ts
from gateway.contract.reasons import ProtocolError

EVENT_VERSION: Final = 1
MAX_EVENT_BYTES: Final = 4096  # ids and a status; a failed delivery's reason (500 characters) fits easily
MAX_ID: Final = 2**53 - 1  # exact in JSON numbers everywhere
MAX_STATUS: Final = 32
MAX_REASON: Final = 500


@dataclass(frozen=True, kw_only=True)
class TaskCreated:
    """A fault opened a repair task (written by the gateway): the planner assigns it."""

    type: ClassVar[str] = "task_created"
    task_id: int
    fault_id: int
    at: datetime


@dataclass(frozen=True, kw_only=True)
class TaskChanged:
    """A repair task moved to `status` (assigned, accepted, open again after a decline, closed, ...);
    `member_id` is the member it is assigned to after the change, if any."""

    type: ClassVar[str] = "task_changed"
    task_id: int
    status: str
    member_id: int | None
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ShipmentChanged:
    """A driver recorded a stop: the shipment is now `status` (picked_up, delivered or failed, with
    the driver's `reason` when it failed)."""

    type: ClassVar[str] = "shipment_changed"
    shipment_id: int
    route_id: int | None
    status: str
    reason: str = ""
    at: datetime


@dataclass(frozen=True, kw_only=True)
class RouteChanged:
    """A route moved to `status` (declined by its driver: its shipments are free for the planner again)."""

    type: ClassVar[str] = "route_changed"
    route_id: int
    status: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class BoardChanged:
    """Something changed on the open task board: a task `posted`, `changed` or `cancelled`, a place
    `taken`, `suggested`, `declined` or `released`, or a member `alerted` (`member_id`)."""

    type: ClassVar[str] = "board_changed"
    task_id: int
    status: str
    member_id: int | None
    at: datetime


InternalEvent = TaskCreated | TaskChanged | ShipmentChanged | RouteChanged | BoardChanged
EVENT_TYPES: Final[Mapping[str, type[InternalEvent]]] = {
    cls.type: cls for cls in (TaskCreated, TaskChanged, ShipmentChanged, RouteChanged, BoardChanged)
}
# Field name -> (kind, required); every event also has v, type and ts.
_FIELDS: Final[Mapping[str, Mapping[str, tuple[str, bool]]]] = {
    "task_created": {"task_id": ("id", True), "fault_id": ("id", True)},
    "task_changed": {"task_id": ("id", True), "status": ("status", True), "member_id": ("id?", True)},
    "shipment_changed": {
        "shipment_id": ("id", True),
        "route_id": ("id?", True),
        "status": ("status", True),
        "reason": ("reason", False),
    },
    "route_changed": {"route_id": ("id", True), "status": ("status", True)},
    "board_changed": {"task_id": ("id", True), "status": ("status", True), "member_id": ("id?", True)},
}


def event_dict(event: InternalEvent) -> dict[str, Any]:
    """The event as its JSON object: v, type, ts, then its own fields."""
    body: dict[str, Any] = {"v": EVENT_VERSION, "type": event.type, "ts": format_ts(event.at)}
    for name in _FIELDS[event.type]:
        value = getattr(event, name)
        if not (name == "reason" and value == ""):
            body[name] = value
    return body


def encode_event(event: InternalEvent) -> bytes:
    """Compact JSON for the outbox; raises ValueError for an event `decode_event` would reject."""
    raw = json.dumps(event_dict(event), separators=(",", ":"), allow_nan=False).encode()
    decode_event(raw)  # one definition of valid, for writers and readers alike
    return raw


def decode_event(payload: bytes) -> InternalEvent:
    """Validate one internal event or raise ProtocolError (readers log it and drop it)."""
    if len(payload) > MAX_EVENT_BYTES:
        raise ProtocolError("payload_too_large", f"{len(payload)} bytes > {MAX_EVENT_BYTES}")
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError("not_json", str(exc)[:200]) from exc
    if not isinstance(obj, dict):
        raise ProtocolError("not_object", f"top level is {type(obj).__name__}")
    for name in ("v", "type", "ts"):
        if name not in obj:
            raise ProtocolError("field_missing", name)
    if type(obj["v"]) is not int or obj["v"] != EVENT_VERSION:
        raise ProtocolError("version_unsupported", f"v={obj['v']!r}, this reader speaks v{EVENT_VERSION}")
    kind = obj["type"]
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise ProtocolError("value_out_of_range", f"type {str(kind)[:40]!r} not one of {sorted(EVENT_TYPES)}")
    fields = _FIELDS[kind]
    extra = sorted(set(obj) - {"v", "type", "ts", *fields})
    if extra:
        raise ProtocolError("field_unknown", ", ".join(extra)[:200])
    values: dict[str, Any] = {"at": _ts(obj["ts"])}
    for name, (check, required) in fields.items():
        if name in obj:
            values[name] = _value(name, check, obj[name])
        elif required:
            raise ProtocolError("field_missing", name)
    return EVENT_TYPES[kind](**values)


def _ts(value: object) -> datetime:
    if not isinstance(value, str):
        raise ProtocolError("field_type", "ts must be str")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ProtocolError("ts_invalid", str(exc)[:200]) from exc
    if ts.tzinfo is None:
        raise ProtocolError("ts_invalid", "ts has no timezone")
    return ts.astimezone(UTC)


def _value(name: str, check: str, value: object) -> object:
    if check == "id?" and value is None:
        return None
    if check in ("id", "id?"):
        if type(value) is not int:
            raise ProtocolError("field_type", f"{name} must be an integer id")
        if not 1 <= value <= MAX_ID:
            raise ProtocolError("value_out_of_range", f"{name}={value} is not a row id")
        return value
    if not isinstance(value, str):
        raise ProtocolError("field_type", f"{name} must be str")
    if check == "status" and not (0 < len(value) <= MAX_STATUS and _is_status(value)):
        raise ProtocolError("value_out_of_range", f"{name} {value[:40]!r} is not a status")
    if check == "reason" and len(value) > MAX_REASON:
        raise ProtocolError("value_out_of_range", f"{name} is longer than {MAX_REASON} characters")
    return value


def _is_status(value: str) -> bool:
    """Lowercase ASCII words joined by underscores, as every status in the store is spelled."""
    return value.isascii() and value.islower() and value.replace("_", "").isalpha()
