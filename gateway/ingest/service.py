"""The gateway process: subscribe at QoS 1, store batches, acknowledge only after the commit."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine

from gateway.contract.client import connect, make_client
from gateway.contract.topics import (
    BRIDGE_STATE_FILTER,
    QOS,
    UPSTREAM_FILTER,
    is_command_topic,
    shared_filter,
)
from gateway.ingest.messages import BatchResult, RawMessage
from gateway.ingest.metrics import GatewayMetrics, serve_metrics
from gateway.ingest.publisher import OutboxPublisher
from gateway.ingest.rules import load_rules
from gateway.ingest.writer_process import WriterProcess
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import utcnow

log = logging.getLogger(__name__)
IDLE_GAP_S = 0.005
SHARED_SESSION_EXPIRY_S = 120
INBOX_BATCHES = 4  # messages held in memory: the two batches in flight, the one collected, one spare
# The outbox relay's poll: rows other processes commit (the planner's crew alerts, the dashboard's events)
# wait at most a quarter second; this process's own rows are published at once (`outbox.wake()`).
OUTBOX_POLL_S = 0.25


@dataclass(frozen=True)
class _Delivery:
    generation: int  # connection number: a mid is only valid on the connection that delivered it
    mid: int
    qos: int
    raw: RawMessage


class GatewayService:
    """One gateway process; several can share the load with `shared=True` (MQTT v5 only)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        shared: bool = False,
        batch_size: int = 1000,
        batch_wait_s: float = 0.02,
        stats_every_s: float = 10.0,
        ready_file: Path | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        sweep_every_s: float = 5.0,
        metrics_port: int | None = None,
        rules_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.target = settings.mqtt()
        if shared and self.target.protocol != "5":
            raise ValueError("shared subscriptions need MQTT v5")
        self.shared = shared
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.stats_every_s = stats_every_s
        self.ready_file = ready_file
        self.sweep_every_s = sweep_every_s
        self.metrics_port = metrics_port
        self.rules_file = rules_file
        load_rules(rules_file)  # a broken rules file fails here, at start, not in the writer process
        self.sessions = make_session_factory(engine)  # outbox and metrics; batches go to the writer process
        self.database_url = engine.url.render_as_string(hide_password=False)
        self.metrics = GatewayMetrics()
        self.connected = threading.Event()
        # Bounded: when the store falls behind, paho's network thread waits in `_on_message` and stops
        # reading the socket, so a backlog stays in the broker's persistent queue instead of this process's
        # memory (Mosquitto 2.0 does not honour the Receive Maximum asked for below; the soak's unbounded
        # inbox grew the gateway by 75% in 10 minutes).
        self._inbox: queue.Queue[_Delivery] = queue.Queue(maxsize=INBOX_BATCHES * batch_size)
        self._closing = threading.Event()  # set once nothing will take from the inbox any more
        self._in_flight: deque[tuple[list[_Delivery], float]] = deque()  # sent, not yet answered
        self._interrupted: threading.Event | None = None  # the stop event the writer was interrupted for
        self._generation = 0
        self._stored_through: datetime | None = None  # receipt time of the newest message stored
        # A single gateway keeps its session (default a week): an outage of the gateway loses nothing.
        # A shared-subscription member keeps a SHORT session: Mosquitto drops what is in flight to a member
        # whose session ends (expiry 0 lost ~11% of a stream when a member was killed), while a long session
        # strands the messages queued for a dead member. With a short one, a member restarted by its
        # supervisor within the expiry gets everything back; see docs/gateway.md.
        self.session_expiry_s = SHARED_SESSION_EXPIRY_S if shared else session_expiry_s
        self.client = make_client(self.target, settings.gateway_client_id, persistent=True, manual_ack=True)
        # On MQTT v5 (Mosquitto) the relay rides this connection: a broker that binds client ids to
        # usernames lets one account hold one connection. amqtt (3.1.1 only) needs the relay's own.
        self.outbox = OutboxPublisher(
            self.target,
            f"{settings.gateway_client_id}-outbox",
            self.sessions,
            every_s=OUTBOX_POLL_S,
            client=self.client if self.target.protocol == "5" else None,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the gateway: %s", reason)
            return
        topic = shared_filter(self.settings.gateway_group) if self.shared else UPSTREAM_FILTER
        # Bridge states are retained and few: every member reads them all (a shared subscription is sent
        # no retained message), and recording the same state twice changes nothing.
        client.subscribe([(topic, QOS), (BRIDGE_STATE_FILTER, QOS)])
        log.info("gateway connected to %s:%s, subscribed to %s", self.target.host, self.target.port, topic)

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, reasons: Any, _props: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("broker refused the subscription: %s", reasons)
            return
        self.connected.set()
        if self.outbox.shared:
            self.outbox.link_up()
        if self.ready_file is not None:
            self.ready_file.touch()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._generation += 1
        self.connected.clear()
        if self.outbox.shared:
            self.outbox.link_down()
        log.warning("gateway disconnected (%s); unacknowledged messages will be redelivered", reason)

    def _on_message(self, client: mqtt.Client, _ud: Any, message: mqtt.MQTTMessage) -> None:
        if is_command_topic(message.topic):  # commands go down to devices; the wildcard just sees them pass
            if message.qos > 0:
                client.ack(message.mid, message.qos)
            return
        raw = RawMessage(message.topic, bytes(message.payload), utcnow(), bool(message.retain))
        delivery = _Delivery(self._generation, message.mid, message.qos, raw)
        while not self._closing.is_set():
            try:
                self._inbox.put(delivery, timeout=0.5)
                return
            except queue.Full:
                continue  # flow control: wait for the store (unacknowledged, the broker keeps it)

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; the batch in hand is committed and acknowledged before returning."""
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self._writer = WriterProcess(self.database_url, level, self.rules_file)
        # Receive Maximum: the broker holds a backlog (persistent, unlimited queue), not this process's
        # memory. Three batches cover the two in flight to the writer and the one being collected.
        receive_maximum = min(65535, 3 * self.batch_size)
        connect(
            self.client, self.target, session_expiry_s=self.session_expiry_s, receive_maximum=receive_maximum
        )
        self.client.loop_start()
        next_stats = time.monotonic() + self.stats_every_s
        next_sweep = time.monotonic() + self.sweep_every_s
        outbox_stop = threading.Event()  # `stop`, or this loop ending otherwise (the writer died)
        outbox_thread = threading.Thread(
            target=self.outbox.run, args=(outbox_stop,), name="outbox", daemon=True
        )
        server = None
        if self.metrics_port is not None:
            server, _ = serve_metrics(
                self.metrics, self.sessions, self.settings.metrics_host, self.metrics_port
            )
        outbox_thread.start()
        try:
            while not stop.is_set():
                self._writer.check()  # a dead writer stops the gateway now, not at the next batch or sweep
                # Two batches in flight: the writer commits one while this thread acknowledges the one
                # before and collects the next, instead of each side waiting for the other.
                batch = self._take_batch(IDLE_GAP_S if self._in_flight else 0.2)
                if batch:
                    self._submit(batch)
                self._settle(stop, keep=1 if batch else 0)
                if time.monotonic() >= next_sweep and not stop.is_set():
                    self._sweep(stop)
                    next_sweep = time.monotonic() + self.sweep_every_s
                if time.monotonic() >= next_stats:
                    self._log_stats()
                    next_stats = time.monotonic() + self.stats_every_s
            outbox_stop.set()
            self._settle(stop, keep=0)
            self._drain()
        finally:
            outbox_stop.set()
            self._closing.set()  # a network thread waiting for room in the inbox lets go (unacknowledged)
            self.client.disconnect()
            self.client.loop_stop()
            self._writer.stop()
            outbox_thread.join(10)
            if server is not None:
                server.shutdown()
                server.server_close()
            self._log_stats()

    def _drain(self, quiet_s: float = 1.0, limit_s: float = 5.0) -> None:
        """On a clean stop, store what is still arriving (a device's last "offline", say) until quiet."""
        give_up = threading.Event()  # interrupts a batch stuck on an unavailable database
        timer = threading.Timer(limit_s, give_up.set)
        timer.start()
        last = time.monotonic()
        try:
            while not give_up.is_set() and time.monotonic() - last < quiet_s:
                batch = self._take_batch(0.2)
                if batch:
                    self._submit(batch)
                    last = time.monotonic()
                self._settle(give_up, keep=1 if batch else 0)
            self._settle(give_up, keep=0)
        finally:
            timer.cancel()

    def _ask_writer(self, request: tuple[Any, ...], stop: threading.Event) -> tuple[Any, ...] | None:
        """Send a request (nothing else in flight) and wait for the answer; None if the writer gave up."""
        self._settle(stop, keep=0)
        self._writer.send(request)
        reply = self._wait_reply(stop)
        return None if reply[0] == "stopped" else reply

    def _wait_reply(self, stop: threading.Event) -> tuple[Any, ...]:
        """The writer's next answer; once `stop` is set, ask it to give up waiting for the database."""
        while not self._writer.poll(0.2):  # raises WriterDied, saying what died and how
            if stop.is_set() and self._interrupted is not stop:
                self._writer.send(("interrupt",))  # it answers "stopped" for every batch sent so far
                self._interrupted = stop
        reply: tuple[Any, ...] = self._writer.recv()
        return reply

    def _sweep(self, stop: threading.Event) -> None:
        reply = self._ask_writer(("sweep", self.sweep_clock()), stop)
        self.outbox.wake()  # a sweep may have opened silent faults: their alerts and task events go out now
        if reply is not None and reply[1]:
            log.info("%s devices went stale", reply[1])

    def sweep_clock(self) -> datetime:
        """The time silence is judged at: now when caught up, else the receipt time of the newest stored
        message. Behind a backlog, a device whose messages wait in the queue is not silent; judged by the
        wall clock, a 2-minute backlog made 2,147 devices "silent" in the soak, and opening their faults
        slowed the gateway further."""
        if self._stored_through is None or (self._inbox.empty() and not self._in_flight):
            return utcnow()
        return self._stored_through

    def _submit(self, batch: list[_Delivery]) -> None:
        """Hand a batch to the writer; `_settle` acknowledges it once the writer reports the commit."""
        self._writer.send(("batch", [d.raw for d in batch]))
        self._in_flight.append((batch, time.perf_counter()))

    def _settle(self, stop: threading.Event, keep: int) -> None:
        """Wait for the writer's answers until at most `keep` batches are in flight; acknowledge each
        committed batch, and nothing of a batch the writer gave up on (the broker redelivers it)."""
        while len(self._in_flight) > keep:
            reply = self._wait_reply(stop)
            batch, sent = self._in_flight.popleft()
            if reply[0] == "stopped":
                continue  # unacknowledged: the broker redelivers to our next session
            result: BatchResult = reply[1]
            self._account(result, len(batch), time.perf_counter() - sent)
            newest = max(d.raw.received_at for d in batch)
            self._stored_through = max(newest, self._stored_through or newest)
            if result.incidents:
                self.outbox.wake()  # alerts were just written: publish them now, not at the next poll
            for delivery in batch:
                if delivery.qos > 0 and delivery.generation == self._generation:
                    self.client.ack(delivery.mid, delivery.qos)

    def _take_batch(self, first_wait_s: float) -> list[_Delivery]:
        try:
            batch = [self._inbox.get(timeout=first_wait_s)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                # Keep collecting while messages keep coming; a quiet gap ends the batch, so a lone fault
                # reading is stored (and alerted) within milliseconds instead of waiting for a full batch.
                batch.append(self._inbox.get(timeout=min(remaining, IDLE_GAP_S)))
            except queue.Empty:
                break
        return batch

    def _account(self, result: BatchResult, size: int, seconds: float) -> None:
        m = self.metrics
        m.received += size
        m.stored += result.stored
        m.duplicates += result.duplicates
        m.incidents += result.incidents
        m.dead_letters.update(result.dead_letters)
        m.observe_batch(seconds)

    def _log_stats(self) -> None:
        m = self.metrics
        log.info(
            "gateway: %s received, %s stored, %s duplicates, %s dead-lettered, %s incidents, %s queued",
            m.received,
            m.stored,
            m.duplicates,
            sum(m.dead_letters.values()),
            m.incidents,
            self._inbox.qsize(),
        )
