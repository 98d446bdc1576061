"""Abuse through the real broker: 10,000 malformed messages of many kinds, interleaved with good traffic from
registered devices, into a `rhizome gateway` process behind a Mosquitto with the shipped config.

The gateway must not crash (same process and store-writer pids at the end), every malformed message must be in
`dead_letters` byte for byte with the reason its kind calls for, and every good reading stored exactly once.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.contract.client import connect, make_client
from gateway.contract.payloads import MAX_PAYLOAD_BYTES, StockReport, Telemetry, encode
from gateway.contract.target import MqttTarget
from gateway.contract.topics import QOS
from gateway.process.procutil import free_port
from gateway.store.models import DeadLetter, Device, Reading
from tests.conftest import ShippedBroker
from tests.gateway_procs import Gateway, region_topics
from tests.scrape import parse, scrape

MALFORMED = 10_000
DEVICES = 50
GOOD_PER_DEVICE = 200
HUB = "rhizome/v1/utuado/hub/utuado-hub-stock/stock"
NOW = datetime.now(UTC)
TS = NOW.isoformat(timespec="milliseconds").replace("+00:00", "Z")
Maker = Callable[[int], tuple[str, bytes]]


def body(n: int, **fields: object) -> bytes:
    """A telemetry payload with `fields` replaced (or removed with ...); seq makes every message unique."""
    message: dict[str, object] = {"v": 1, "seq": n, "ts": TS, "metrics": {"flow_lpm": 10.0}}
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not ...}).encode()


def raw(seq: int, metrics: str) -> bytes:
    """A telemetry payload with raw JSON text for the metrics (tokens Python's json would not write)."""
    return b'{"v":1,"seq":%d,"ts":"%s","metrics":{%s}}' % (seq, TS.encode(), metrics.encode())


def kinds(pump: str) -> dict[str, tuple[str, Maker]]:
    """Every kind of malformed message: name -> (expected reason, index -> (topic, payload))."""
    t = f"{pump}/telemetry"
    return {
        "not json": ("not_json", lambda i: (t, b"{not json %d" % i)),
        "bad utf-8": ("not_utf8", lambda i: (t, b'{"v":1,"seq":%d,"x":"\xff\xfe"}' % i)),
        "surrogate bytes": ("not_utf8", lambda i: (t, b'{"seq":%d,"x":"\xed\xa0\x80"}' % i)),
        "array": ("not_object", lambda i: (t, b"[%d]" % i)),
        "duplicate key": ("duplicate_key", lambda i: (t, b'{"v":1,"seq":%d,"seq":1}' % i)),
        "no version": ("field_missing", lambda i: (t, body(i, v=...))),
        "version 2": ("version_unsupported", lambda i: (t, body(i, v=2))),
        "seq as text": ("field_type", lambda i: (t, body(i, seq=str(i)))),
        "negative seq": ("value_out_of_range", lambda i: (t, body(-i - 1))),
        "NaN": ("value_not_finite", lambda i: (t, raw(i, '"flow_lpm":NaN'))),
        "1e400": ("value_not_finite", lambda i: (t, raw(i, '"flow_lpm":1e400'))),
        "out of range": ("value_out_of_range", lambda i: (t, body(i, metrics={"flow_lpm": -1.0 - i}))),
        "int past any float": ("value_out_of_range", lambda i: (t, body(i, metrics={"flow_lpm": 10**400}))),
        "ints past 4300 digits": ("not_json", lambda i: (t, b'{"v":1,"seq":%d,"n":%s}' % (i, b"9" * 4400))),
        "unknown metric": ("unknown_metric", lambda i: (t, body(i, metrics={"flow_gpm": 3.0}))),
        "lone surrogate metric": ("unknown_metric", lambda i: (t, raw(i, '"\\ud800":1'))),
        "NUL field": ("field_unknown", lambda i: (t, body(i)[:-1] + b',"\\u0000":1}')),
        "extra field": ("field_unknown", lambda i: (t, body(i, extra=i))),
        "ts without zone": ("ts_invalid", lambda i: (t, body(i, ts="2026-11-26T11:59:00"))),
        "ts past year 9999": ("ts_invalid", lambda i: (t, body(i, ts="9999-12-31T23:59:59-14:00"))),
        "ts in future": ("ts_in_future", lambda i: (t, body(i, ts="2099-01-01T00:00:00Z"))),
        "ts before 2020": ("ts_too_old", lambda i: (t, body(i, ts="1970-01-01T00:00:10Z"))),
        "device mismatch": ("device_mismatch", lambda i: (t, body(i, device="someone-else"))),
        "oversized": ("payload_too_large", lambda i: (t, body(i) + b" " * (MAX_PAYLOAD_BYTES + 100))),
        "upper-case topic": ("topic_invalid", lambda i: (t.replace("utuado", "Utuado"), body(i))),
        "unknown topic kind": ("topic_invalid", lambda i: (f"{pump}/status", body(i))),
        "unicode topic": ("topic_invalid", lambda i: (t.replace("pump-1", "bomba-ñ"), body(i))),
        "unknown device": (
            "unknown_device",
            lambda i: (f"rhizome/v1/utuado/pump-1/nobody-{i % 7}/telemetry", body(i)),
        ),
        "device elsewhere": (
            "device_topic_mismatch",
            lambda i: (t.replace("utuado/pump-1", "jayuya/hub"), body(i)),
        ),
        "stock slug": ("slug_invalid", lambda i: (HUB, body(i, metrics=..., levels={"Rice": 3}))),
        "unknown good": ("unknown_good", lambda i: (HUB, encode(StockReport(i, NOW, {"flour": 3.0})))),
    }


def children(pid: int) -> set[int]:
    """Direct child processes (the store writer, and multiprocessing's resource tracker), from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def publish_all(target: MqttTarget, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 on one connection, as fast as the broker acknowledges; wait for the last ones."""
    client = make_client(target, f"abuse-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(200)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    connect(client, target)
    client.loop_start()
    # Publishing before the CONNACK can send the first messages twice (paho resends its queue on connect):
    # harmless for readings (unique key) but a second dead letter here.
    assert connected.wait(15)
    infos = []
    for topic, payload in messages:
        while (info := client.publish(topic, payload, qos=QOS)).rc != mqtt.MQTT_ERR_SUCCESS:
            time.sleep(0.001)
        infos.append(info)
    for info in infos[-500:]:
        info.wait_for_publish(60)
    assert all(info.is_published() for info in infos[-500:])
    client.disconnect()
    client.loop_stop()


def counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        readings = session.scalar(select(func.count()).select_from(Reading)) or 0
        letters = session.scalar(select(func.count()).select_from(DeadLetter)) or 0
    return readings, letters


@pytest.mark.network
@pytest.mark.slow
def test_ten_thousand_malformed_messages_amid_good_traffic(
    shipped_mosquitto: ShippedBroker, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    pumps = [topic.removesuffix("/telemetry") for topic in region_topics(engine, DEVICES)]
    catalogue = kinds(pumps[0])
    names = sorted(catalogue)
    bad: list[tuple[str, bytes, str]] = []
    for i in range(MALFORMED):
        name = names[i % len(names)]
        reason, make = catalogue[name]
        bad.append((*make(1_000_000 + i), reason))
    good = [
        (f"{pump}/telemetry", encode(Telemetry(seq, NOW, {"flow_lpm": float(seq % 90), "running": True})))
        for seq in range(1, GOOD_PER_DEVICE + 1)
        for pump in pumps
    ]
    good += [(HUB, encode(StockReport(seq, NOW, {"water": 100.0 + seq}))) for seq in range(1, 101)]
    stream: list[tuple[str, bytes]] = []
    for i in range(max(len(bad), len(good))):  # interleaved: each malformed message among good ones
        stream += [(t, p) for t, p, _ in bad[i : i + 1]] + good[i : i + 1]
    assert len(stream) == MALFORMED + len(good) and len(set(stream)) == len(stream)

    port = free_port()
    client_id = f"abuse-{uuid.uuid4().hex[:6]}"
    gateway = Gateway(tmp_path, shipped_mosquitto.url, database_url, client_id, "--metrics-port", str(port))
    gateway.start()
    assert gateway.process is not None
    pid, writers = gateway.process.pid, children(gateway.process.pid)
    assert any(b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes() for c in writers)  # the store writer
    try:
        started = time.monotonic()
        publish_all(MqttTarget.from_url(shipped_mosquitto.url), stream)
        print(f"published {len(stream)} in {time.monotonic() - started:.1f} s")
        deadline = time.monotonic() + 120
        while not _reached(counts(engine), (len(good), MALFORMED)) and time.monotonic() < deadline:
            assert gateway.process.poll() is None, (tmp_path / f"{gateway.client_id}.log").read_text()[-3000:]
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        time.sleep(1.0)  # anything beyond the expected counts would show now
        print(f"{MALFORMED} malformed + {len(good)} good through the broker in {elapsed:.1f} s")
        metrics = parse(scrape("127.0.0.1", port))
        # Never crashed: the same gateway process and the same store writer, both still running.
        assert gateway.process.poll() is None and gateway.process.pid == pid
        assert children(pid) == writers
    finally:
        gateway.stop()
    log = (tmp_path / f"{gateway.client_id}.log").read_text()
    assert "Traceback" not in log and "died" not in log, log[-3000:]

    with Session(engine) as session:
        letters = session.execute(select(DeadLetter.topic, DeadLetter.payload, DeadLetter.reason)).all()
        stored = session.execute(
            select(Device.slug, Reading.seq, Reading.kind).join(Device, Reading.device_id == Device.id)
        ).all()
    assert Counter(tuple(row) for row in letters) == Counter(bad)  # every one, raw bytes intact, its reason
    expected = {(topic.split("/")[4], seq, topic.split("/")[5]) for topic, seq in _seqs(good)}
    assert len(stored) == len(good) and set(map(tuple, stored)) == expected
    assert metrics["rhizome_duplicates_total"] == {(): 0}
    assert metrics["rhizome_readings_stored_total"] == {(): len(good)}
    dead = {labels[0][1]: n for labels, n in metrics["rhizome_dead_letters_total"].items()}
    assert dead == Counter(reason for *_, reason in bad)


def _reached(have: tuple[int, int], want: tuple[int, int]) -> bool:
    return all(h >= w for h, w in zip(have, want, strict=True))


def _seqs(messages: list[tuple[str, bytes]]) -> list[tuple[str, int]]:
    return [(topic, json.loads(payload)["seq"]) for topic, payload in messages]


def test_the_catalogue_covers_the_reasons_the_gateway_can_give() -> None:
    from typing import get_args

    from gateway.contract.payloads import parse_message
    from gateway.contract.reasons import ProtocolError, Reason

    catalogue = kinds("rhizome/v1/utuado/pump-1/d")
    store = {"unknown_device", "device_topic_mismatch", "unknown_good"}
    assert {reason for reason, _ in catalogue.values()} == set(get_args(Reason)) | store
    for reason, make in catalogue.values():  # the contract's own reasons, without broker or store
        if reason not in store:
            with pytest.raises(ProtocolError) as caught:
                parse_message(*make(7))
            assert caught.value.reason == reason
