"""Ingestion benchmark: drain a backlog of contract messages with a bare paho subscriber (the baseline) and
with the gateway storing everything on SQLite and on PostgreSQL, in one run; then fault-to-alert latency under
background traffic.

    .venv/bin/python bench/ingest.py [--messages 200000] [--postgres postgresql://postgres@127.0.0.1/test]

Prints a table, then one JSON line with baseline_rate, sqlite_rate, postgres_rate, sqlite_ratio,
postgres_ratio, alert_p50_ms, alert_p99_ms, stored_equals_sent.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.broker import BrokerAccount, EmbeddedBroker
from gateway.db import make_engine, make_session_factory
from gateway.migrate import upgrade
from gateway.models import Reading
from gateway.mqtt import connect, make_client
from gateway.protocol import QOS, UPSTREAM_FILTER, MqttTarget, Telemetry, encode
from gateway.region import load_region
from gateway.region_gen import generate_region
from gateway.service import GatewayService
from gateway.settings import Settings

ACCOUNT = BrokerAccount("bench", "bench-password")


def device_topics(region: dict[str, Any]) -> list[str]:
    return [
        f"rhizome/v1/{c['slug']}/{s['slug']}/{d['slug']}/telemetry"
        for c in region["communities"]
        for s in c["sites"]
        for d in s["devices"]
    ]


def make_session(target: MqttTarget, client_id: str) -> None:
    """Create a persistent session subscribed to the upstream filter, then leave it to collect messages."""
    client = make_client(target, client_id, persistent=True)
    done = threading.Event()
    client.on_subscribe = lambda *_: done.set()
    client.on_connect = lambda c, *_: c.subscribe(UPSTREAM_FILTER, qos=QOS)
    connect(client, target, session_expiry_s=3600)
    client.loop_start()
    assert done.wait(10), "could not subscribe"
    client.disconnect()
    client.loop_stop()


def preload(target: MqttTarget, topics: list[str], count: int, tag: str) -> None:
    """Publish `count` telemetry messages at QoS 1, round-robin over the devices, seq rising per device."""
    client = make_client(target, f"bench-pub-{tag}")
    client.max_inflight_messages_set(1000)
    connect(client, target)
    client.loop_start()
    ts = datetime.now(UTC)
    last = None
    for i in range(count):
        topic = topics[i % len(topics)]
        body = Telemetry(i // len(topics) + 1, ts, {"flow_lpm": float(i % 50), "running": True})
        while True:
            last = client.publish(topic, encode(body), qos=QOS)
            if last.rc == mqtt.MQTT_ERR_SUCCESS:
                break
            time.sleep(0.001)
    assert last is not None
    last.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def drain_bare(target: MqttTarget, client_id: str, count: int) -> float:
    """The baseline: a paho subscriber that only parses JSON and counts."""
    received = 0
    done = threading.Event()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        json.loads(message.payload)
        received += 1
        if received == count:
            done.set()

    client = make_client(target, client_id, persistent=True)
    client.on_message = on_message
    start = time.perf_counter()
    connect(client, target, session_expiry_s=3600)
    client.loop_start()
    assert done.wait(600), f"bare subscriber received {received} of {count}"
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def stored(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Reading)) or 0


def drain_gateway(url: str, target_url: str, client_id: str, count: int, engine: Engine) -> tuple[float, int]:
    settings = Settings(mqtt_url=target_url, database_url=url, gateway_client_id=client_id)
    service = GatewayService(settings, engine, session_expiry_s=3600, stats_every_s=5.0)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    start = time.perf_counter()
    thread.start()
    n = 0
    while time.perf_counter() - start < 600:
        n = stored(engine)
        if n >= count:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join(30)
    m = service.metrics
    print(f"  {m.received} received in {m.batch_count} batches", file=sys.stderr)
    return n / elapsed, stored(engine)


def fresh_store(url: str, region: dict[str, Any]) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine).begin() as session:
        load_region(session, region)
    return engine


def postgres_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    name = f"rhizome_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--communities", type=int, default=300)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    region = generate_region(args.communities, seed=1)
    topics = device_topics(region)
    rows: list[tuple[str, float, int]] = []
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(Path(tmp) / "broker", [ACCOUNT], prefer="mosquitto") as broker,
    ):
        target_url = broker.url(ACCOUNT)
        target = MqttTarget.from_url(target_url)
        tag = uuid.uuid4().hex[:6]
        print(
            f"{len(topics)} devices, {args.messages} messages per run, broker {broker.kind}", file=sys.stderr
        )

        make_session(target, f"bare-{tag}")
        preload(target, topics, args.messages, f"a{tag}")
        results["baseline_rate"] = drain_bare(target, f"bare-{tag}", args.messages)
        rows.append(("bare paho + json.loads", results["baseline_rate"], args.messages))

        sqlite_engine = fresh_store(f"sqlite:///{tmp}/bench.db", region)  # a fresh file per run
        make_session(target, f"gw-sqlite-{tag}")
        preload(target, topics, args.messages, f"b{tag}")
        rate, n = drain_gateway(
            f"sqlite:///{tmp}/bench.db", target_url, f"gw-sqlite-{tag}", args.messages, sqlite_engine
        )
        results["sqlite_rate"], sqlite_ok = rate, n == args.messages
        rows.append(("gateway -> SQLite", rate, n))
        sqlite_engine.dispose()

        pg_url, drop = postgres_database(args.postgres)
        try:
            pg_engine = fresh_store(pg_url, region)
            make_session(target, f"gw-pg-{tag}")
            preload(target, topics, args.messages, f"c{tag}")
            rate, n = drain_gateway(pg_url, target_url, f"gw-pg-{tag}", args.messages, pg_engine)
            results["postgres_rate"], pg_ok = rate, n == args.messages
            rows.append(("gateway -> PostgreSQL", rate, n))
            pg_engine.dispose()
        finally:
            drop()

    base = results["baseline_rate"]
    results["sqlite_ratio"] = results["sqlite_rate"] / base
    results["postgres_ratio"] = results["postgres_rate"] / base
    results["stored_equals_sent"] = sqlite_ok and pg_ok
    print(f"{'drain':28} {'msg/s':>10} {'stored':>10} {'ratio':>7}")
    for name, rate, n in rows:
        print(f"{name:28} {rate:10.0f} {n:10d} {rate / base:7.2f}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
