"""Client ids bound to accounts (`use_username_as_clientid` in the shipped config), against a real Mosquitto
started with that config and the files `rhizome devices provision` writes: an account connecting with another
account's client id (the gateway's documented `rhizome-gateway`, a device's `rhizome-dev-<slug>`) gets a
session of its own and leaves the other's connection, persistent session, queued readings and will alone;
gateway processes on a shared subscription, one account each, keep their sessions and relay the outbox over
their one connection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.broker.accounts import provision
from gateway.broker.files import write_broker_files
from gateway.contract.events import TaskCreated, encode_event
from gateway.contract.payloads import Telemetry, encode
from gateway.contract.topics import INTERNAL_EVENTS, Topic
from gateway.ingest.service import GatewayService
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import OutboxMessage, Reading
from gateway.store.region import load_region
from tests.conftest import require_mosquitto, tiny_region_data
from tests.secure_broker import HOST, Probe, SecureMosquitto

pytestmark = pytest.mark.network
PUMP = ("utuado", "pump-1", "utuado-pump-1-pump")
STOCK = ("jayuya", "hub", "jayuya-hub-stock")
GATEWAY_ID = "rhizome-gateway"  # Settings.gateway_client_id's default, as the docs name it


@dataclass
class Bound:
    broker: SecureMosquitto
    engine: Engine
    passwords: dict[str, str]
    probes: list[Probe]

    def probe(self, username: str, client_id: str, **kwargs: object) -> Probe:
        probe = Probe(self.broker.port, username, self.passwords[username], client_id, **kwargs)  # type: ignore[arg-type]
        self.probes.append(probe)
        return probe

    def gateway(self, name: str, client_id: str, *, shared: bool = False) -> Running:
        url = f"mqtt://gateway.{name}:{self.passwords[f'gateway.{name}']}@{HOST}:{self.broker.port}"
        settings = Settings(mqtt_url=url, gateway_client_id=client_id, gateway_group="binding")
        return Running(GatewayService(settings, self.engine, shared=shared, session_expiry_s=300))


class Running:
    """A gateway service in a thread; `reconnects` counts the connections it lost."""

    def __init__(self, service: GatewayService) -> None:
        self.service, self.stop = service, threading.Event()
        self.thread = threading.Thread(target=service.run, args=(self.stop,), daemon=True)
        self.thread.start()
        assert service.connected.wait(20), "gateway did not connect"

    @property
    def reconnects(self) -> int:
        return self.service._generation  # bumped on every disconnect

    def close(self) -> None:
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive()


@pytest.fixture
def bound(engine: Engine, tmp_path: Path) -> Iterator[Bound]:
    require_mosquitto()
    broker_dir = tmp_path / "broker-files"
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data())
        issued = [provision(session, "device", PUMP[2]), provision(session, "device", STOCK[2])]
        issued += [provision(session, "gateway", name) for name in ("gw-1", "gw-2", "observer")]
        write_broker_files(session, broker_dir)
    passwords = {i.username: i.password for i in issued if i is not None}
    broker = SecureMosquitto(tmp_path / "mosquitto", broker_dir)
    broker.start()
    bound = Bound(broker, engine, passwords, [])
    try:
        yield bound
    finally:
        for probe in bound.probes:
            probe.close()
        broker.stop()


def reading(seq: int) -> bytes:
    return encode(Telemetry(seq, datetime.now(UTC), {"flow_lpm": 12.0}))


def stored(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return sorted(session.scalars(select(Reading.seq)))


def pending(engine: Engine) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
        return session.scalar(query) or 0


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_device_using_the_gateways_client_id_neither_kicks_it_nor_loses_an_acknowledged_reading(
    bound: Bound,
) -> None:
    gateway = bound.gateway("gw-1", GATEWAY_ID)
    try:
        pump = bound.probe(PUMP[2], "pump-probe")
        assert pump.connected()
        telemetry = str(Topic(*PUMP, "telemetry"))
        acked = []
        for seq in range(1, 11):
            if seq == 4:  # mid-stream, as in the finding
                intruder = bound.probe(STOCK[2], GATEWAY_ID)
                assert intruder.connected()  # under its own id: the broker replaced ours with its username
            if pump.publish(telemetry, reading(seq)) == "accepted":
                acked.append(seq)
        assert acked == list(range(1, 11))
        assert wait_for(lambda: stored(bound.engine) == acked), stored(bound.engine)
        assert gateway.reconnects == 0 and gateway.service.connected.is_set()
        assert intruder.disconnects == []  # and nobody kicked the intruder either: no takeover loop
    finally:
        gateway.close()


def test_a_device_resuming_the_offline_gateways_session_by_its_id_leaves_the_queued_readings(
    bound: Bound,
) -> None:
    bound.gateway("gw-1", GATEWAY_ID).close()  # its persistent session (5 min) stays, subscribed
    pump = bound.probe(PUMP[2], "pump-probe")
    assert pump.connected()
    telemetry = str(Topic(*PUMP, "telemetry"))
    assert [pump.publish(telemetry, reading(seq)) for seq in range(1, 6)] == ["accepted"] * 5  # queued
    intruder = bound.probe(STOCK[2], GATEWAY_ID)  # clean start: before the fix, the session was wiped
    assert intruder.connected()
    intruder.close()
    gateway = bound.gateway("gw-1", GATEWAY_ID)
    try:
        assert wait_for(lambda: stored(bound.engine) == [1, 2, 3, 4, 5]), stored(bound.engine)
    finally:
        gateway.close()


def test_a_device_using_another_devices_client_id_neither_kicks_it_nor_fires_its_will(bound: Bound) -> None:
    state = str(Topic(*PUMP, "state"))
    observer = bound.probe("gateway.observer", "observer")
    assert observer.connected()
    observer.subscribe(state)
    victim_id = f"rhizome-dev-{PUMP[2]}"  # DeviceClient's default client id
    victim = bound.probe(PUMP[2], victim_id, will=(state, json.dumps({"status": "offline"}).encode()))
    assert victim.connected()
    impostor = bound.probe(STOCK[2], victim_id)
    assert impostor.connected()
    time.sleep(1.0)  # a takeover disconnects the victim at once, and its will follows (no delay set)
    assert victim.disconnects == [] and victim.client.is_connected()
    assert victim.publish(str(Topic(*PUMP, "telemetry")), reading(1)) == "accepted"
    assert observer.messages == []
    victim.close()  # a clean DISCONNECT sends no will: the observer still sees nothing
    time.sleep(0.3)
    assert observer.messages == []


def test_gateways_on_a_shared_subscription_one_account_each_keep_their_sessions_and_relay_the_outbox(
    bound: Bound,
) -> None:
    observer = bound.probe("gateway.observer", "observer")
    assert observer.connected()
    observer.subscribe(INTERNAL_EVENTS)
    first = bound.gateway("gw-1", "rhizome-gateway-1", shared=True)
    second = bound.gateway("gw-2", "rhizome-gateway-2", shared=True)
    try:
        pump = bound.probe(PUMP[2], "pump-probe")
        assert pump.connected()
        telemetry = str(Topic(*PUMP, "telemetry"))
        assert [pump.publish(telemetry, reading(seq)) for seq in range(1, 21)] == ["accepted"] * 20
        assert wait_for(lambda: stored(bound.engine) == list(range(1, 21))), stored(bound.engine)
        event = encode_event(TaskCreated(task_id=7, fault_id=3, at=datetime.now(UTC)))
        with make_session_factory(bound.engine).begin() as session:
            session.add(OutboxMessage(topic=INTERNAL_EVENTS, payload=event))
        assert observer.wait(lambda: (INTERNAL_EVENTS, event) in observer.messages), observer.messages[:3]
        assert wait_for(lambda: pending(bound.engine) == 0)
        # Each relay rode its gateway's connection: a second connection on the same account would have
        # taken the gateway's session over (and the gateway would have taken it back, over and over).
        assert (first.reconnects, second.reconnects) == (0, 0)
        assert first.service.outbox.shared and second.service.outbox.shared
    finally:
        first.close()
        second.close()
