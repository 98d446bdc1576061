"""The federation agent: the one process of a node that talks to other nodes.

It holds the node's key, signs the facts the node's processes write to the store, and keeps every link in
sync: a hello with its vector when a link comes up, the facts the peer lacks, resent until the peer's ack
covers them, and a beat that carries when it last heard from every node (so every node computes who holds
the regional planning role). MQTT threads only queue what arrives; one worker thread owns the store.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.federation import (
    MAX_FRAME_BYTES,
    Fact,
    Frame,
    inbound_topic,
    node_account,
    outbound_topic,
    parse_frame,
)
from gateway.contract.reasons import ProtocolError
from gateway.contract.target import MqttTarget
from gateway.federation.directory import Federation
from gateway.federation.keys import NodeKey, verify
from gateway.federation.links import BEAT_S, RESEND_S, LinkState, holder
from gateway.store import federation as log_store
from gateway.store.models import DeadLetter

log = logging.getLogger(__name__)
BATCH_FACTS = 150  # facts per catch-up round: small enough that a peer's ack (its new vector) stops
# other peers sending the same backlog again within a round or two, after a cut heals
NOTE_EVERY_S = 5.0  # how often what the node knows of others is written to the store


@dataclass
class AgentStats:
    """Counts for logs, the dashboard and the benchmark."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    sent_facts: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0
    signed: int = 0
    frames_in: int = 0
    frames_out: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    """How one node's agent runs."""

    name: str
    home: MqttTarget  # this node's own broker
    beat_s: float = BEAT_S
    resend_s: float = RESEND_S
    tick_s: float = 0.2
    password_for: Callable[[str], str | None] = lambda _peer: (
        None
    )  # node-<name>'s password on a peer's broker


class Agent:
    """Runs the links of one node until `stop()`."""

    def __init__(
        self,
        config: AgentConfig,
        federation: Federation,
        key: NodeKey,
        sessions: sessionmaker[Session],
        *,
        on_tick: Callable[[Session], None] | None = None,
    ) -> None:
        if config.name not in federation.nodes:
            raise ValueError(f"node {config.name!r} is not in the federation file")
        if federation.nodes[config.name].public_key != key.public:
            raise ValueError(
                f"the key in the data dir is not node {config.name!r}'s key in the federation file"
            )
        self.config = config
        self.name = config.name
        self.federation = federation
        self.key = key
        self.sessions = sessions
        self.on_tick = on_tick
        self.stats = AgentStats()
        self.links: dict[str, LinkState] = {
            peer: LinkState(peer, dials, beat_s=config.beat_s, resend_s=config.resend_s)
            for peer, dials in federation.peers_of(config.name)
        }
        self._inbox: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self._clients: dict[str, mqtt.Client] = {}  # "" is the home broker, else the peer dialled
        self._heard: dict[str, float] = {}  # node -> monotonic time last heard (directly or by beats)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._mine: dict[str, int] = {}
        self._noted_at = 0.0
        self._stale = False
        self._held: list[tuple[str, str, bytes]] | None = None  # frames waiting for the tick's commit
        self.paused = threading.Event()  # tests: set to stop handling (a node frozen, not cut)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect home and to every peer this node dials; start the worker."""
        home = self._client("", self.config.home, f"rhizome-fed-{self.name}")
        home.on_connect = self._on_home_connect
        home.on_disconnect = lambda *_a: self._inbox.put(("conn", "", False))
        home.on_message = self._on_message
        for peer, link in self.links.items():
            if not link.dials:
                continue
            target = self.federation.broker_of(peer, node_account(self.name), self.config.password_for(peer))
            client = self._client(peer, target, node_account(self.name))
            client.will_set(inbound_topic(peer, self.name), Frame("bye", self.name).encode(), qos=1)
            client.on_connect = self._dial_connected(peer)
            client.on_disconnect = self._dial_dropped(peer)
            client.on_message = self._on_message
        with self.sessions.begin() as session:
            self.stats.signed += log_store.sign_pending(session, self.name, self.key.sign, limit=100_000)
            self._mine = log_store.have_vector(session)
            for peer in self.links:
                log_store.note_node(session, peer, direct=True, link_up=False, heard_at=None)
        for peer, client in self._clients.items():
            target = self.config.home if peer == "" else self._target_of(peer)
            client.connect_async(target.host, target.port, keepalive=max(5, int(self.config.beat_s * 3)))
            client.loop_start()
        if not self.federation.lease_is_safe():
            log.warning(
                "federation file: lease_s %s is short for beats relayed over %s links (beat_s %s): a live "
                "planning-role holder may be taken for gone; use at least %s s",
                self.federation.lease_s,
                self.federation.diameter(),
                self.federation.beat_s,
                self.federation.beat_s * (self.federation.diameter() + 3),
            )
        self._worker = threading.Thread(target=self._run, name=f"fed-{self.name}", daemon=True)
        self._worker.start()
        log.info(
            "federation agent %s: %s links, holds %s facts",
            self.name,
            len(self.links),
            sum(self._mine.values()),
        )

    def stop(self) -> None:
        """Say bye on every link, disconnect, and stop the worker."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(10)
        for peer, link in self.links.items():
            if link.connected:
                self._send(peer, Frame("bye", self.name))
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()

    def holder(self) -> str | None:
        """Who holds the regional planning role, as this node sees it now."""
        now = time.monotonic()
        ages = {node: now - at for node, at in self._heard.items()}
        return holder(self.federation.planner_order(), ages, self.federation.lease_s, self.name)

    def link_up(self, peer: str) -> bool:
        """Whether the link to `peer` is up now."""
        return self.links[peer].up(time.monotonic())

    # -- MQTT callbacks (paho's threads: queue only) ---------------------------------------------------------

    def _client(self, key: str, target: MqttTarget, client_id: str) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if target.protocol == "5" else mqtt.MQTTv311,
        )
        if target.username:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set(ca_certs=target.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(1, 10)
        client.user_data_set(key)
        self._clients[key] = client
        return client

    def _target_of(self, peer: str) -> MqttTarget:
        return self.federation.broker_of(peer, node_account(self.name), self.config.password_for(peer))

    def _on_home_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("federation %s: home broker refused us: %s", self.name, reason)
            return
        client.subscribe(inbound_topic(self.name, "+"), qos=1)
        self._inbox.put(("conn", "", True))

    def _dial_connected(self, peer: str) -> Callable[..., None]:
        def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            if getattr(reason, "is_failure", False):
                log.warning("federation %s: %s's broker refused us: %s", self.name, peer, reason)
                # The password may have been handed over since: the next attempt reads it again.
                client.username_pw_set(node_account(self.name), self.config.password_for(peer))
                return
            client.subscribe(outbound_topic(peer, self.name), qos=1)
            self._inbox.put(("conn", peer, True))

        return on_connect

    def _dial_dropped(self, peer: str) -> Callable[..., None]:
        def on_disconnect(*_args: Any) -> None:
            self._inbox.put(("conn", peer, False))

        return on_disconnect

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        if len(parts) != 6:
            return
        node, direction, peer = parts[3], parts[4], parts[5]
        # home: <self>/in/<peer>; dialled: <peer>/out/<self>
        sender = peer if (node == self.name and direction == "in") else node
        self._inbox.put(("frame", sender, (message.topic, bytes(message.payload))))

    # -- the worker ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # the loop keeps running: a store hiccup must not end federation
                log.exception("federation %s: tick failed; retrying", self.name)
                self._stop.wait(1.0)
            self._stop.wait(self.config.tick_s)

    def _tick(self) -> None:
        if self.paused.is_set():
            return
        now = time.monotonic()
        self._heard[self.name] = now
        # Frames go out only once the transaction that stored what they promise has committed: an ack sent
        # for facts a failed commit then lost would stop the peer resending them.
        self._held = []
        try:
            self._tick_in(now)
        except BaseException:
            self._held = None
            self._stale = True  # the vector may count facts the rollback took back
            raise
        held, self._held = self._held, None
        for peer, topic, payload in held:
            self._publish(peer, topic, payload)

    def _tick_in(self, now: float) -> None:
        with self.sessions.begin() as session:
            while True:
                try:
                    kind, peer, data = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if kind == "conn":
                    self._connection(peer, bool(data), now)
                elif peer in self.links:
                    self._frame(session, peer, data[0], data[1], now)
                else:
                    self._dead_letter(session, data[0], data[1], "origin_unknown", f"no link with {peer!r}")
            signed = log_store.sign_pending(session, self.name, self.key.sign)
            if signed or self._stale:
                self._mine = log_store.have_vector(session)
                self._stale = False
            self.stats.signed += signed
            for peer, link in self.links.items():
                self._service(session, peer, link, now)
            if now - self._noted_at >= min(NOTE_EVERY_S, self.config.beat_s):
                self._note(session, now)
            if self.on_tick is not None:
                try:
                    with session.begin_nested():  # a failing duty must not take the stored facts with it
                        self.on_tick(session)
                except Exception:
                    log.exception("federation %s: the node's duties failed this tick; retrying", self.name)

    def _connection(self, peer: str, up: bool, now: float) -> None:
        if peer == "":
            for link in self.links.values():
                if not link.dials:
                    if up:
                        link.connected = True
                        self._send(link.peer, Frame("hello", self.name, have=self._mine))
                    else:
                        link.lost()
            return
        link = self.links[peer]
        if up:
            link.connected = True
            self._send(peer, Frame("hello", self.name, have=self._mine))
        else:
            if link.connected:
                log.info("federation %s: link to %s dropped", self.name, peer)
            link.lost()

    def _frame(self, session: Session, peer: str, topic: str, payload: bytes, now: float) -> None:
        link = self.links[peer]
        link.received_bytes += len(payload)
        self.stats.received_bytes += len(payload)
        self.stats.frames_in += 1
        try:
            frame, bad = parse_frame(payload)
        except ProtocolError as exc:
            self._dead_letter(session, topic, payload, exc.reason, exc.detail)
            return
        if frame.node != peer:
            self._dead_letter(
                session, topic, payload, "fact_conflict", f"frame says {frame.node!r} on {peer!r}'s topic"
            )
            return
        for raw, error in bad:
            log_store.dead_letter_fact(session, peer, self.name, raw, error)
            self._count_reject(error.reason)
        if frame.type == "bye":
            link.heard_at = None
            link.known = False
            log.info("federation %s: %s said bye", self.name, peer)
            return
        just_up = link.heard(now)
        self._heard[peer] = now
        if just_up:
            log.info("federation %s: link to %s up", self.name, peer)
        if frame.type == "hello":
            link.reset(frame.have)
            self._send(peer, Frame("ack", self.name, have=self._mine))
        elif frame.type == "ack":
            link.learn(frame.have)
        elif frame.type == "facts":
            result = log_store.store_facts(
                session,
                frame.facts,
                via=peer,
                self_name=self.name,
                key_of=lambda origin: self._key_of(origin),
                verify=verify,
            )
            self.stats.stored += len(result.stored)
            self.stats.duplicates += result.duplicates
            for reason, count in result.rejected.items():
                self._count_reject(reason, count)
            if result.stored:
                session.flush()
                self._mine = log_store.have_vector(session)
            self._send(peer, Frame("ack", self.name, have=self._mine))
        elif frame.type == "beat":
            for node, age in frame.heard.items():
                if node != self.name:
                    at = now - age
                    if at > self._heard.get(node, float("-inf")):
                        self._heard[node] = at
        if just_up and frame.type != "hello":
            self._send(peer, Frame("hello", self.name, have=self._mine))

    def _service(self, session: Session, peer: str, link: LinkState, now: float) -> None:
        if link.ask_due(now):
            self._send(peer, Frame("hello", self.name, have=self._mine))
            link.asked_at = now
        if link.beat_due(now):
            heard = {node: max(0.0, now - at) for node, at in self._heard.items()}
            self._send(peer, Frame("beat", self.name, heard=heard))
            link.beat_at = now
        if link.may_send(now) and link.lacks(self._mine):
            facts = log_store.facts_above(session, link.their_have, BATCH_FACTS)
            if not facts:
                return
            size = 0
            for frame in _pack(self.name, facts):
                size += self._send(peer, frame)
            link.sent(now, len(facts), size)
            self.stats.sent_facts += len(facts)

    def _send(self, peer: str, frame: Frame) -> int:
        """Send `frame` to `peer`: at once, or after the tick's commit while a tick is running."""
        link = self.links[peer]
        topic = inbound_topic(peer, self.name) if link.dials else outbound_topic(self.name, peer)
        payload = frame.encode()
        if self._held is not None:
            self._held.append((peer, topic, payload))
        else:
            self._publish(peer, topic, payload)
        return len(payload)

    def _publish(self, peer: str, topic: str, payload: bytes) -> None:
        link = self.links[peer]
        client = self._clients[peer] if link.dials else self._clients[""]
        client.publish(topic, payload, qos=1)
        link.sent_bytes += len(payload)
        self.stats.sent_bytes += len(payload)
        self.stats.frames_out += 1

    def _note(self, session: Session, now: float) -> None:
        wall = datetime.now(UTC)
        for node, at in self._heard.items():
            if node == self.name:
                continue
            link = self.links.get(node)
            heard_at = wall - timedelta(seconds=now - at)
            log_store.note_node(
                session,
                node,
                direct=link is not None,
                link_up=None if link is None else link.up(now),
                heard_at=heard_at,
            )
        for peer, link in self.links.items():
            if peer not in self._heard:
                log_store.note_node(session, peer, direct=True, link_up=link.up(now), heard_at=None)
        self._noted_at = now

    def _key_of(self, origin: str) -> str | None:
        entry = self.federation.nodes.get(origin)
        return None if entry is None else entry.public_key

    def _dead_letter(self, session: Session, topic: str, payload: bytes, reason: str, detail: str) -> None:
        session.add(DeadLetter(topic=topic[:1024], payload=payload, reason=reason, detail=detail[:500]))
        self._count_reject(reason)

    def _count_reject(self, reason: str, count: int = 1) -> None:
        self.stats.rejected += count
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + count


def _pack(node: str, facts: list[Fact]) -> list[Frame]:
    """Facts in frames that each stay under the broker's packet limit."""
    frames: list[Frame] = []
    batch: list[Fact] = []
    size = 64
    for fact in facts:
        cost = len(Frame("facts", node, facts=(fact,)).encode()) - 40
        if batch and size + cost > MAX_FRAME_BYTES:
            frames.append(Frame("facts", node, facts=tuple(batch)))
            batch, size = [], 64
        batch.append(fact)
        size += cost
    if batch:
        frames.append(Frame("facts", node, facts=tuple(batch)))
    return frames
