"""Lossless ingestion under crashes, with the broker configured as shipped (gateway/mosquitto/mosquitto.conf):
`kill -9` of the gateway mid-stream, and a member of a shared subscription killed mid-stream."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.broker import BrokerAccount, EmbeddedBroker, find_mosquitto
from gateway.db import make_session_factory
from gateway.models import Reading
from gateway.mqtt import connect, make_client
from gateway.protocol import QOS, MqttTarget, Telemetry, encode
from gateway.region import load_region
from tests.conftest import tiny_region_data

pytestmark = [pytest.mark.network, pytest.mark.slow]
ACCOUNT = BrokerAccount("crash-test", secrets.token_urlsafe(12))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """Our own Mosquitto with the shipped config (the machine's one drops QoS 1 beyond 1,000 queued)."""
    if find_mosquitto() is None:
        if os.environ.get("RHIZOME_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("mosquitto is required in CI")
        pytest.skip("mosquitto is not installed")
    with EmbeddedBroker(tmp_path / "broker", [ACCOUNT], prefer="mosquitto") as broker:
        yield broker


class Gateway:
    """A `rhizome gateway` subprocess that can be killed and restarted."""

    def __init__(self, tmp: Path, url: str, db: str, client_id: str, *extra: str) -> None:
        self.tmp, self.url, self.db, self.client_id, self.extra = tmp, url, db, client_id, extra
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        ready = self.tmp / f"{self.client_id}.{self.starts}.ready"
        args = ["--mqtt", self.url, "--db", self.db, "--log-level", "WARNING", "gateway"]
        args += ["--client-id", self.client_id, "--ready-file", str(ready), *self.extra]
        with (self.tmp / f"{self.client_id}.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", *args], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert self.process.poll() is None, (self.tmp / f"{self.client_id}.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "gateway not ready in 30 s"
            time.sleep(0.02)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def publish_stream(target: MqttTarget, topics: list[str], count: int, tag: str) -> None:
    """`count` QoS 1 telemetry messages round-robin over `topics`, every one acknowledged by the broker."""
    client = make_client(target, f"pub-{tag}")
    client.max_inflight_messages_set(200)
    connect(client, target)
    client.loop_start()
    infos = []
    ts = datetime.now(UTC)
    for i in range(count):
        body = Telemetry(i // len(topics) + 1, ts, {"flow_lpm": float(i % 50)})
        topic = topics[i % len(topics)]
        while (info := client.publish(topic, encode(body), qos=QOS)).rc != mqtt.MQTT_ERR_SUCCESS:
            time.sleep(0.001)
        infos.append(info)
    for info in infos[-500:]:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def stored(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Reading)) or 0


def wait_for_count(engine: Engine, expected: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    n = stored(engine)
    while n < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        n = stored(engine)
    time.sleep(1.0)  # anything extra (a duplicate would be refused by the unique key, but look anyway)
    return stored(engine)


def region_topics(engine: Engine, devices: int) -> list[str]:
    region = tiny_region_data()
    site = region["communities"][0]["sites"][0]
    site["devices"] = [
        {"slug": f"utuado-pump-1-d{i}", "kind": "pump", "interval_s": 60} for i in range(devices)
    ]
    with make_session_factory(engine).begin() as session:
        load_region(session, region)
    return [f"rhizome/v1/utuado/pump-1/utuado-pump-1-d{i}/telemetry" for i in range(devices)]


def test_kill_9_at_five_random_moments_loses_and_duplicates_nothing(
    mosquitto: EmbeddedBroker, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    total = 50_000
    topics = region_topics(engine, 50)
    url = mosquitto.url(ACCOUNT)
    gateway = Gateway(tmp_path, url, database_url, f"gw-{uuid.uuid4().hex[:6]}")
    gateway.start()  # creates the persistent session before the stream begins
    publisher = threading.Thread(
        target=publish_stream, args=(MqttTarget.from_url(url), topics, total, "k9"), daemon=True
    )
    rng = random.Random(2026)
    try:
        publisher.start()
        for _ in range(5):
            time.sleep(rng.uniform(0.3, 1.5))
            gateway.kill()
            gateway.start()
        publisher.join(180)
        assert not publisher.is_alive()
        assert wait_for_count(engine, total) == total
    finally:
        gateway.stop()
    assert gateway.starts == 6


def test_a_shared_subscription_member_killed_and_restarted_mid_stream_loses_nothing(
    mosquitto: EmbeddedBroker, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    total = 20_000
    topics = region_topics(engine, 40)
    url = mosquitto.url(ACCOUNT)
    group = f"g{uuid.uuid4().hex[:6]}"
    first = Gateway(tmp_path, url, database_url, f"{group}-a", "--shared", "--group", group)
    second = Gateway(tmp_path, url, database_url, f"{group}-b", "--shared", "--group", group)
    first.start()
    second.start()
    publisher = threading.Thread(
        target=publish_stream, args=(MqttTarget.from_url(url), topics, total, "sh"), daemon=True
    )
    try:
        publisher.start()
        time.sleep(1.0)
        first.kill()
        time.sleep(1.0)
        first.start()  # what systemd's Restart=always does; its session (120 s) still holds its messages
        publisher.join(180)
        assert not publisher.is_alive()
        assert wait_for_count(engine, total, timeout=60) == total
    finally:
        first.stop()
        second.stop()
