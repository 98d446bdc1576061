"""Devices against a real broker: birth, clean stop, last will on SIGKILL, the simulator end to end."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from devices.client import DeviceClient
from devices.fleet import MultiplexedFleet
from devices.regionfile import devices_of
from devices.simulator import Simulator
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract.client import make_client
from gateway.contract.payloads import StateMessage, Telemetry, parse_message
from gateway.contract.target import MqttTarget
from gateway.contract.topics import Topic

pytestmark = pytest.mark.network
WAIT = 10.0


def rhizome_command() -> list[str]:
    """The installed `rhizome` console script, or its entry point run by this interpreter."""
    script = Path(sys.executable).parent / "rhizome"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gateway.process.cli import main; sys.exit(main())"]


@dataclass(frozen=True)
class Received:
    """One message as a subscriber saw it."""

    topic: str
    payload: bytes
    retain: bool
    at: float = 0.0  # time.monotonic() on arrival

    def body(self) -> Any:
        return parse_message(self.topic, self.payload).body


class Probe:
    """A subscriber collecting messages in a queue, so tests can wait for them with a timeout."""

    def __init__(self, broker: Any, topic_filter: str) -> None:
        target = broker.target
        self.messages: queue.Queue[Received] = queue.Queue()
        subscribed = threading.Event()
        self.client = make_client(target, unique("probe"))
        self.client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.topic_filter = topic_filter
        self.client.on_message = self._on_message
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        assert subscribed.wait(WAIT), "probe could not subscribe"

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        # amqtt 0.12 also hands new subscribers retained messages of unrelated topics: drop those.
        if mqtt.topic_matches_sub(self.topic_filter, message.topic):
            received = Received(message.topic, bytes(message.payload), bool(message.retain), time.monotonic())
            self.messages.put(received)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = WAIT) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("expected message did not arrive") from None
            if predicate(message):
                return message

    def drain(self, quiet: float = 0.5) -> list[Received]:
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=quiet))
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def probes(broker: Any) -> Iterator[Callable[[str], Probe]]:
    """Factory of subscribers, all closed after the test."""
    made: list[Probe] = []

    def make(topic_filter: str) -> Probe:
        made.append(Probe(broker, topic_filter))
        return made[-1]

    yield make
    for probe in made:
        probe.close()


def unique(prefix: str) -> str:
    """Slugs unique per test, because retained messages outlive a test on a shared broker."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def is_state(state: str, clean: bool | None = None) -> Callable[[Received], bool]:
    def check(m: Received) -> bool:
        body = m.body()
        return (
            isinstance(body, StateMessage) and body.state == state and (clean is None or body.clean == clean)
        )

    return check


def test_birth_is_retained_and_clean_stop_publishes_retained_clean_offline(
    broker: Any, probes: Callable[[str], Probe], tmp_path: Path
) -> None:
    community = unique("c")
    state_filter = f"rhizome/v1/{community}/+/+/state"
    client = DeviceClient(broker.target, community, "site", "dev-1", state_dir=tmp_path)
    with client:
        assert client.connected
        assert client.send_telemetry({"temperature_c": 4.2, "door_open": False})
        assert client.flush(WAIT)
        late = probes(state_filter)  # subscribes after the birth: sees it only because it is retained
        birth = late.wait_for(is_state("online"))
        assert birth.retain and birth.body().session == client.session
    after = probes(state_filter)
    offline = after.wait_for(is_state("offline"))
    assert offline.retain and offline.body().clean is True and offline.body().session == client.session


def test_telemetry_goes_to_the_device_topic_with_increasing_seq(
    broker: Any, probes: Callable[[str], Probe], tmp_path: Path
) -> None:
    community = unique("c")
    probe = probes(f"rhizome/v1/{community}/+/+/telemetry")
    with DeviceClient(broker.target, community, "site", "dev-2", state_dir=tmp_path) as client:
        for level in (10.0, 11.0, 12.0):
            client.send_telemetry({"tank_level_pct": level})
        assert client.flush(WAIT)
    seen = [probe.wait_for(lambda m: True) for _ in range(3)]
    assert {m.topic for m in seen} == {str(Topic(community, "site", "dev-2", "telemetry"))}
    seqs = [m.body().seq for m in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


DEVICE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from devices.client import DeviceClient
    from gateway.contract.target import MqttTarget
    url, protocol, community, state_dir = sys.argv[1:5]
    target = MqttTarget.from_url(url, protocol)
    client = DeviceClient(target, community, "site", "victim", state_dir=state_dir)
    assert client.start(wait=10), "no connection"
    client.send_telemetry({"running": True})
    assert client.flush(10)
    print("ready", client.session, flush=True)
    time.sleep(60)
    """
)


def test_last_will_fires_offline_when_the_device_process_is_killed(
    broker: Any, probes: Callable[[str], Probe], tmp_path: Path
) -> None:
    community = unique("c")
    probe = probes(f"rhizome/v1/{community}/+/+/state")
    proc = subprocess.Popen(
        [sys.executable, "-c", DEVICE_SCRIPT, broker.url, broker.protocol, community, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
        ready = lines.get(timeout=WAIT)
        assert ready.startswith("ready"), ready
        session = int(ready.split()[1])
        assert probe.wait_for(is_state("online")).body().session == session
        os.kill(proc.pid, signal.SIGKILL)
        will = probe.wait_for(is_state("offline"))
        assert will.body().clean is False and will.body().session == session
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)
        if proc.stdout is not None:
            proc.stdout.close()


def tiny_region(community: str, extra_devices: int = 0) -> dict[str, Any]:
    """Five devices (one of each kind, two stock) plus `extra_devices` pumps, for the simulator tests."""
    extra = [(f"x{n}", "pump", 60) for n in range(extra_devices)]
    devices: list[tuple[str, str, list[tuple[str, str, int]], dict[str, int]]] = [
        ("pump-1", "pump", [("p1", "pump", 60), *extra], {}),
        ("farm-1", "farm", [("f1-soil", "soil", 300), ("f1-stock", "stock", 300)], {"coffee": 50}),
        ("clinic", "clinic", [("cold", "cold_room", 60)], {}),
        ("hub", "storage", [("hub-stock", "stock", 300)], {"rice": 100, "drinking-water": 900}),
    ]
    sites = [
        {
            "slug": slug,
            "kind": kind,
            "lon": -66.5,
            "stock": stock,
            "devices": [{"slug": f"{community}-{d}", "kind": k, "interval_s": i} for d, k, i in devs],
        }
        for slug, kind, devs, stock in devices
    ]
    return {"format": "rhizome-region/1", "communities": [{"slug": community, "sites": sites}]}


def test_cli_simulate_publishes_valid_messages_and_leaves_every_device_offline(
    broker: Any, probes: Callable[[str], Probe], tmp_path: Path
) -> None:
    community = unique("sim")
    region_file = tmp_path / "region.json"
    region_file.write_text(json.dumps(tiny_region(community, extra_devices=2)))
    probe = probes(f"rhizome/v1/{community}/#")
    env = {**os.environ, "RHIZOME_MQTT_URL": broker.url, "RHIZOME_MQTT_PROTOCOL": broker.protocol}
    started = time.monotonic()
    flags = ["--limit", "5", "--duration", "3", "--seed", "3", "--state-dir", str(tmp_path / "state")]
    result = subprocess.run(
        [*rhizome_command(), "devices", "simulate", "--region", str(region_file), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    # 3 s of simulation, start-up and a clean stop took 5 s here: 20 s leaves room for a loaded machine and
    # still tells a clean stop from one that hangs until the 30 s timeout.
    assert time.monotonic() - started < 20
    received = probe.drain()
    for message in received:
        message.body()  # raises ProtocolError unless the message keeps the contract
    data = [m for m in received if not m.topic.endswith("/state")]
    assert len({Topic.parse(m.topic).device for m in data}) == 5
    after = {m.topic: m for m in probes(f"rhizome/v1/{community}/+/+/state").drain()}  # QoS 1: maybe twice
    assert len(after) == 5
    for message in after.values():
        body = message.body()
        assert message.retain and body.state == "offline" and body.clean is True
    assert len(list((tmp_path / "state").glob("*.json"))) == 5


def test_multiplexed_fleet_births_and_clean_offline_for_every_device(
    broker: Any, probes: Callable[[str], Probe], tmp_path: Path
) -> None:
    community = unique("mux")
    specs = devices_of(tiny_region(community, extra_devices=3))
    probe = probes(f"rhizome/v1/{community}/#")
    fleet = MultiplexedFleet(broker.target, specs, tmp_path, connections=3)
    stop = threading.Event()
    stats = Simulator(specs, fleet, seed=5, speed=60, sim_start=datetime(2025, 3, 1, tzinfo=UTC)).run(
        stop, 1.5
    )
    assert stats.published >= len(specs)
    received = probe.drain()
    births = {Topic.parse(m.topic).device for m in received if is_state("online")(m)}
    offline = {Topic.parse(m.topic).device for m in received if is_state("offline", clean=True)(m)}
    assert births == offline == {s.slug for s in specs}
    telemetry = [m.body() for m in received if m.topic.endswith("/telemetry")]
    assert telemetry and all(isinstance(b, Telemetry) for b in telemetry)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_simulate_stops_cleanly_on_a_signal(
    broker: Any, probes: Callable[[str], Probe], tmp_path: Path, signum: int
) -> None:
    community = unique("sig")
    region_file = tmp_path / "region.json"
    region_file.write_text(json.dumps(tiny_region(community)))
    probe = probes(f"rhizome/v1/{community}/+/+/state")
    env = {**os.environ, "RHIZOME_MQTT_URL": broker.url, "RHIZOME_MQTT_PROTOCOL": broker.protocol}
    command = [*rhizome_command(), "devices", "simulate", "--region", str(region_file), "--limit", "2"]
    proc = subprocess.Popen(
        [*command, "--state-dir", str(tmp_path / "state")], env=env, stderr=subprocess.PIPE
    )
    try:
        online = {Topic.parse(probe.wait_for(is_state("online")).topic).device for _ in range(2)}
        assert len(online) == 2
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, stderr
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)
    offline = {Topic.parse(m.topic).device for m in probe.drain() if is_state("offline", clean=True)(m)}
    assert offline == online


def test_device_reconnects_after_a_broker_restart_and_delivers_what_it_queued(tmp_path: Path) -> None:
    account = BrokerAccount("dev", "pw")
    first = EmbeddedBroker(tmp_path / "broker", [account])
    with first:
        target = MqttTarget.from_url(first.url(account), first.protocol)
        client = DeviceClient(target, "restart", "site", "dev-r", state_dir=tmp_path / "state")
        assert client.start(wait=WAIT)
    try:
        deadline = time.monotonic() + WAIT
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        for level in range(20):
            assert client.send_telemetry({"tank_level_pct": float(level)})  # queued while the broker is down
        assert client.pending >= 20
        with EmbeddedBroker(tmp_path / "broker", [account], prefer=first.kind, port=first.port):  # type: ignore[arg-type]
            assert client.flush(15.0), f"{client.pending} messages still unacknowledged"
            assert client.channel.link.connects == 2
            client.stop()
    finally:
        client.stop(timeout=1.0)
