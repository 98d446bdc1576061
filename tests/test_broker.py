"""Tests for the embedded broker: authentication, QoS 1 delivery, persistent sessions and clean shutdown."""

from __future__ import annotations

import base64
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.broker.embedded import (
    MOSQUITTO_CONF,
    BrokerAccount,
    BrokerError,
    EmbeddedBroker,
    find_mosquitto,
    mosquitto_hash,
    render_mosquitto_conf,
)
from gateway.process.procutil import die_with_parent, free_port, port_open, wait_for_port

WAIT = 5.0
ACCOUNT = BrokerAccount("gateway-1", "s3cr:et/p@ss word")
KINDS = (["mosquitto"] if find_mosquitto() else []) + ["amqtt"]


class Probe:
    """A paho-mqtt 2.x client wrapped with events, so tests can wait on broker replies with timeouts."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        account: BrokerAccount | None,
        client_id: str = "",
        *,
        clean: bool = True,
    ) -> None:
        self.v5 = broker.protocol == "5"
        self.broker = broker
        self.clean = clean
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            clean_session=None if self.v5 else clean,
        )
        if account is not None:
            self.client.username_pw_set(account.username, account.password)
        self.connack = threading.Event()
        self.reason: ReasonCode | None = None
        self.session_present = False
        self.suback = threading.Event()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_args: self.suback.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)

    def _on_connect(
        self, _c: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: ReasonCode, _p: object
    ) -> None:
        self.reason, self.session_present = rc, flags.session_present
        self.connack.set()

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK reason code (fails the test if none arrives in time)."""
        kwargs: dict[str, object] = {}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if self.clean else 300
            kwargs = {"clean_start": self.clean, "properties": props}
        self.client.connect("127.0.0.1", self.broker.port, keepalive=10, **kwargs)
        self.client.loop_start()
        assert self.connack.wait(WAIT), "no CONNACK from broker"
        assert self.reason is not None
        return self.reason

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        self.suback.clear()
        self.client.subscribe(topic, qos=1)
        assert self.suback.wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the PUBACK."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), "no PUBACK"

    def receive(self) -> mqtt.MQTTMessage:
        """Next delivered message, or fail after the timeout."""
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        """Disconnect cleanly (keeping a persistent session, if any) and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(params=KINDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A started embedded broker of each available kind with one account."""
    with EmbeddedBroker(tmp_path, [ACCOUNT], prefer=request.param) as started:
        assert started.kind == request.param
        yield started


def _topic() -> str:
    return f"rhizome/test/{uuid.uuid4().hex}"


@pytest.mark.network
def test_authenticated_qos1_roundtrip(broker: EmbeddedBroker) -> None:
    probe = Probe(broker, ACCOUNT)
    try:
        assert not probe.connect().is_failure
        topic = _topic()
        probe.subscribe(topic)
        probe.publish(topic, b"reading-1")
        msg = probe.receive()
        assert (msg.topic, msg.payload, msg.qos) == (topic, b"reading-1", 1)
    finally:
        probe.close()


@pytest.mark.parametrize(
    "account",
    [BrokerAccount(ACCOUNT.username, "wrong"), BrokerAccount("nobody", ACCOUNT.password), None],
    ids=["wrong-password", "unknown-user", "anonymous"],
)
@pytest.mark.network
def test_bad_credentials_are_refused(broker: EmbeddedBroker, account: BrokerAccount | None) -> None:
    probe = Probe(broker, account)
    try:
        assert probe.connect().is_failure
    finally:
        probe.close()


@pytest.mark.network
def test_persistent_session_keeps_qos1_messages(broker: EmbeddedBroker) -> None:
    topic, client_id = _topic(), f"sub-{uuid.uuid4().hex[:8]}"
    subscriber = Probe(broker, ACCOUNT, client_id, clean=False)
    assert not subscriber.connect().is_failure
    subscriber.subscribe(topic)
    subscriber.close()

    publisher = Probe(broker, ACCOUNT)
    try:
        assert not publisher.connect().is_failure
        for i in range(3):
            publisher.publish(topic, f"queued-{i}".encode())
    finally:
        publisher.close()

    again = Probe(broker, ACCOUNT, client_id, clean=False)
    try:
        assert not again.connect().is_failure
        assert again.session_present
        got = sorted(again.receive().payload for _ in range(3))
        assert got == [b"queued-0", b"queued-1", b"queued-2"]
    finally:
        again.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.network
def test_stop_ends_process_and_closes_port(tmp_path: Path, kind: str) -> None:
    broker = EmbeddedBroker(tmp_path, [ACCOUNT], prefer=kind)  # type: ignore[arg-type]
    broker.start()
    pid, port = broker.pid, broker.port
    assert pid is not None and port_open("127.0.0.1", port)
    broker.stop()
    broker.stop()  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not port_open("127.0.0.1", port)
    assert broker.pid is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.network
def test_start_failure_reports_log_tail(tmp_path: Path, kind: str) -> None:
    with socket.socket() as blocker:  # bound but not listening: the broker cannot bind, probes are refused
        blocker.bind(("127.0.0.1", 0))
        broker = EmbeddedBroker(tmp_path, [ACCOUNT], prefer=kind, port=blocker.getsockname()[1])  # type: ignore[arg-type]
        with pytest.raises(BrokerError, match="exited with code"):
            broker.start()
    assert broker.pid is None


def test_port_in_use_is_rejected(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(tmp_path, [ACCOUNT], prefer="amqtt", port=other.getsockname()[1]).start()


def test_url_percent_encodes_credentials(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path, [ACCOUNT], port=18830)
    assert broker.url(ACCOUNT) == "mqtt://gateway-1:s3cr%3Aet%2Fp%40ss%20word@127.0.0.1:18830"
    assert broker.url() == "mqtt://127.0.0.1:18830"


def test_accounts_are_required_and_validated(tmp_path: Path) -> None:
    with pytest.raises(BrokerError):
        EmbeddedBroker(tmp_path, [])
    with pytest.raises(BrokerError):
        EmbeddedBroker(tmp_path, [BrokerAccount("a:b", "x")])


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
@pytest.mark.slow
def test_mosquitto_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    pw_file = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw_file), "u", "pässword"], check=True, timeout=WAIT)
    _user, reference = pw_file.read_text(encoding="utf-8").strip().split(":", 1)
    _, version, iterations, salt_b64, _digest = reference.split("$")
    assert version == "7"
    salt = base64.b64decode(salt_b64)
    assert mosquitto_hash("pässword", salt=salt, iterations=int(iterations)) == reference


def test_shipped_mosquitto_conf_is_rendered_without_duplicates() -> None:
    template = MOSQUITTO_CONF.read_text(encoding="utf-8")
    active = [line.split()[0] for line in template.splitlines() if line.strip() and not line.startswith("#")]
    assert "message_size_limit" not in active
    for required in ("allow_anonymous", "per_listener_settings", "max_queued_messages", "max_packet_size"):
        assert required in active
    rendered = render_mosquitto_conf(template, [("listener", "1999 127.0.0.1"), ("password_file", "/x")])
    keys = [line.split()[0] for line in rendered.splitlines() if line.strip() and not line.startswith("#")]
    assert len(keys) == len(set(keys))
    # The listener's own option follows the new listener line (above it, it would open a default listener).
    assert keys[-2:] == ["listener", "use_username_as_clientid"]
    assert rendered.rstrip().splitlines()[-2:] == ["listener 1999 127.0.0.1", "use_username_as_clientid true"]
    dropped = render_mosquitto_conf(template, [("listener", "1999 127.0.0.1")], ["use_username_as_clientid"])
    assert dropped.rstrip().splitlines()[-1] == "listener 1999 127.0.0.1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.slow
def test_die_with_parent_sets_pdeathsig() -> None:
    code = (
        "import ctypes; v = ctypes.c_int(); "
        "ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); print(v.value)"  # 2 = PR_GET_PDEATHSIG
    )
    out = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=die_with_parent, capture_output=True, text=True, timeout=WAIT
    )
    assert out.stdout.strip() == str(int(signal.SIGTERM))


def test_wait_for_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_for_port("127.0.0.1", server.getsockname()[1], timeout=1.0)
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", free_port(), timeout=0.3)


@pytest.mark.network
def test_auto_falls_back_to_amqtt_without_mosquitto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.broker.embedded.find_mosquitto", lambda: None)
    with EmbeddedBroker(tmp_path, [ACCOUNT]) as started:
        assert (started.kind, started.protocol) == ("amqtt", "3.1.1")
    with pytest.raises(BrokerError, match="mosquitto requested"):
        EmbeddedBroker(tmp_path, [ACCOUNT], prefer="mosquitto").start()
