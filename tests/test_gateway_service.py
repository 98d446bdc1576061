"""The gateway against a real broker and store: stores what devices publish, dead-letters the rest,
and keeps its session so messages published while it is down arrive when it returns."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.contract.client import make_client
from gateway.contract.payloads import StateMessage, Telemetry, encode
from gateway.contract.topics import QOS
from gateway.ingest.service import GatewayService
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import DeadLetter, Device, OutboxMessage, Reading
from gateway.store.region import load_region
from tests.conftest import Broker, tiny_region_data

pytestmark = pytest.mark.network


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Running:
    """A gateway service running in a thread."""

    def __init__(self, service: GatewayService) -> None:
        self.service, self.stop = service, threading.Event()
        self.thread = threading.Thread(target=service.run, args=(self.stop,), daemon=True)
        self.thread.start()
        assert service.connected.wait(15)

    def close(self) -> None:
        self.stop.set()
        # The stop is bounded by the service's own limits (drain 5 s, writer process 30 s, outbox 10 s);
        # a CI run at load 8 on 2 cores once needed more than 15 s (all messages published, stop still going).
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def region(engine: Engine, tag: str) -> str:
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data(tag))
    return f"rhizome/v1/utuado{tag}/pump-1/utuado{tag}-pump-1-pump"


@pytest.fixture
def settings(broker: Broker, tag: str) -> Settings:
    return Settings(mqtt_url=broker.url, mqtt_protocol=broker.protocol, gateway_client_id=f"test-gw-{tag}")


@pytest.fixture
def publisher(broker: Broker, tag: str) -> Iterator[mqtt.Client]:
    client = make_client(broker.target, f"test-pub-{tag}")
    client.connect(broker.target.host, broker.target.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def publish(client: mqtt.Client, topic: str, payload: bytes, retain: bool = False) -> None:
    client.publish(topic, payload, qos=QOS, retain=retain).wait_for_publish(10)


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def reading(seq: int) -> bytes:
    return encode(Telemetry(seq, datetime.now(UTC), {"flow_lpm": 30.0 + seq % 10, "running": True}))


def test_stores_readings_and_dead_letters_bad_ones(
    engine: Engine, region: str, settings: Settings, publisher: mqtt.Client
) -> None:
    running = Running(GatewayService(settings, engine, session_expiry_s=60))
    try:
        publish(publisher, f"{region}/state", encode(StateMessage("online", 1)), retain=True)
        for seq in range(1, 201):
            publish(publisher, f"{region}/telemetry", reading(seq))
        publish(publisher, f"{region}/telemetry", b"not json")
        publish(publisher, f"{region}/command", b'{"v": 1, "repair": true}')  # downstream: passed over
        publish(publisher, f"{region}/telemetry", reading(200))  # a duplicate
        wait_until(lambda: count(engine, Reading) == 200 and count(engine, DeadLetter) >= 1)
    finally:
        running.close()
        publish(publisher, f"{region}/state", b"", retain=True)  # clear the retained birth
    with Session(engine) as session:
        letters = session.scalars(select(DeadLetter).where(DeadLetter.topic == f"{region}/telemetry")).all()
        assert [(d.reason, d.payload) for d in letters] == [("not_json", b"not json")]
        assert not session.scalars(select(DeadLetter).where(DeadLetter.topic == f"{region}/command")).all()
        device = session.scalars(select(Device).where(Device.slug == region.split("/")[-1])).one()
        assert (device.state, device.last_seq, device.session) == ("online", 200, 1)
    assert running.service.metrics.duplicates == 1


def test_messages_sent_while_the_gateway_is_down_arrive_later(
    engine: Engine, region: str, settings: Settings, publisher: mqtt.Client
) -> None:
    first = Running(GatewayService(settings, engine, session_expiry_s=120))
    publish(publisher, f"{region}/telemetry", reading(1))
    wait_until(lambda: count(engine, Reading) == 1)
    first.close()  # the broker keeps the session and queues for it
    for seq in range(2, 302):
        publish(publisher, f"{region}/telemetry", reading(seq))
    second = Running(GatewayService(settings, engine, session_expiry_s=60))  # resumes the session
    try:
        wait_until(lambda: count(engine, Reading) == 301)
    finally:
        second.close()


def test_outbox_messages_are_published_once_the_broker_acknowledges(
    engine: Engine, region: str, settings: Settings, broker: Broker, tag: str
) -> None:
    topic = f"rhizome/v1/alerts/utuado{tag}"
    received: list[bytes] = []
    listener = make_client(broker.target, f"test-listen-{tag}")
    listener.on_message = lambda _c, _u, message: received.append(message.payload)
    listener.connect(broker.target.host, broker.target.port)
    listener.subscribe(topic, qos=1)
    listener.loop_start()
    with make_session_factory(engine).begin() as session:
        session.add_all(OutboxMessage(topic=topic, payload=f"alert {i}".encode()) for i in range(3))
    running = Running(GatewayService(settings, engine, session_expiry_s=0))
    try:
        wait_until(lambda: len(received) == 3)
        wait_until(lambda: count_published(engine) == 3)
    finally:
        running.close()
        listener.disconnect()
        listener.loop_stop()
    assert received == [b"alert 0", b"alert 1", b"alert 2"]


def count_published(engine: Engine) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_not(None))
        return session.scalar(query) or 0


def test_metrics_endpoint_speaks_prometheus(
    engine: Engine, region: str, settings: Settings, publisher: mqtt.Client
) -> None:
    from gateway.ingest.metrics import rhizome_version
    from gateway.process.procutil import free_port
    from tests.scrape import families, parse, scrape

    port = free_port()
    settings = settings.with_overrides(metrics_host="127.0.0.2")  # not the old hard-coded 127.0.0.1
    running = Running(GatewayService(settings, engine, session_expiry_s=0, metrics_port=port))
    try:
        publish(publisher, f"{region}/telemetry", reading(1))
        publish(publisher, f"{region}/telemetry", b"{}")
        m = running.service.metrics  # the shared broker may also deliver other tests' retained messages
        wait_until(lambda: m.stored >= 1 and m.dead_letters["field_missing"] >= 1)
        text = scrape("127.0.0.2", port)
    finally:
        running.close()
    samples = parse(text)
    assert samples["rhizome_readings_stored_total"] == {(): 1.0}
    assert samples["rhizome_dead_letters_total"][(("reason", "field_missing"),)] == 1.0
    assert (
        samples["rhizome_batch_seconds_bucket"][(("le", "+Inf"),)]
        == samples["rhizome_batch_seconds_count"][()]
    )
    assert samples["rhizome_devices"][(("state", "online"),)] >= 1
    assert () in samples["rhizome_outbox_backlog"]
    assert samples["rhizome_build_info"] == {(("version", rhizome_version()),): 1.0}
    kinds = families(text)
    for name in ("messages_received", "readings_stored", "duplicates", "incidents", "dead_letters"):
        assert kinds[f"rhizome_{name}"] == "counter"  # exposed as rhizome_<name>_total
    assert kinds["rhizome_batch_seconds"] == "histogram"
    assert (
        kinds["rhizome_devices"] == kinds["rhizome_outbox_backlog"] == kinds["rhizome_build_info"] == "gauge"
    )


def test_silence_is_judged_at_the_stored_frontier_while_behind_a_backlog(engine: Engine) -> None:
    from datetime import timedelta

    from gateway.ingest.messages import RawMessage
    from gateway.ingest.service import _Delivery

    service = GatewayService(Settings(mqtt_url="mqtt://127.0.0.1:1"), engine)
    assert abs(service.sweep_clock() - datetime.now(UTC)) < timedelta(seconds=5)  # nothing stored yet
    stored_through = datetime.now(UTC) - timedelta(minutes=3)
    service._stored_through = stored_through
    service._inbox.put(_Delivery(0, 1, 1, RawMessage("t", b"", datetime.now(UTC))))
    assert service.sweep_clock() == stored_through  # 3 minutes behind: judge silence as of then
    service._inbox.get()
    assert abs(service.sweep_clock() - datetime.now(UTC)) < timedelta(seconds=5)  # caught up
