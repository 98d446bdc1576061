"""`DeviceClient`: what a real sensor box runs to speak MQTT contract v1 (see docs/devices.md).

Birth and will are paired by `session` (Sparkplug's bdSeq): the retained will `offline` is registered before
every connect, the retained birth `online` is published after every connect, and a clean stop publishes a
retained `offline` with `clean: true` itself, because a clean DISCONNECT makes the broker discard the will.
Telemetry and stock go through a bounded on-disk spool (store and forward, devices/spool.py): they leave it,
in order, when the broker acknowledges them, so neither a reboot nor a long outage loses a reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final

from devices.forwarder import Forwarder
from devices.link import BACKOFF_MAX_S, Link
from devices.netloop import NetworkLoop
from devices.spool import DEFAULT_MAX_MESSAGES, DropReport, Spool
from devices.state import DEFAULT_BLOCK, DeviceState
from gateway.contract.payloads import Body, StateMessage, StockReport, Telemetry, encode, parse_payload
from gateway.contract.target import MqttTarget
from gateway.contract.topics import Topic

log = logging.getLogger(__name__)
STOP_TIMEOUT_S: Final = 5.0


def now_utc() -> datetime:
    """The device clock: wall-clock UTC."""
    return datetime.now(UTC)


class DeviceChannel:
    """One device identity on a Link, which it may share (multiplexed mode) or own (DeviceClient).

    Data messages go through the Forwarder's spool; state messages (birth, offline) straight to the link.
    """

    def __init__(
        self,
        community: str,
        site: str,
        device: str,
        state: DeviceState,
        link: Link,
        forwarder: Forwarder,
    ) -> None:
        """Validate the identity (slugs) and remember where to publish."""
        self.topic = Topic(community, site, device, "state")
        self.state = state
        self.link = link
        self.forwarder = forwarder
        self._topics = {kind: str(self.topic.sibling(kind)) for kind in ("telemetry", "stock", "state")}
        forwarder.route(device, link)

    @property
    def device(self) -> str:
        """The device slug."""
        return self.topic.device

    @property
    def session(self) -> int:
        """This run's session number, shared by its birth, will and clean offline."""
        return self.state.session

    @property
    def connected(self) -> bool:
        """True while the underlying connection is up."""
        return self.link.connected

    def birth(self) -> bool:
        """Publish the retained `online` for this session."""
        body = StateMessage("online", self.session, now_utc())
        return self.link.publish(self._topics["state"], encode(body), retain=True)

    def offline(self, *, clean: bool = True) -> bool:
        """Publish the retained clean `offline` that replaces the will on a clean stop.

        `clean=False` publishes what the broker would publish as the will (a simulated lost link on a
        shared connection, which has no will per device).
        """
        body = StateMessage("offline", self.session, now_utc(), clean=clean)
        return self.link.publish(self._topics["state"], encode(body), retain=True)

    def will(self) -> tuple[str, bytes]:
        """The retained last will for this session: topic and payload (no ts: it is set before connecting)."""
        return self._topics["state"], encode(StateMessage("offline", self.session))

    def restart(self) -> None:
        """Start over as a rebooted device process would: state re-read from its file, the next session."""
        old = self.state
        self.state = DeviceState(old.path, old.device, block=old.block, durable=old.durable)

    def next_seq(self) -> int:
        """Reserve the seq of the next telemetry or stock message (unique across restarts)."""
        return self.state.take()

    def publish(self, body: Body, *, validate: bool = False) -> bool:
        """Spool telemetry or a stock report for sending at QoS 1; False if a full spool dropped it.

        With `validate`, a payload the gateway would dead-letter raises ProtocolError (a ValueError) here.
        """
        if isinstance(body, StateMessage):
            raise ValueError("state messages are managed by the client (birth, will, clean stop)")
        if not self.state.issued(body.seq):
            raise ValueError(
                f"seq {body.seq} was not issued by next_seq(); reused or invented seqs get dropped"
            )
        payload = encode(body)
        if validate:
            parse_payload(self.topic.sibling(body.kind), payload)
        return self.forwarder.put(self.device, body.kind, body.seq, self._topics[body.kind], payload)


class DeviceClient:
    """A sensor box's connection: one MQTT client per device identity; use as a context manager."""

    def __init__(
        self,
        target: MqttTarget,
        community: str,
        site: str,
        device: str,
        *,
        state_dir: Path | str,
        loop: NetworkLoop | None = None,
        client_id: str | None = None,
        keepalive: int = 30,
        seq_block: int = DEFAULT_BLOCK,
        durable: bool = True,
        max_queued: int = 10_000,
        spool_max: int = DEFAULT_MAX_MESSAGES,
        forwarder: Forwarder | None = None,
        max_backoff: float = BACKOFF_MAX_S,
    ) -> None:
        """Load (and bump) the persisted session, open the spool, set up the will; nothing connects yet.

        The spool is `<state_dir>/<device>.spool.sqlite` holding at most `spool_max` messages, unless a
        `forwarder` (with its own spool, shared by a fleet) is given.
        """
        # Build the topic first: it rejects bad slugs before any state file is written.
        state_topic = str(Topic(community, site, device, "state"))
        state = DeviceState(Path(state_dir) / f"{device}.json", device, block=seq_block, durable=durable)
        self._own_loop = loop is None
        self._loop = loop if loop is not None else NetworkLoop(name=f"rhizome-{device}")
        will = (state_topic, encode(StateMessage("offline", state.session)))  # no ts: set before connecting
        link = Link(
            target,
            client_id or f"rhizome-dev-{device}",
            self._loop,
            will=will,
            keepalive=keepalive,
            max_queued=max_queued,
            max_backoff=max_backoff,
        )
        link.on_connected(lambda: self.channel.birth())  # first: the birth goes out before any replay
        self._own_spool = forwarder is None
        if forwarder is None:
            spool = Spool(Path(state_dir) / f"{device}.spool.sqlite", max_messages=spool_max, durable=durable)
            forwarder = Forwarder(spool, self._loop)
        self.channel = DeviceChannel(community, site, device, state, link, forwarder)
        self._started = False
        self._stopped = False

    @property
    def device(self) -> str:
        """The device slug."""
        return self.channel.device

    @property
    def session(self) -> int:
        """This run's session number."""
        return self.channel.session

    @property
    def connected(self) -> bool:
        """True while connected to the broker."""
        return self.channel.connected

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker: spooled data plus state messages in flight."""
        link, forwarder = self.channel.link, self.channel.forwarder
        return self.queued + max(0, link.pending - forwarder.in_flight(link))

    @property
    def queued(self) -> int:
        """Telemetry and stock messages in the spool (sent or not) that the broker has not acknowledged."""
        return self.channel.forwarder.spool.count(self.device)

    @property
    def dropped(self) -> int:
        """Messages the full spool ever dropped for this device (reported in the log on reconnect)."""
        return self.channel.forwarder.spool.dropped(self.device)

    def on_drops(self, hook: Callable[[DropReport], object]) -> None:
        """Call `hook(report)` when the client reports drops on (re)connect; runs on the network thread."""
        device = self.device
        self.channel.forwarder.on_drops(lambda report: hook(report) if report.device == device else None)

    def start(self, wait: float | None = 10.0) -> bool:
        """Start connecting (retried with backoff); with `wait`, block until connected; True if connected."""
        if self._started:
            raise RuntimeError(f"{self.device}: DeviceClient can only be started once")
        self._started = True
        if self._own_loop:
            self._loop.start()
        self.channel.link.open()
        return self.channel.link.wait_connected(wait) if wait else self.connected

    def next_seq(self) -> int:
        """Reserve the seq for a message you build yourself and pass to publish()."""
        return self.channel.next_seq()

    def publish(self, body: Body) -> bool:
        """Publish telemetry or a stock report at QoS 1 through the spool (kept on disk while disconnected).

        Raises ProtocolError (a ValueError) for a payload the gateway would reject, e.g. an unknown metric.
        """
        return self.channel.publish(body, validate=True)

    def send_telemetry(self, metrics: dict[str, float | bool], faults: tuple[str, ...] = ()) -> bool:
        """Publish measurements stamped with the next seq and the current time."""
        return self.publish(Telemetry(self.next_seq(), now_utc(), metrics, faults))

    def send_stock(self, levels: dict[str, float]) -> bool:
        """Publish absolute stock levels stamped with the next seq and the current time."""
        return self.publish(StockReport(self.next_seq(), now_utc(), levels))

    def flush(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Wait until the broker acknowledged everything published so far (data and state messages)."""
        deadline = time.monotonic() + timeout
        if not self.channel.forwarder.wait_empty(timeout, self.device):
            return False
        return self.channel.link.flush(max(0.0, deadline - time.monotonic()))

    def announce_offline(self) -> bool:
        """First half of a clean stop: queue the retained clean `offline` (only if connected to send it)."""
        return self.connected and self.channel.offline()

    def begin_close(self) -> None:
        """Second half of a clean stop: send DISCONNECT; call after flush() so nothing is cut off."""
        self.channel.link.begin_close()

    def finish_close(self, timeout: float) -> bool:
        """Last step of a clean stop: wait for the disconnect, persist the exact seq, stop a private loop."""
        clean = not self._started or self.channel.link.wait_closed(timeout)
        self.channel.state.close()
        if self._own_loop:
            self._loop.stop(timeout)
        if self._own_spool:
            if self.queued:
                log.info("%s: %s messages stay in the spool for the next start", self.device, self.queued)
            self.channel.forwarder.spool.close()
        return clean

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Clean stop: spooled readings out, retained clean `offline`, acknowledgements (bounded), DISCONNECT.

        The readings go first: a reading arriving after the `offline` would make the gateway think the
        device is back.
        """
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        if self._started:
            if self.connected:
                self.channel.forwarder.wait_empty(timeout, self.device)
            self.announce_offline()
            if not self.flush(max(0.0, deadline - time.monotonic())):
                log.warning("%s: %s messages unacknowledged at stop", self.device, self.pending)
            self.begin_close()
        if not self.finish_close(max(0.1, deadline - time.monotonic())):
            log.warning("%s: no clean disconnect within %.1f s", self.device, timeout)

    def __enter__(self) -> DeviceClient:
        """Start and wait for the connection (readings are queued if it is not up yet)."""
        if not self._started:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop cleanly, even when the block raised."""
        self.stop()
