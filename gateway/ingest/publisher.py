"""Drain the outbox to MQTT: messages decided in a transaction are published after it, even if the broker
was down when they were decided."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.client import connect, make_client
from gateway.contract.protocol import MqttTarget
from gateway.store.models import OutboxMessage, utcnow

log = logging.getLogger(__name__)


def publish_pending(
    sessions: sessionmaker[Session],
    publish: Callable[[str, bytes, int, bool], mqtt.MQTTMessageInfo],
    *,
    limit: int = 200,
    timeout_s: float = 5.0,
) -> int:
    """Publish up to `limit` pending messages in order; mark each published once the broker acknowledged it.

    Rows are locked with SKIP LOCKED on PostgreSQL, so several gateways never publish the same message twice
    concurrently. A message that fails stays pending with its error and is retried on the next call.
    """
    published = 0
    with sessions.begin() as session:
        query = select(OutboxMessage).where(OutboxMessage.published_at.is_(None)).order_by(OutboxMessage.id)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for message in session.scalars(query.limit(limit)):
            message.attempts += 1
            try:
                info = publish(message.topic, message.payload, message.qos, message.retain)
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError, OSError) as exc:  # paho raises these when not connected
                message.last_error = f"{type(exc).__name__}: {exc}"[:500]
                break  # keep the order: later messages wait for this one
            if not info.is_published():
                message.last_error = "not acknowledged in time"
                break
            message.published_at, message.last_error = utcnow(), None
            published += 1
    if published:
        log.info("outbox: published %s messages", published)
    return published


class OutboxPublisher:
    """Publishes the outbox on its own connection, so waiting for the broker's PUBACK never stalls ingestion
    (on one connection, a gateway waiting for a PUBACK while holding unacknowledged deliveries can deadlock a
    broker that serialises a client's packets, as amqtt does)."""

    def __init__(
        self, target: MqttTarget, client_id: str, sessions: sessionmaker[Session], every_s: float = 1.0
    ):
        self.sessions = sessions
        self.every_s = every_s
        self.target = target
        self.client = make_client(target, client_id)
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.connected = threading.Event()
        self.published = 0
        self._wake = threading.Event()

    def wake(self) -> None:
        """Drain now instead of at the next poll (the ingest loop just wrote alerts)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Drain the outbox every `every_s` seconds until `stop` is set."""
        connect(self.client, self.target)
        self.client.loop_start()
        try:
            while not stop.is_set():
                self._wake.wait(self.every_s)
                self._wake.clear()
                if stop.is_set() or not self.connected.is_set():
                    continue
                try:
                    self.published += publish_pending(self.sessions, self.client.publish)
                except OperationalError as exc:
                    log.warning("outbox not drained, database unavailable: %s", exc.__class__.__name__)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
