"""The MQTT contract v1: every kind of bad message is rejected with the right reason, good ones round-trip."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contract.payloads import (
    MAX_PAYLOAD_BYTES,
    METRICS,
    StateMessage,
    StockReport,
    Telemetry,
    encode,
    parse_message,
)
from gateway.contract.reasons import ProtocolError
from gateway.contract.target import MqttTarget
from gateway.contract.topics import Topic, shared_filter

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TS = "2026-11-26T11:59:00Z"
T = "rhizome/v1/utuado/pump-1/utuado-pump-1-pump/telemetry"
S = "rhizome/v1/utuado/hub/utuado-hub-stock/stock"
ST = "rhizome/v1/utuado/pump-1/utuado-pump-1-pump/state"


def payload(**fields: object) -> bytes:
    body = {"v": 1, "seq": 1, "ts": TS, "metrics": {"flow_lpm": 40.0}}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


BAD = [
    ("rhizome/v1/utuado/pump-1/telemetry", payload(), "topic_invalid"),
    ("rhizome/v2/utuado/pump-1/dev/telemetry", payload(), "topic_invalid"),
    ("rhizome/v1/Utuado/pump-1/dev/telemetry", payload(), "topic_invalid"),
    ("rhizome/v1/utuado/pump 1/dev/telemetry", payload(), "topic_invalid"),
    ("rhizome/v1/utuado/pump-1/dev/telemetry/extra", payload(), "topic_invalid"),
    ("rhizome/v1/utuado/pump-1/dev/command", payload(), "topic_invalid"),
    ("rhizome/v1/utuado/pump-1/-dev/telemetry", payload(), "topic_invalid"),
    (T, b"x" * (MAX_PAYLOAD_BYTES + 1), "payload_too_large"),
    (T, b"\xff\xfe{}", "not_utf8"),
    (T, b"{not json", "not_json"),
    (T, b"", "not_json"),
    (T, b'{"v": 1, "seq": ' + b"1" * 5000 + b"}", "not_json"),  # beyond Python's int conversion limit
    (T, b"[1, 2]", "not_object"),
    (T, b'"text"', "not_object"),
    (T, b'{"v": 1, "v": 1}', "duplicate_key"),
    (T, payload(v=...), "field_missing"),
    (T, payload(v=2), "version_unsupported"),
    (T, payload(v="1"), "version_unsupported"),
    (T, payload(v=True), "version_unsupported"),
    (T, payload(seq=...), "field_missing"),
    (T, payload(seq="7"), "field_type"),
    (T, payload(seq=1.5), "field_type"),
    (T, payload(seq=True), "field_type"),
    (T, payload(seq=-1), "value_out_of_range"),
    (T, payload(seq=2**53), "value_out_of_range"),
    (T, payload(ts=...), "field_missing"),
    (T, payload(ts=1700000000), "field_type"),
    (T, payload(ts="yesterday"), "ts_invalid"),
    (T, payload(ts="2026-11-26T11:59:00"), "ts_invalid"),
    (T, payload(ts="2026-11-26T13:00:00Z"), "ts_in_future"),
    (T, payload(ts="1970-01-01T00:00:10Z"), "ts_too_old"),
    (T, payload(ts="0001-01-01T00:00:00+01:00"), "ts_invalid"),  # UTC would be before year 1
    (T, payload(ts="9999-12-31T23:59:59-14:00"), "ts_invalid"),  # ... or after year 9999
    (T, payload(metrics=...), "field_missing"),
    (T, payload(metrics={}), "field_missing"),
    (T, payload(metrics=[1]), "field_type"),
    (T, payload(metrics={"flow_gpm": 3}), "unknown_metric"),
    (T, payload(metrics={"flow_lpm": "40"}), "field_type"),
    (T, payload(metrics={"flow_lpm": -1}), "value_out_of_range"),
    (T, payload(metrics={"pressure_kpa": 1e9}), "value_out_of_range"),
    (T, payload(metrics={"pressure_kpa": 10**400}), "value_out_of_range"),  # no float holds it
    (T, payload(metrics={"running": 1}), "field_type"),
    (T, b'{"v":1,"seq":1,"ts":"' + TS.encode() + b'","metrics":{"flow_lpm":NaN}}', "value_not_finite"),
    (T, b'{"v":1,"seq":1,"ts":"' + TS.encode() + b'","metrics":{"flow_lpm":Infinity}}', "value_not_finite"),
    (T, payload(faults="E1"), "field_type"),
    (T, payload(faults=["not a code!"]), "field_type"),
    (T, payload(extra=1), "field_unknown"),
    (T, payload(device="another-device"), "device_mismatch"),
    (S, payload(metrics=..., levels={}), "field_missing"),
    (S, payload(metrics=..., levels={"Rice": 3}), "slug_invalid"),
    (S, payload(metrics=..., levels={"rice": -3}), "value_out_of_range"),
    (S, payload(metrics=..., levels={"rice": None}), "field_type"),
    (S, payload(metrics=..., levels={"rice": -(10**400)}), "value_out_of_range"),
    (S, payload(metrics=..., levels={"rice": 3}, extra=1), "field_unknown"),
    (ST, b'{"v":1,"state":"sleeping","session":1}', "value_out_of_range"),
    (ST, b'{"v":1,"state":"online"}', "field_missing"),
    (ST, b'{"v":1,"state":"online","session":1,"clean":"yes"}', "field_type"),
    (ST, b'{"v":1,"state":"online","session":1,"seq":4}', "field_unknown"),
]


@pytest.mark.parametrize(("topic", "raw", "reason"), BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_messages_are_rejected_with_their_reason(topic: str, raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_message(topic, raw, now=NOW)
    assert caught.value.reason == reason


def test_every_reason_of_the_contract_is_exercised() -> None:
    from typing import get_args

    from gateway.contract.reasons import Reason

    assert {b[2] for b in BAD} == set(get_args(Reason))


def test_telemetry_round_trip() -> None:
    body = Telemetry(7, NOW - timedelta(seconds=5), {"flow_lpm": 41.5, "running": True}, ("E17",))
    message = parse_message(T, encode(body), now=NOW)
    assert message.topic == Topic("utuado", "pump-1", "utuado-pump-1-pump", "telemetry")
    assert message.body == body


def test_stock_and_state_round_trip() -> None:
    stock = StockReport(8, NOW, {"rice": 120.5, "drinking-water": 4000})
    assert parse_message(S, encode(stock), now=NOW).body == stock
    will = StateMessage("offline", 3)
    assert parse_message(ST, encode(will), now=NOW).body == will
    clean = StateMessage("offline", 3, NOW, clean=True)
    assert parse_message(ST, encode(clean), now=NOW).body == clean


def test_payload_naming_its_own_device_is_accepted() -> None:
    raw = payload(device="utuado-pump-1-pump")
    assert parse_message(T, raw, now=NOW).body.seq == 1  # type: ignore[union-attr]


def test_topic_string_round_trip_and_shared_filter() -> None:
    assert str(Topic.parse(T)) == T
    assert Topic.parse(T).sibling("state") == Topic.parse(ST)
    assert shared_filter("gw") == "$share/gw/rhizome/v1/+/+/+/+"
    with pytest.raises(ValueError):
        shared_filter("bad group")


def test_encode_refuses_what_parse_would_reject() -> None:
    with pytest.raises(ValueError):
        encode(Telemetry(1, NOW, {"flow_lpm": math.nan}))
    with pytest.raises(ValueError):
        Telemetry(1, datetime(2026, 1, 1), {"flow_lpm": 1.0}).to_dict()  # naive timestamp


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", ("127.0.0.1", 1883, None, None, False)),
        ("mqtts://gw:p%40ss@broker.example:8884", ("broker.example", 8884, "gw", "p@ss", True)),
    ],
)
def test_broker_urls(url: str, expected: tuple[object, ...]) -> None:
    t = MqttTarget.from_url(url)
    assert (t.host, t.port, t.username, t.password, t.tls) == expected


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "tcp://host:1883"])
def test_bad_broker_urls(url: str) -> None:
    with pytest.raises(ValueError):
        MqttTarget.from_url(url)


huge_integers = st.integers(min_value=-(10**500), max_value=10**500)
metric_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    huge_integers,
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.one_of(st.integers(), huge_integers, st.floats(), st.text(max_size=3)),
    ts=st.one_of(
        st.just(TS),
        st.datetimes(timezones=st.timezones()).map(lambda at: at.isoformat()),
        st.datetimes().map(lambda at: at.isoformat()),
        st.text(max_size=30),
    ),
    metrics=st.dictionaries(st.sampled_from([*METRICS, "bogus"]), metric_values, max_size=4),
    extra=st.dictionaries(st.text(max_size=6), json_values, max_size=2),
)
def test_parser_only_raises_protocol_errors(
    seq: object, ts: str, metrics: dict[str, object], extra: dict[str, object]
) -> None:
    body = {"v": 1, "seq": seq, "ts": ts, "metrics": metrics, **extra}
    try:
        raw = json.dumps(body).encode()
    except (ValueError, TypeError):
        return
    try:
        message = parse_message(T, raw, now=NOW)
    except ProtocolError:
        return
    # Whatever is accepted is well-formed and survives a round trip (timestamps are written to the ms).
    again = parse_message(T, encode(message.body), now=NOW).body
    assert isinstance(again, Telemetry) and isinstance(message.body, Telemetry)
    assert (again.seq, again.metrics, again.faults) == (message.body.seq, message.body.metrics, ())
    assert abs(again.ts - message.body.ts) < timedelta(milliseconds=1)


@settings(max_examples=300, deadline=None)
@given(topic=st.text(max_size=80), raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_parser(topic: str, raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_message(topic, raw, now=NOW)


VALID = [
    (T, encode(Telemetry(7, NOW, {"flow_lpm": 41.5, "running": True}, ("E17",)))),
    (S, encode(StockReport(8, NOW, {"rice": 120.5}))),
    (ST, encode(StateMessage("offline", 3, NOW, clean=True))),
]
splices = st.sampled_from(
    [b"1" * 4400, b"1e400", b"NaN", b"[" * 3000, b"\xff", b'"\\ud800"', b"-", b",", b"}"]
)


@settings(max_examples=300, deadline=None)
@given(
    valid=st.sampled_from(VALID),
    edits=st.lists(
        st.tuples(st.integers(0, 120), st.integers(0, 3), splices | st.binary(max_size=4)), max_size=4
    ),
)
def test_valid_messages_spliced_with_hostile_bytes_never_crash_the_parser(
    valid: tuple[str, bytes], edits: list[tuple[int, int, bytes]]
) -> None:
    topic, raw = valid
    for at, cut, insert in edits:  # replace `cut` bytes at `at` with `insert`
        raw = raw[:at] + insert + raw[at + cut :]
    with contextlib.suppress(ProtocolError):
        parse_message(topic, raw, now=NOW)
