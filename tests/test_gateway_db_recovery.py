"""The store comes back: the gateway resumes within seconds of the database's return, not at its next backoff.

The outage is a TCP proxy between the gateway and the shared PostgreSQL that the test closes (open connections
cut, new ones refused) and reopens on the same port, so the server other tests use stays up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from gateway.contract.client import connect, make_client
from gateway.contract.payloads import Telemetry, encode
from gateway.contract.target import MqttTarget
from gateway.contract.topics import QOS
from gateway.process.procutil import free_port
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade
from tests.conftest import ShippedBroker
from tests.gateway_procs import Gateway, region_topics, stored, wait_for_count

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.postgres]

OUTAGE_S = 8.0  # long enough that the old backoff (0.5, 1, 2, 4, 8 s...) waited ~7 s past the return


class SwitchableProxy:
    """A loopback TCP proxy to `upstream`; `cut()` closes the listener and every open connection (the
    database is gone), `restore()` listens again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: the same port again
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by cut()
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _paced_stream(target: MqttTarget, topics: list[str], stop: threading.Event, sent: list[int]) -> None:
    """QoS 1 telemetry every 10 ms until `stop`; `sent` gets how many were published and acknowledged."""
    client = make_client(target, f"pub-{uuid.uuid4().hex[:6]}")
    connect(client, target)
    client.loop_start()
    deadline = time.monotonic() + 30
    while not client.is_connected():  # a publish before the CONNACK is refused (rc "not connected")
        assert time.monotonic() < deadline, "the publisher could not connect"
        time.sleep(0.05)
    infos: list[mqtt.MQTTMessageInfo] = []
    now = datetime.now(UTC)
    while not stop.is_set():
        i = len(infos)
        body = Telemetry(i // len(topics) + 1, now, {"flow_lpm": float(i % 50)})
        infos.append(client.publish(topics[i % len(topics)], encode(body), qos=QOS))
        stop.wait(0.01)
    deadline = time.monotonic() + 30
    while not all(info.is_published() for info in infos) and time.monotonic() < deadline:
        time.sleep(0.05)
    sent.extend((len(infos), sum(1 for info in infos if info.is_published())))
    client.disconnect()
    client.loop_stop()


def _first_store_after(engine: Engine, before: int, timeout: float) -> float:
    """Seconds until the readings table holds more than `before` rows."""
    start = time.monotonic()
    while stored(engine) <= before:
        assert time.monotonic() - start < timeout, "nothing stored after the database came back"
        time.sleep(0.02)
    return time.monotonic() - start


def test_the_gateway_stores_again_within_3_s_of_the_database_returning(
    shipped_mosquitto: ShippedBroker, postgres_url: str, tmp_path: Path
) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    topics = region_topics(engine, 10)
    direct = make_url(postgres_url)
    proxy = SwitchableProxy((direct.host or "127.0.0.1", direct.port or 5432))
    proxy.restore()
    via_proxy = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    gateway = Gateway(tmp_path, shipped_mosquitto.url, via_proxy, f"gw-{uuid.uuid4().hex[:6]}")
    gateway.start()
    stop, sent = threading.Event(), []
    publisher = threading.Thread(
        target=_paced_stream, args=(MqttTarget.from_url(shipped_mosquitto.url), topics, stop, sent)
    )
    try:
        publisher.start()
        _first_store_after(engine, 0, timeout=10)
        proxy.cut()
        time.sleep(OUTAGE_S)
        before = stored(engine)
        proxy.restore()
        recovery_s = _first_store_after(engine, before, timeout=40)
        time.sleep(1.0)
        stop.set()
        publisher.join(60)
        assert not publisher.is_alive()
        published, acknowledged = sent
        assert acknowledged == published, "the broker did not acknowledge every reading"
        assert wait_for_count(engine, published, timeout=60) == published  # each reading stored once
        assert gateway.process is not None and gateway.process.poll() is None, "the gateway died"
    finally:
        stop.set()
        gateway.stop()
        proxy.cut()
        engine.dispose()
    print(f"stored again {recovery_s:.2f} s after the database returned")
    assert recovery_s < 3.0
    log = (tmp_path / f"{gateway.client_id}.log").read_text()
    assert log.count("database unavailable (") == 1, log  # the outage is logged once, not once a retry
    assert "database back after" in log
