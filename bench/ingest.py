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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic.region import generate_region
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract.client import connect, make_client
from gateway.contract.payloads import Telemetry, encode
from gateway.contract.target import MqttTarget
from gateway.contract.topics import QOS, UPSTREAM_FILTER
from gateway.ingest.service import GatewayService
from gateway.process.settings import Settings
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Reading
from gateway.store.region import load_region

ACCOUNT = BrokerAccount("bench", "bench-password")


def device_topics(region: dict[str, Any]) -> list[str]:
    return [
        f"rhizome/v1/{c['slug']}/{s['slug']}/{d['slug']}/telemetry"
        for c in region["communities"]
        for s in c["sites"]
        for d in s["devices"]
    ]


def make_session(
    target: MqttTarget, client_id: str, *, topic_filter: str = UPSTREAM_FILTER, session_expiry_s: int = 3600
) -> None:
    """Create a persistent session subscribed to `topic_filter`, then leave it to collect messages."""
    client = make_client(target, client_id, persistent=True)
    done = threading.Event()
    client.on_subscribe = lambda *_: done.set()
    client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=QOS)
    connect(client, target, session_expiry_s=session_expiry_s)
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
    # The gateway's own count of committed rows ends the clock; polling COUNT(*) on the growing table
    # would compete with the gateway for the same two cores. The table is counted once at the end.
    while service.metrics.stored < count and time.perf_counter() - start < 600:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join(30)
    m = service.metrics
    print(f"  {m.received} received in {m.batch_count} batches", file=sys.stderr)
    return m.stored / elapsed, stored(engine)


def pump_topics(region: dict[str, Any]) -> list[str]:
    return [
        f"rhizome/v1/{c['slug']}/{s['slug']}/{d['slug']}/telemetry"
        for c in region["communities"]
        for s in c["sites"]
        for d in s["devices"]
        if d["kind"] == "pump"
    ]


def alert_latency(
    target_url: str, db_url: str, engine: Engine, region: dict[str, Any], trials: int, background_rate: float
) -> list[float]:
    """Milliseconds from publishing the reading that completes a pump failure to receiving its alert."""
    target = MqttTarget.from_url(target_url)
    tag = uuid.uuid4().hex[:6]
    settings = Settings(mqtt_url=target_url, database_url=db_url, gateway_client_id=f"gw-alert-{tag}")
    service = GatewayService(settings, engine, session_expiry_s=0, stats_every_s=30.0)
    stop = threading.Event()
    gateway = threading.Thread(target=service.run, args=(stop,), daemon=True)
    gateway.start()
    assert service.connected.wait(15)
    arrived: dict[str, float] = {}
    listener = make_client(target, f"alerts-{tag}")
    listener.on_message = lambda _c, _u, m: arrived.setdefault(
        json.loads(m.payload).get("device", ""), time.perf_counter()
    )
    listener.on_connect = lambda c, *_: c.subscribe("rhizome/v1/alerts/#", qos=1)
    connect(listener, target)
    listener.loop_start()
    pumps = pump_topics(region)[:trials]
    others = [t for t in device_topics(region) if t not in set(pumps)]
    background = threading.Thread(
        target=_background, args=(target, others, background_rate, stop), daemon=True
    )
    background.start()
    publisher = make_client(target, f"trials-{tag}")
    connect(publisher, target)
    publisher.loop_start()
    time.sleep(2.0)
    latencies = []
    broken = {"running": True, "flow_lpm": 0.0, "pressure_kpa": 10.0, "tank_level_pct": 50.0}
    for seq0, topic in enumerate(pumps):
        device = topic.split("/")[4]
        now = datetime.now(UTC)
        for k in range(6):  # 50 s of a broken pump, replayed from the device's buffer
            body = Telemetry(10_000 * (seq0 + 1) + k, now - timedelta(seconds=60 - 10 * k), broken)
            publisher.publish(topic, encode(body), qos=QOS).wait_for_publish(10)
        time.sleep(0.2)
        body = Telemetry(10_000 * (seq0 + 1) + 7, datetime.now(UTC), broken)
        started = time.perf_counter()
        publisher.publish(topic, encode(body), qos=QOS)
        deadline = started + 10
        while device not in arrived and time.perf_counter() < deadline:
            time.sleep(0.001)
        if device in arrived:
            latencies.append((arrived[device] - started) * 1000)
        time.sleep(0.1)
    stop.set()
    gateway.join(30)
    background.join(30)
    for client in (listener, publisher):
        client.disconnect()
        client.loop_stop()
    return latencies


def _background(target: MqttTarget, topics: list[str], rate: float, stop: threading.Event) -> None:
    """Normal readings at `rate` messages per second until `stop`."""
    client = make_client(target, f"background-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    connect(client, target)
    client.loop_start()
    ok = {"running": True, "flow_lpm": 40.0, "pressure_kpa": 300.0, "tank_level_pct": 60.0}
    seq, start = 1_000_000, time.perf_counter()
    while not stop.is_set():
        seq += 1
        client.publish(topics[seq % len(topics)], encode(Telemetry(seq, datetime.now(UTC), ok)), qos=QOS)
        ahead = (seq - 1_000_000) / rate - (time.perf_counter() - start)
        if ahead > 0:
            time.sleep(ahead)
    client.disconnect()
    client.loop_stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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
    parser.add_argument("--trials", type=int, default=200, help="pump failures for the alert latency")
    parser.add_argument("--background", type=float, default=2000.0, help="msg/s during the latency trials")
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
            alert_engine = make_engine(pg_url)  # the same store, a fresh gateway
            latencies = alert_latency(target_url, pg_url, alert_engine, region, args.trials, args.background)
            alert_engine.dispose()
        finally:
            drop()

    base = results["baseline_rate"]
    results["sqlite_ratio"] = results["sqlite_rate"] / base
    results["postgres_ratio"] = results["postgres_rate"] / base
    results["alert_p50_ms"] = percentile(latencies, 0.5) if latencies else None
    results["alert_p99_ms"] = percentile(latencies, 0.99) if latencies else None
    results["stored_equals_sent"] = sqlite_ok and pg_ok
    print(f"{'drain':28} {'msg/s':>10} {'stored':>10} {'ratio':>7}")
    for name, rate, n in rows:
        print(f"{name:28} {rate:10.0f} {n:10d} {rate / base:7.2f}")
    p50, p99 = (
        f"{v:.0f} ms" if v is not None else "n/a" for v in (results["alert_p50_ms"], results["alert_p99_ms"])
    )
    print(
        f"\nfault-to-alert on PostgreSQL, {args.background:.0f} msg/s background: {len(latencies)} of "
        f"{args.trials} alerts, p50 {p50}, p99 {p99}"
    )
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
