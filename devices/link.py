"""One MQTT connection on a NetworkLoop: reconnects by itself and counts unacknowledged QoS 1 messages."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from devices.netloop import NetworkLoop
from gateway.contract.client import make_client
from gateway.contract.target import MqttTarget
from gateway.contract.topics import QOS

log = logging.getLogger(__name__)
BACKOFF_MIN_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0
_QUEUED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)  # NO_CONN: sent on reconnect


def backoff_delay(attempt: int, rng: random.Random, max_s: float = BACKOFF_MAX_S) -> float:
    """Exponential backoff with 'equal jitter', so devices cut off together do not return in lockstep."""
    cap = min(max_s, BACKOFF_MIN_S * 2.0 ** min(attempt, 16))
    return cap / 2 + rng.uniform(0, cap / 2)


class Link:
    """A connection that stays up: open() once, publish at QoS 1 any time, close() to leave cleanly.

    drop() and resume() are for simulating a lost link: the socket dies without DISCONNECT (the broker
    publishes the will) and no reconnect is tried until resume().
    """

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        loop: NetworkLoop,
        *,
        will: tuple[str, bytes] | None = None,
        keepalive: int = 30,
        max_inflight: int = 20,
        max_queued: int = 10_000,
        max_backoff: float = BACKOFF_MAX_S,
        rng: random.Random | None = None,
    ) -> None:
        """Configure the client (and its retained last will, which must be set before connecting)."""
        self.target = target
        self.client_id = client_id
        self.loop = loop
        self.keepalive = keepalive
        self.max_backoff = max_backoff
        # reconnect_delay=None: the loop never runs paho's reconnect; _failed() retries with jittered backoff.
        self.client = make_client(
            target, client_id, max_inflight=max_inflight, max_queued=max_queued, reconnect_delay=None
        )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=QOS, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._rng = rng or random.Random()
        self._cond = threading.Condition()
        self._hooks: list[Callable[[], object]] = []
        self._ack_hooks: list[Callable[[int, bool], object]] = []
        self._connected = False
        self._closing = False
        self._suspended = False
        self._generation = 0  # bumped by resume(): retries scheduled before it are void
        self._closed = threading.Event()
        self._attempt_no = 0
        self._admitted = False
        self._pending = 0
        self.connects = 0
        self.rejected = 0
        self.last_error: str | None = None
        self.event_level = logging.WARNING  # fleets of hundreds lower it and log counts instead

    @property
    def connected(self) -> bool:
        """True between the broker's CONNACK and the loss of the connection."""
        return self._connected

    @property
    def pending(self) -> int:
        """QoS 1 messages handed to paho and not yet acknowledged by the broker."""
        return max(0, self._pending)

    def on_connected(self, hook: Callable[[], object]) -> None:
        """Run `hook` on the loop thread after every successful (re)connect, e.g. to publish a birth."""
        self._hooks.append(hook)

    def on_acked(self, hook: Callable[[int, bool], object]) -> None:
        """Run `hook(mid, rejected)` on the loop thread when the broker acknowledges a message."""
        self._ack_hooks.append(hook)

    def open(self) -> None:
        """Start connecting in the background; failures are retried with backoff until close()."""
        kwargs: dict[str, Any] = {"clean_start": True} if self.target.protocol == "5" else {}
        self.client.connect_async(self.target.host, self.target.port, keepalive=self.keepalive, **kwargs)
        self.loop.attach(self.client)
        self._schedule_attempt(0.0)

    def set_will(self, topic: str, payload: bytes) -> None:
        """Replace the retained last will; it takes effect on the next connect."""
        self.client.will_set(topic, payload, qos=QOS, retain=True)

    def drop(self) -> None:
        """Lose the connection abruptly (no DISCONNECT: the broker publishes the will); stay down."""

        def _drop() -> None:
            self._suspended = True
            sock = self.client.socket()
            if isinstance(sock, socket.socket):  # TLS sockets too; paho's websocket wrapper has no shutdown
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # paho reads EOF next and reports the loss

        self.loop.call_soon(_drop)

    def resume(self) -> None:
        """Reconnect at once after drop() (a fresh backoff sequence)."""

        def _resume() -> None:
            self._suspended = False
            self._generation += 1
            self._attempt_no = 0
            if not self._connected and not self._admitted:
                self._attempt(self._generation)

        self.loop.call_soon(_resume)

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or `timeout` seconds passed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._connected, timeout)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Queue a QoS 1 message (sent now, or after the next reconnect); False if the queue is full."""
        return self.send(topic, payload, retain=retain) is not None

    def send(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """Like publish(), but return the message id that on_acked hooks will see (None: queue full)."""
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc not in _QUEUED:
            log.warning("%s dropped a message to %s: %s", self.client_id, topic, mqtt.error_string(info.rc))
            return None
        with self._cond:
            self._pending += 1
        return info.mid

    def flush(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every queued message; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending <= 0, timeout)

    def begin_close(self) -> None:
        """Send DISCONNECT (a clean one: the broker discards the will) without waiting."""
        self._closing = True

        def _close() -> None:
            if self.client.socket() is None:
                self._closed.set()
            else:
                self.client.disconnect()

        self.loop.call_soon(_close)

    def wait_closed(self, timeout: float) -> bool:
        """Wait for the disconnect to complete, then release the socket whatever happened."""
        done = self._closed.wait(timeout)
        self.loop.detach(self.client)
        return done

    def close(self, timeout: float = 5.0) -> bool:
        """Disconnect cleanly and stop reconnecting; True when the broker saw a clean DISCONNECT in time."""
        self.begin_close()
        return self.wait_closed(timeout)

    def _schedule_attempt(self, delay: float) -> None:
        generation = self._generation
        self.loop.call_later(delay, lambda: self._attempt(generation))

    def _attempt(self, generation: int) -> None:
        if not self._closing and not self._suspended and generation == self._generation:
            self.loop.admit(self._connect)

    def _connect(self) -> None:
        self._admitted = True
        if self._closing or self._suspended:
            self._release()
            return
        try:
            self.client.reconnect()  # blocks for the TCP (and TLS) handshake only; CONNACK comes later
        except (OSError, ValueError) as exc:
            self._release()
            self._failed(str(exc) or type(exc).__name__)

    def _release(self) -> None:
        if self._admitted:
            self._admitted = False
            self.loop.release()

    def _failed(self, why: str) -> None:
        self.last_error = why
        if self._suspended:
            return  # dropped on purpose: resume() reconnects
        delay = backoff_delay(self._attempt_no, self._rng, self.max_backoff)
        self._attempt_no += 1
        level = (
            self.event_level if self._attempt_no in (1, 5) or self._attempt_no % 20 == 0 else logging.DEBUG
        )
        log.log(
            level, "%s cannot connect (%s), retry %s in %.1f s", self.client_id, why, self._attempt_no, delay
        )
        self._schedule_attempt(delay)

    def _on_connect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._release()
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            return  # paho closes the socket next and calls _on_disconnect, which schedules the retry
        with self._cond:
            self._connected = True
            self._cond.notify_all()
        self._attempt_no = 0
        self.connects += 1
        if self._closing:
            return  # stopping: no birth, the DISCONNECT follows
        for hook in self._hooks:
            hook()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._release()
        with self._cond:
            was_connected, self._connected = self._connected, False
            self._cond.notify_all()
        if self._closing:
            self._closed.set()
            return
        if self._suspended:
            log.debug("%s: link dropped on purpose (%s)", self.client_id, reason)
        elif was_connected:
            log.log(self.event_level, "%s lost its connection (%s), reconnecting", self.client_id, reason)
            self._failed(f"connection lost: {reason}")
        else:
            self._failed(self.last_error or f"disconnected: {reason}")

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        with self._cond:
            self._pending -= 1
            if reason.is_failure:
                self.rejected += 1
            self._cond.notify_all()
        if reason.is_failure:
            log.warning("%s: broker rejected message %s: %s", self.client_id, mid, reason)
        for hook in self._ack_hooks:
            hook(mid, bool(reason.is_failure))
