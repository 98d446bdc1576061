"""The internal events' contract: each type round-trips through its JSON, and a malformed event is refused
with a stable reason (readers log it and drop it; writers cannot even encode it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.contract.alerts import board_task_link, crew_task_link, place_fields
from gateway.contract.events import (
    EVENT_TYPES,
    InternalEvent,
    RouteChanged,
    ShipmentChanged,
    TaskChanged,
    TaskCreated,
    decode_event,
    encode_event,
)
from gateway.contract.reasons import ProtocolError

AT = datetime(2026, 11, 26, 15, 20, 0, 123000, tzinfo=UTC)  # whole milliseconds: the wire keeps no more
EVENTS: list[InternalEvent] = [
    TaskCreated(task_id=12, fault_id=7, at=AT),
    TaskChanged(task_id=12, status="open", member_id=None, at=AT),
    TaskChanged(task_id=12, status="fixed_pending", member_id=3, at=AT),
    ShipmentChanged(shipment_id=5, route_id=2, status="failed", reason="bridge <b>closed</b>", at=AT),
    ShipmentChanged(shipment_id=5, route_id=2, status="delivered", at=AT),
    RouteChanged(route_id=2, status="declined", at=AT),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{e.type}")
def test_each_event_round_trips(event: InternalEvent) -> None:
    raw = encode_event(event)
    assert decode_event(raw) == event
    body = json.loads(raw)
    assert (body["v"], body["type"], body["ts"]) == (1, event.type, "2026-11-26T15:20:00.123Z")


def test_the_wire_form_is_the_documented_one() -> None:
    assert json.loads(encode_event(EVENTS[3])) == {
        "v": 1,
        "type": "shipment_changed",
        "ts": "2026-11-26T15:20:00.123Z",
        "shipment_id": 5,
        "route_id": 2,
        "status": "failed",
        "reason": "bridge <b>closed</b>",
    }
    assert "reason" not in json.loads(encode_event(EVENTS[4]))  # only a failure says why
    assert sorted(EVENT_TYPES) == [
        "board_changed",
        "route_changed",
        "shipment_changed",
        "task_changed",
        "task_created",
    ]


GOOD = {"v": 1, "type": "task_created", "ts": "2026-11-26T15:20:00.000Z", "task_id": 1, "fault_id": 2}
ROUTE = {"v": 1, "type": "route_changed", "ts": GOOD["ts"], "route_id": 1, "status": "declined"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff", "not_json"),
        (b"[1]", "not_object"),
        (json.dumps({**GOOD, "v": 2}).encode(), "version_unsupported"),
        (json.dumps({**GOOD, "v": True}).encode(), "version_unsupported"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "ts"}).encode(), "field_missing"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "fault_id"}).encode(), "field_missing"),
        (json.dumps({**GOOD, "type": "task_deleted"}).encode(), "value_out_of_range"),
        (json.dumps({**GOOD, "extra": 1}).encode(), "field_unknown"),
        (json.dumps({**GOOD, "task_id": "1"}).encode(), "field_type"),
        (json.dumps({**GOOD, "task_id": True}).encode(), "field_type"),
        (json.dumps({**GOOD, "task_id": 0}).encode(), "value_out_of_range"),
        (json.dumps({**GOOD, "ts": "yesterday"}).encode(), "ts_invalid"),
        (json.dumps({**GOOD, "ts": "2026-11-26T15:20:00"}).encode(), "ts_invalid"),
        (
            json.dumps({**GOOD, "type": "route_changed", "route_id": 1, "status": "declined"}).encode(),
            "field_unknown",  # a task_created's fields on a route_changed
        ),
        (json.dumps({**ROUTE, "status": "ÉTÉ"}).encode(), "value_out_of_range"),
        (json.dumps({**ROUTE, "status": "Declined!"}).encode(), "value_out_of_range"),
        (json.dumps({**ROUTE, "status": "x" * 33}).encode(), "value_out_of_range"),
        (json.dumps({**ROUTE, "status": None}).encode(), "field_type"),
        (json.dumps({**ROUTE, "route_id": None}).encode(), "field_type"),  # only an optional id may be null
        (b"{" + b" " * 5000 + b"}", "payload_too_large"),
    ],
)
def test_a_malformed_event_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_event(payload)
    assert caught.value.reason == reason


def test_a_writer_cannot_encode_what_a_reader_would_refuse() -> None:
    with pytest.raises(ValueError, match="not a status"):
        encode_event(RouteChanged(route_id=1, status="Declined by driver", at=AT))
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_event(TaskCreated(task_id=1, fault_id=1, at=datetime(2026, 1, 1)))


def test_member_alert_place_fields_are_the_documented_ones() -> None:
    """The fields an alert about a place gains (docs/mqtt.md#member-alerts): additive, and documented."""
    fields = place_fields("Pump <1>", 18.2600004, -66.71, crew_task_link(12))
    assert fields == {"site_name": "Pump <1>", "lat": 18.26, "lon": -66.71, "link": "/crew#task-12"}
    assert board_task_link(3) == "/board/3"
    doc = Path(__file__).resolve().parents[1].joinpath("docs", "mqtt.md").read_text(encoding="utf-8")
    section = doc.split("### Member alerts", 1)[1].split("\n### ", 1)[0]
    assert all(f"`{name}`" in section for name in fields)
    assert "`/crew#task-<id>`" in section and "`/board/<id>`" in section
