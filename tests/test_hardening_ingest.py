"""Review "Hardening": a retained malformed state message is dead-lettered once, not on every reconnect;
command-topic messages the gateway's wildcard sees are dropped, neither stored nor dead-lettered.

No broker: paho `MQTTMessage`s go through the gateway's own `_on_message` and then the Ingestor, the path
a broker's delivery takes (minus the socket and the writer process).
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.contract.topics import UPSTREAM_FILTER, command_topic
from gateway.ingest.messages import BatchResult, Ingestor
from gateway.ingest.service import GatewayService
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import DeadLetter, Reading

STATE = "rhizome/v1/utuado/pump-1/utuado-pump-1-pump/state"
MALFORMED = b'{"v":1,"state":"sleeping","session":3}'  # a state that is neither online nor offline


class AckingClient:
    """Stands in for paho's client: records what the gateway acknowledges."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, int]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append((mid, qos))


@pytest.fixture
def gateway(ingest_store: tuple[Engine, Ingestor]) -> GatewayService:
    """A gateway service that is never connected; only its message handler is used."""
    return GatewayService(Settings(mqtt_url="mqtt://127.0.0.1:1"), ingest_store[0])


def delivery(topic: str, payload: bytes, *, retain: bool, mid: int = 1, qos: int = 1) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid, topic.encode())
    message.payload, message.qos, message.retain = payload, qos, retain
    return message


def deliver(
    service: GatewayService, ingestor: Ingestor, engine: Engine, *messages: mqtt.MQTTMessage
) -> BatchResult:
    """Hand messages to the gateway's handler, then store what it queued, as the writer would."""
    client = AckingClient()
    for message in messages:
        service._on_message(client, None, message)  # type: ignore[arg-type]
    batch = []
    while not service._inbox.empty():
        batch.append(service._inbox.get_nowait().raw)
    with make_session_factory(engine).begin() as session:
        return ingestor.process(session, batch)


def dead_letters(engine: Engine) -> list[tuple[str, bytes, str]]:
    with Session(engine) as session:
        rows = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
        return [(d.topic, d.payload, d.reason) for d in rows]


def test_a_retained_malformed_state_is_dead_lettered_once_across_reconnects(
    ingest_store: tuple[Engine, Ingestor], gateway: GatewayService
) -> None:
    engine, ingestor = ingest_store
    first = deliver(gateway, ingestor, engine, delivery(STATE, MALFORMED, retain=False))  # published live
    assert sum(first.dead_letters.values()) == 1
    reason = next(iter(first.dead_letters))
    for _reconnect in range(3):  # each resubscription replays the retained message with the retain flag
        again = deliver(gateway, ingestor, engine, delivery(STATE, MALFORMED, retain=True))
        assert (sum(again.dead_letters.values()), again.duplicates) == (0, 1)
    assert dead_letters(engine) == [(STATE, MALFORMED, reason)]


def test_a_retained_message_first_seen_on_subscription_is_kept_once(
    ingest_store: tuple[Engine, Ingestor], gateway: GatewayService
) -> None:
    engine, ingestor = ingest_store
    replay = delivery(STATE, MALFORMED, retain=True)
    deliver(gateway, ingestor, engine, replay)
    deliver(gateway, ingestor, engine, delivery(STATE, MALFORMED, retain=True))
    other = b'{"v":1,"state":"online"}'  # new retained bytes on the same topic are a new dead letter
    deliver(gateway, ingestor, engine, delivery(STATE, other, retain=True))
    assert [(topic, payload) for topic, payload, _ in dead_letters(engine)] == [
        (STATE, MALFORMED),
        (STATE, other),
    ]


def test_a_device_sending_the_same_bad_bytes_twice_is_kept_twice(
    ingest_store: tuple[Engine, Ingestor], gateway: GatewayService
) -> None:
    engine, ingestor = ingest_store
    result = deliver(
        gateway,
        ingestor,
        engine,
        delivery(STATE, MALFORMED, retain=False, mid=1),
        delivery(STATE, MALFORMED, retain=False, mid=2),
    )
    assert sum(result.dead_letters.values()) == 2
    assert [payload for _, payload, _ in dead_letters(engine)] == [MALFORMED, MALFORMED]


def test_command_topic_messages_are_acknowledged_and_dropped(
    ingest_store: tuple[Engine, Ingestor], gateway: GatewayService
) -> None:
    engine, ingestor = ingest_store
    topic = command_topic("utuado", "pump-1", "utuado-pump-1-pump")
    assert mqtt.topic_matches_sub(UPSTREAM_FILTER, topic)  # the upstream wildcard does receive commands
    client = AckingClient()
    gateway._on_message(client, None, delivery(topic, b'{"action":"restart"}', retain=False, mid=7))  # type: ignore[arg-type]
    assert client.acks == [(7, 1)]  # acknowledged, so the broker does not redeliver it
    assert gateway._inbox.empty()  # never handed to the store writer
    deliver(gateway, ingestor, engine)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 0
        assert session.scalar(select(func.count()).select_from(Reading)) == 0
