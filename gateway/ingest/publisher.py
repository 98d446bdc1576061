"""The outbox relay: drain the outbox to MQTT, so messages decided in a transaction are published after it,
even if the broker was down when they were decided.

This is the transactional outbox's relay and the one loop in Rhizome that polls the database. Any process may
commit outbox rows (the gateway its alerts and task events, the planner its crew alerts, the dashboard the
events of crew and driver actions); other processes learn of changes from what the relay publishes on
`rhizome/v1/internal/events`, never by polling the store themselves. The gateway wakes the relay right after
its own commits; the poll only bounds the delay for rows committed by other processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.client import connect, make_client
from gateway.contract.target import MqttTarget
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
    """Publishes the outbox on its own connection, or on the gateway's when given its `client`.

    Its own connection means waiting for a PUBACK never stalls ingestion (on one connection, a gateway waiting
    for a PUBACK while holding unacknowledged deliveries can deadlock a broker that serialises a client's
    packets, as amqtt does). Mosquitto does not, and the shipped config binds client ids to usernames: there
    a second connection on the gateway's account would take over the gateway's own session, so an MQTT v5
    gateway shares its connection (`client`) and tells the relay when it is up (`link_up`/`link_down`).
    """

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        sessions: sessionmaker[Session],
        every_s: float = 1.0,
        *,
        client: mqtt.Client | None = None,
    ):
        self.sessions = sessions
        self.every_s = every_s
        self.target = target
        self.connected = threading.Event()
        self.shared = client is not None
        if client is None:
            client = make_client(target, client_id)
            client.on_connect = self._on_connect
            client.on_disconnect = lambda *_: self.link_down()
        self.client = client
        self.published = 0
        self._wake = threading.Event()

    def wake(self) -> None:
        """Drain now instead of at the next poll (this process just committed outbox rows)."""
        self._wake.set()

    def link_up(self) -> None:
        """The connection is up: what waited while the broker was away goes out now, not at the next poll."""
        self.connected.set()
        self.wake()

    def link_down(self) -> None:
        """The connection dropped: publish nothing until `link_up`."""
        self.connected.clear()

    def _on_connect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the outbox relay: %s", reason)
            return
        self.link_up()

    def run(self, stop: threading.Event) -> None:
        """Drain the outbox when woken and at least every `every_s` seconds, until `stop` is set."""
        if not self.shared:
            connect(self.client, self.target)
            self.client.loop_start()
        down_since: float | None = None  # when the database was first found unavailable, during an outage
        try:
            while not stop.is_set():
                self._wake.wait(self.every_s)
                self._wake.clear()
                if stop.is_set() or not self.connected.is_set():
                    continue
                try:
                    self.published += publish_pending(self.sessions, self.client.publish)
                except OperationalError as exc:
                    if down_since is None:  # once an outage, not four times a second
                        log.warning("outbox not drained, database unavailable: %s", exc.__class__.__name__)
                        down_since = time.monotonic()
                    continue
                if down_since is not None:
                    log.warning("outbox drained again after %.1f s", time.monotonic() - down_since)
                    down_since = None
        finally:
            if not self.shared:  # a shared connection is its owner's to close
                self.client.disconnect()
                self.client.loop_stop()
