"""Store and forward without a broker: the bounded SQLite spool and a DeviceClient that cannot connect."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.client import DeviceClient
from devices.spool import DEFAULT_MAX_MESSAGES, Spool
from gateway.contract.payloads import Telemetry
from gateway.contract.target import MqttTarget

TARGET = MqttTarget.from_url("mqtt://dev:pw@127.0.0.1:1")  # nothing listens: the device is offline
TOPIC = "rhizome/v1/c/s/d/{}"


def put(spool: Spool, kind: str, seq: int, device: str = "d") -> int | None:
    return spool.put(device, kind, seq, TOPIC.format(kind), f'{{"seq":{seq}}}'.encode())


def seqs(spool: Spool) -> list[int]:
    return [row.seq for row in spool.after(0, 10_000)]


def test_messages_come_out_in_order_and_leave_when_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    for seq in range(1, 6):
        put(spool, "telemetry" if seq != 3 else "stock", seq)
    rows = spool.after(0, 100)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5] and rows[2].kind == "stock"
    assert rows[0].topic == TOPIC.format("telemetry") and rows[0].payload == b'{"seq":1}'
    assert [r.seq for r in spool.after(rows[1].id, 2)] == [3, 4]
    spool.ack([(rows[0].id, "d"), (rows[1].id, "d")])
    assert seqs(spool) == [3, 4, 5] and spool.count() == 3 == spool.count("d") and spool.count("x") == 0


def test_ids_are_never_reused_after_the_newest_is_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    last = put(spool, "telemetry", 1)
    assert last is not None
    spool.ack([(last, "d")])
    again = put(spool, "telemetry", 2)
    assert again is not None and again > last  # a forwarder's cursor past `last` still sees it


def test_full_spool_drops_the_oldest_telemetry_and_keeps_stock(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=5)
    put(spool, "stock", 1)
    for seq in range(2, 6):
        put(spool, "telemetry", seq)
    put(spool, "telemetry", 6)
    put(spool, "stock", 7)
    assert seqs(spool) == [1, 4, 5, 6, 7]
    assert spool.count() == 5 and spool.dropped("d") == 2
    [report] = spool.take_reports()
    assert (report.device, report.count, report.first_seq, report.last_seq, report.total) == ("d", 2, 2, 3, 2)
    assert spool.take_reports() == []  # reported once


def test_a_spool_full_of_stock_keeps_the_newest_report_of_each_device(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=3)
    put(spool, "stock", 1, "a")
    put(spool, "stock", 2, "b")
    put(spool, "stock", 3, "a")
    assert put(spool, "telemetry", 4, "a") is None  # the new reading is the oldest telemetry there is
    put(spool, "stock", 5, "b")  # supersedes... the oldest superseded report: a's seq 1
    assert seqs(spool) == [2, 3, 5]
    put(spool, "stock", 6, "a")  # b's seq 2 is superseded by its seq 5
    assert seqs(spool) == [3, 5, 6]
    assert {r.device: (r.count, r.first_seq, r.last_seq) for r in spool.take_reports()} == {
        "a": (2, 1, 4),
        "b": (1, 2, 2),
    }


def test_messages_handed_to_a_connection_are_not_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=3)
    ids = [put(spool, "telemetry", seq) for seq in (1, 2, 3)]
    spool.in_flight.update(i for i in ids[:2] if i is not None)  # on their way: paho will send them anyway
    put(spool, "telemetry", 4)
    assert seqs(spool) == [1, 2, 4]


def test_queue_and_drop_counts_survive_a_reboot(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=2)
    for seq in (1, 2, 3):
        put(spool, "telemetry", seq)
    spool.close()
    again = Spool(tmp_path / "s.sqlite", max_messages=2)
    assert seqs(again) == [2, 3] and again.count("d") == 2
    [report] = again.take_reports(["d"])
    assert report.count == 1 and again.dropped("d") == 1


def test_a_day_offline_at_one_reading_a_minute_fits_with_room_to_spare(tmp_path: Path) -> None:
    assert DEFAULT_MAX_MESSAGES >= 30 * 24 * 60  # a month at one reading per minute
    spool = Spool(tmp_path / "s.sqlite", durable=False)  # capacity, not fsync, is the point here
    for seq in range(24 * 60):
        put(spool, "telemetry", seq)
    assert seqs(spool) == list(range(24 * 60)) and spool.dropped("d") == 0


def test_only_data_messages_are_spooled_and_bad_sizes_are_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="spooled"):
        put(spool, "state", 1)
    with pytest.raises(ValueError, match="at least 1"):
        Spool(tmp_path / "t.sqlite", max_messages=0)


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('format', 'something-else/3')")
    with pytest.raises(ValueError, match="something-else"):
        Spool(path)


def test_a_closed_spool_gives_nothing_to_a_late_forwarder(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    put(spool, "telemetry", 1)
    spool.close()
    spool.close()
    assert spool.after(0, 10) == [] and spool.count_after(0) == 0
    spool.ack([(1, "d")])  # acknowledgements racing the stop are ignored: the message goes again next run


def test_offline_client_keeps_readings_across_a_reboot_and_continues_seq(tmp_path: Path) -> None:
    first = DeviceClient(TARGET, "c", "s", "box", state_dir=tmp_path)
    first.start(wait=None)
    sent = [first.next_seq() for _ in range(3)]
    for seq, hours in zip(sent, (3, 2, 1), strict=True):
        first.publish(Telemetry(seq, datetime.now(UTC) - timedelta(hours=hours), {"tank_level_pct": 50.0}))
    assert first.queued == 3 and first.pending == 3 and not first.flush(0.2)
    first.stop(timeout=0.5)
    second = DeviceClient(TARGET, "c", "s", "box", state_dir=tmp_path)
    try:
        assert second.queued == 3 and second.dropped == 0
        assert second.next_seq() == sent[-1] + 1
        spooled = second.channel.forwarder.spool.after(0, 10)
        assert [row.seq for row in spooled] == sent and {row.kind for row in spooled} == {"telemetry"}
    finally:
        second.stop(timeout=0.5)


def test_client_counts_drops_of_its_full_spool(tmp_path: Path) -> None:
    client = DeviceClient(TARGET, "c", "s", "tiny", state_dir=tmp_path, spool_max=4)
    try:
        for level in range(6):
            assert client.send_telemetry({"tank_level_pct": float(level)}) is True
        client.send_stock({"rice": 10.0})
        assert client.queued == 4 and client.dropped == 3
        kinds = [row.kind for row in client.channel.forwarder.spool.after(0, 10)]
        assert kinds == ["telemetry", "telemetry", "telemetry", "stock"]
    finally:
        client.stop(timeout=0.5)
