"""Store and forward and connection faults against a real broker.

The 30 s broker outage, the day-long outage and the scenario runs start their own Mosquitto (EmbeddedBroker,
the project's config: persistence, no queue limit); the restart tests use the shared `broker` fixture.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.client import DeviceClient, now_utc
from devices.fleet import MultiplexedFleet, PerDeviceFleet
from devices.regionfile import devices_of
from devices.scenario import scenario_of
from devices.simulator import Simulator
from devices.spool import DropReport
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract.payloads import StateMessage, Telemetry
from gateway.contract.target import MqttTarget
from gateway.contract.topics import Topic
from gateway.process.procutil import free_port
from tests.conftest import Broker
from tests.test_devices_broker import WAIT, Probe, Received, is_state, unique

pytestmark = pytest.mark.network
ACCOUNT = BrokerAccount("rhizome-dev", "outage-test")


def telemetry_seqs(messages: list[Received], device: str | None = None) -> list[int]:
    return [
        m.body().seq
        for m in messages
        if m.topic.endswith("/telemetry") and (device is None or Topic.parse(m.topic).device == device)
    ]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Mosquitto of our own with the project's config, which a test may stop and start again."""
    broker = EmbeddedBroker(tmp_path / "broker", [ACCOUNT], prefer="mosquitto", port=free_port())
    broker.start()
    yield broker
    broker.stop()


def as_fixture_broker(broker: EmbeddedBroker) -> Broker:
    return Broker(broker.url(ACCOUNT), broker.protocol, broker.kind)


class PersistentSubscriber:
    """A subscriber with a persistent MQTT 5 session: the broker keeps its messages while it is away."""

    def __init__(self, broker: EmbeddedBroker, topic_filter: str) -> None:
        self.seqs: queue.Queue[int] = queue.Queue()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=unique("keeper"), protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(ACCOUNT.username, ACCOUNT.password)
        self.client.reconnect_delay_set(0.2, 1)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.seqs.put(
            Received(m.topic, m.payload, False).body().seq
        )
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        assert subscribed.wait(WAIT)

    def take(self, count: int, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < count:
            try:
                out.append(self.seqs.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"got {len(out)} of {count} readings") from None
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.slow
def test_broker_down_for_30_s_every_reading_arrives_afterwards_exactly_once_in_order(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    community = unique("outage")
    keeper = PersistentSubscriber(own_broker, f"rhizome/v1/{community}/+/+/telemetry")
    target = MqttTarget.from_url(own_broker.url(ACCOUNT), own_broker.protocol)
    device = DeviceClient(target, community, "well", "pump-o", state_dir=tmp_path / "box", max_backoff=2.0)
    sent: list[int] = []

    def measure(level: float) -> None:
        seq = device.next_seq()
        assert device.publish(Telemetry(seq, now_utc(), {"tank_level_pct": level}))
        sent.append(seq)

    try:
        assert device.start(wait=WAIT)
        for k in range(5):
            measure(float(k))
        assert device.flush(WAIT)
        before = keeper.take(5, WAIT)
        time.sleep(0.3)  # let the subscriber's acknowledgements reach the broker before it goes
        own_broker.stop()
        outage_end = time.monotonic() + 30
        while time.monotonic() < outage_end:
            measure(50.0)
            time.sleep(0.5)
        taken_offline = len(sent) - 5  # about 60; fewer when the machine is busy
        assert not device.connected and device.queued == taken_offline >= 30
        restarted = EmbeddedBroker(own_broker.workdir, [ACCOUNT], prefer="mosquitto", port=own_broker.port)
        with restarted:
            assert device.flush(15.0), f"{device.queued} readings still spooled"
            measure(99.0)
            assert device.flush(WAIT)
            after = keeper.take(len(sent) - 5, 15.0)
            with pytest.raises(queue.Empty):
                keeper.seqs.get(timeout=1.0)  # and nothing twice
            keeper.close()
    finally:
        device.stop(timeout=2.0)
    assert before + after == sent
    assert sent == sorted(sent) and len(set(sent)) == len(sent) == taken_offline + 6


def test_a_day_offline_and_a_reboot_lose_nothing(tmp_path: Path) -> None:
    """1,440 readings (one a minute for 24 h) taken without a broker, a reboot, then the link is back."""
    port = free_port()
    url = f"mqtt://{ACCOUNT.username}:{ACCOUNT.password}@127.0.0.1:{port}"
    target = MqttTarget.from_url(url, "5")
    box = tmp_path / "box"
    offline = DeviceClient(target, "day", "well", "pump-day", state_dir=box, durable=False)  # no fsyncs
    offline.start(wait=None)
    start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    taken = []
    for minute in range(24 * 60):
        seq = offline.next_seq()
        offline.publish(Telemetry(seq, start + timedelta(minutes=minute), {"tank_level_pct": minute % 100}))
        taken.append(seq)
    assert offline.queued == 24 * 60 and offline.dropped == 0
    offline.stop(timeout=0.2)  # the broker is unreachable: everything stays in the spool
    with EmbeddedBroker(tmp_path / "broker", [ACCOUNT], prefer="mosquitto", port=port) as broker:
        probe = Probe(as_fixture_broker(broker), "rhizome/v1/day/+/+/telemetry")
        rebooted = DeviceClient(target, "day", "well", "pump-day", state_dir=box)
        try:
            assert rebooted.start(wait=WAIT)
            assert rebooted.send_telemetry({"tank_level_pct": 1.0})
            assert rebooted.flush(15.0)
        finally:
            rebooted.stop()
        got = [probe.wait_for(lambda _m: True) for _ in range(24 * 60 + 1)]
        probe.close()
    seqs = telemetry_seqs(got)
    assert seqs[:-1] == taken and seqs[-1] == taken[-1] + 1
    assert got[0].body().ts == start  # each reading keeps the time it was measured


DEVICE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from devices.client import DeviceClient, now_utc
    from gateway.contract.payloads import Telemetry
    from gateway.contract.target import MqttTarget
    url, protocol, community, state_dir, count, end = sys.argv[1:7]
    client = DeviceClient(MqttTarget.from_url(url, protocol), community, "site", "box", state_dir=state_dir)
    online = client.start(wait=10 if end != "offline" else None)
    seqs = []
    for level in range(int(count)):
        seqs.append(client.next_seq())
        client.publish(Telemetry(seqs[-1], now_utc(), {"tank_level_pct": float(level)}))
    if online:
        assert client.flush(10)
    print("ready", client.session, *seqs, flush=True)
    if end == "stop":
        client.stop()
    else:
        time.sleep(60)  # waits for kill -9
    """
)


def run_device(
    broker_url: str, protocol: str, community: str, state_dir: Path, count: int, end: str
) -> list[int]:
    """Run one device process; `end` is stop (clean), kill (kill -9 once ready) or offline (kill -9 too)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DEVICE_SCRIPT,
            broker_url,
            protocol,
            community,
            str(state_dir),
            str(count),
            end,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        if end != "stop":
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT)
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)
        if proc.stdout is not None:
            proc.stdout.close()
    return [int(word) for word in line.split()[1:]]  # session, then the seqs


def test_seq_and_session_survive_kill_9_and_clean_restarts_of_the_device_process(
    broker: Broker, tmp_path: Path
) -> None:
    community = unique("restart")
    probe = Probe(broker, f"rhizome/v1/{community}/#")
    try:
        killed = run_device(broker.url, broker.protocol, community, tmp_path, 3, "kill")
        clean = run_device(broker.url, broker.protocol, community, tmp_path, 3, "stop")
        again = run_device(broker.url, broker.protocol, community, tmp_path, 3, "stop")
        received = probe.drain(1.0)
    finally:
        probe.close()
    sessions = [killed[0], clean[0], again[0]]
    assert sessions == sorted(set(sessions))
    seqs = killed[1:] + clean[1:] + again[1:]
    assert telemetry_seqs(received) == seqs  # every reading, once, in order
    assert seqs == sorted(set(seqs))
    assert killed[-1] < clean[1] <= killed[-1] + 100  # a crash skips at most one reserved block
    assert again[1] == clean[-1] + 1  # a clean stop records the exact next seq
    wills = [m.body() for m in received if is_state("offline", clean=False)(m)]
    assert [w.session for w in wills] == [killed[0]]


def test_readings_spooled_offline_before_a_kill_9_are_sent_after_the_reboot(
    broker: Broker, tmp_path: Path
) -> None:
    community = unique("reboot")
    nowhere = f"mqtt://nobody:nothing@127.0.0.1:{free_port()}"
    offline = run_device(nowhere, broker.protocol, community, tmp_path, 10, "offline")
    probe = Probe(broker, f"rhizome/v1/{community}/+/+/telemetry")
    try:
        online = run_device(broker.url, broker.protocol, community, tmp_path, 2, "stop")
        received = [probe.wait_for(lambda _m: True) for _ in range(12)]
        assert probe.drain(0.5) == []
    finally:
        probe.close()
    assert telemetry_seqs(received) == offline[1:] + online[1:]
    assert online[1] > offline[-1]


def test_a_full_spool_sends_the_newest_in_order_and_reports_the_drop_on_connect(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    community = unique("full")
    probe = Probe(broker, f"rhizome/v1/{community}/+/+/+")
    client = DeviceClient(broker.target, community, "hub", "scale", state_dir=tmp_path, spool_max=5)
    reports: queue.Queue[DropReport] = queue.Queue()
    client.on_drops(reports.put)
    seqs = []
    for level in range(8):  # before start(): nothing can be sent yet
        seqs.append(client.next_seq())
        client.publish(Telemetry(seqs[-1], now_utc(), {"tank_level_pct": float(level)}))
    client.send_stock({"rice": 40.0})
    assert client.queued == 5 and client.dropped == 4
    with caplog.at_level(logging.WARNING, logger="devices.forwarder"), client:
        report = reports.get(timeout=WAIT)
        assert client.flush(WAIT)
    try:
        received = [probe.wait_for(lambda m: not m.topic.endswith("/state")) for _ in range(5)]
    finally:
        probe.close()
    assert (report.device, report.count, report.first_seq, report.last_seq) == ("scale", 4, seqs[0], seqs[3])
    assert "4 messages" in caplog.text and "dropped" in caplog.text
    assert telemetry_seqs(received) == seqs[4:]
    assert received[-1].topic.endswith("/stock") and received[-1].body().levels == {"rice": 40.0}


def pump_region(community: str, count: int) -> list[Any]:
    sites = [
        {"slug": f"well-{n}", "kind": "pump", "lon": -66.5, "devices": [dev(f"{community}-p{n}")]}
        for n in range(count)
    ]
    return devices_of({"format": "rhizome-region/1", "communities": [{"slug": community, "sites": sites}]})


def dev(slug: str) -> dict[str, Any]:
    return {"slug": slug, "kind": "pump", "interval_s": 60}


def states(received: list[Received], device: str) -> list[tuple[str, int, bool]]:
    out = []
    for m in received:
        if m.topic.endswith("/state") and Topic.parse(m.topic).device == device:
            body: StateMessage = m.body()
            out.append((body.state, body.session, body.clean))
    return out


def arrival(received: list[Received], device: str, predicate: Callable[[Received], bool]) -> float:
    return next(m.at for m in received if Topic.parse(m.topic).device == device and predicate(m))


def run_scenario(
    fleet_type: str, broker: EmbeddedBroker, tmp_path: Path, events: list[dict[str, Any]]
) -> Any:
    """Three pumps reading once a simulated minute at speed 60 (once a second), for 4.5 s."""
    community = unique("faults")
    specs = pump_region(community, 3)
    for event in events:
        event["device"] = f"{community}-{event['device']}"
    probe = Probe(as_fixture_broker(broker), f"rhizome/v1/{community}/#")
    target = MqttTarget.from_url(broker.url(ACCOUNT), broker.protocol)
    if fleet_type == "per-device":
        fleet: Any = PerDeviceFleet(target, specs, tmp_path / "state")
    else:
        fleet = MultiplexedFleet(target, specs, tmp_path / "state", connections=1)
    sc = scenario_of({"format": "rhizome-scenario/1", "events": events})
    simulator = Simulator(
        specs, fleet, seed=2, speed=60, sim_start=datetime(2025, 6, 1, tzinfo=UTC), scenario=sc
    )
    try:
        stats = simulator.run(threading.Event(), 4.5)
        received = probe.drain(0.5)
    finally:
        probe.close()
    assert stats.events == 6
    return community, received


def test_per_device_link_outage_power_loss_dropped_and_hanging(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    community, received = run_scenario(
        "per-device",
        own_broker,
        tmp_path,
        [
            {"at": "1m", "device": "p0", "event": "link_outage", "for": "2m"},
            {"at": "1m", "device": "p1", "event": "power_loss", "link": "drop", "for": "2m"},
            {"at": "1m", "device": "p2", "event": "power_loss", "link": "hang", "for": "2m"},
        ],
    )
    p0, p1, p2 = (f"{community}-p{n}" for n in range(3))
    # Link outage: the broker's will, then the same session back, and the readings of the outage caught up.
    [(_, s0, _), *rest] = states(received, p0)
    assert rest == [("offline", s0, False), ("online", s0, False), ("offline", s0, True)]
    seqs = telemetry_seqs(received, p0)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) >= 5  # none lost, in order
    mine = [m for m in received if Topic.parse(m.topic).device == p0]
    back = [k for k, m in enumerate(mine) if is_state("online")(m)][1]  # the birth after the outage
    returned_at = mine[back].body().ts
    caught_up = [m for m in mine[back:] if m.topic.endswith("/telemetry") and m.body().ts < returned_at]
    assert len(caught_up) >= 2  # measured during the outage, delivered after it
    # Power loss, link dropped: the will at once, silence, then a reboot: the next session.
    [(_, s1, _), *rest] = states(received, p1)
    assert rest == [("offline", s1, False), ("online", s1 + 1, False), ("offline", s1 + 1, True)]
    assert silence_before_will(received, p1) < 1.5
    # Power loss, link hanging: no will while it hangs; the old session's will only when the box reboots.
    [(_, s2, _), *rest] = states(received, p2)
    assert rest == [("offline", s2, False), ("online", s2 + 1, False), ("offline", s2 + 1, True)]
    assert silence_before_will(received, p2) > 1.5


def silence_before_will(received: list[Received], device: str) -> float:
    """Seconds between the device's last message and its will (its first unclean offline)."""
    will = arrival(received, device, is_state("offline", clean=False))
    return will - max(m.at for m in received if Topic.parse(m.topic).device == device and m.at < will)


def test_multiplexed_link_outage_and_power_loss(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    community, received = run_scenario(
        "multiplexed",
        own_broker,
        tmp_path,
        [
            {"at": "1m", "device": "p0", "event": "link_outage", "for": "2m"},
            {"at": "1m", "device": "p1", "event": "power_loss", "link": "drop", "for": "2m"},
            {"at": "1m", "device": "p2", "event": "power_loss", "link": "hang", "for": "2m"},
        ],
    )
    p0, p1, p2 = (f"{community}-p{n}" for n in range(3))
    [(_, s0, _), *rest] = states(received, p0)
    assert rest == [("offline", s0, False), ("online", s0, False), ("offline", s0, True)]
    seqs = telemetry_seqs(received, p0)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) >= 5
    [(_, s1, _), *rest] = states(received, p1)
    assert rest == [("offline", s1, False), ("online", s1 + 1, False), ("offline", s1 + 1, True)]
    [(_, s2, _), *rest] = states(received, p2)
    assert rest == [("online", s2 + 1, False), ("offline", s2 + 1, True)]  # silence, no will, then a reboot


@pytest.mark.parametrize("mode", ["client", "multiplexed"])
def test_a_clean_stop_sends_every_spooled_reading_before_the_offline(
    broker: Broker, tmp_path: Path, mode: str
) -> None:
    """The gateway takes a reading after an `offline` as the device being back: the offline goes last."""
    community = unique("last")
    probe = Probe(broker, f"rhizome/v1/{community}/#")
    specs = pump_region(community, 4)
    if mode == "client":
        spec = specs[0]
        client = DeviceClient(broker.target, community, spec.site, spec.slug, state_dir=tmp_path)
        assert client.start(wait=WAIT)
        for level in range(200):
            client.send_telemetry({"tank_level_pct": float(level % 100)})
        client.stop()
        devices = [spec.slug]
    else:
        fleet = MultiplexedFleet(broker.target, specs, tmp_path, connections=2)
        fleet.start()
        deadline = time.monotonic() + WAIT
        while fleet.connected() < len(specs) and time.monotonic() < deadline:
            time.sleep(0.02)
        for level in range(100):
            for channel in fleet.channels:
                channel.publish(Telemetry(channel.next_seq(), now_utc(), {"tank_level_pct": float(level)}))
        fleet.stop(5.0)
        devices = [spec.slug for spec in specs]
    try:
        received = probe.drain(1.0)
    finally:
        probe.close()
    for device in devices:
        mine = [m for m in received if Topic.parse(m.topic).device == device]
        assert len(telemetry_seqs(mine)) == (200 if mode == "client" else 100)
        assert is_state("offline", clean=True)(mine[-1]), f"{device}: the offline is not the last message"
