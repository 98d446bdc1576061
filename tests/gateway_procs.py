"""Helpers for tests that run the gateway as a real process against a Mosquitto with the shipped config."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from gateway.contract.client import connect, make_client
from gateway.contract.payloads import Telemetry, encode
from gateway.contract.target import MqttTarget
from gateway.contract.topics import QOS
from gateway.store.db import make_session_factory
from gateway.store.models import Reading
from gateway.store.region import load_region
from tests.conftest import tiny_region_data


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
                [sys.executable, "-m", "gateway.process.cli", *args], stdout=log, stderr=log
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
