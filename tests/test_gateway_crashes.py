"""Lossless ingestion under crashes, with the broker configured as shipped
(gateway/broker/mosquitto/mosquitto.conf):
`kill -9` of the gateway mid-stream, and a member of a shared subscription killed and restarted mid-stream."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.contract.target import MqttTarget
from tests.conftest import ShippedBroker
from tests.gateway_procs import (
    Gateway,
    publish_stream,
    region_topics,
    wait_for_count,
)

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_kill_9_at_five_random_moments_loses_and_duplicates_nothing(
    shipped_mosquitto: ShippedBroker, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    total = 50_000
    topics = region_topics(engine, 50)
    url = shipped_mosquitto.url
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
    shipped_mosquitto: ShippedBroker, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    total = 20_000
    topics = region_topics(engine, 40)
    url = shipped_mosquitto.url
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
