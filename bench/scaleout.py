"""Scale-out benchmark: one vs two `rhizome gateway --shared` processes draining the same backlog into
PostgreSQL through an MQTT v5 shared subscription on Mosquitto with the shipped config.

    .venv/bin/python bench/scaleout.py [--messages 100000] [--postgres postgresql://postgres@127.0.0.1/test]

Each run gets a fresh database and an equal backlog: the members' sessions are created first (subscribed to
the shared filter, then disconnected; they live 120 s, the gateway's shared-member expiry), the backlog is
published while no member is connected (Mosquitto spreads it over the offline sessions), then the gateway
processes start and resume those sessions. The clock runs from the first member being subscribed to the
moment the members' own counters (/metrics) add up to the backlog. Afterwards the readings table is checked:
COUNT(*) and COUNT(DISTINCT (device_id, seq)) both equal to what was sent.

Runs each configuration --repeats times, interleaved, because the machine may be shared. Prints a table,
then one JSON line: one_gateway_rate, two_gateway_rate (medians), stored_equals_sent (every run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.ingest import (  # noqa: E402 - after the path set-up, like bench/ingest.py itself
    ACCOUNT,
    device_topics,
    fresh_store,
    make_session,
    postgres_database,
    preload,
)
from bench.synthetic.region import generate_region  # noqa: E402
from gateway.broker.embedded import EmbeddedBroker  # noqa: E402
from gateway.contract.target import MqttTarget  # noqa: E402
from gateway.contract.topics import shared_filter  # noqa: E402
from gateway.ingest.service import SHARED_SESSION_EXPIRY_S  # noqa: E402
from gateway.process.procutil import free_port  # noqa: E402

SESSION_S = SHARED_SESSION_EXPIRY_S  # what the members ask for when they resume
PRELOAD_BUDGET_S = SESSION_S - 20  # the members' sessions must outlive the preload


@dataclass
class Member:
    """One gateway process of the shared subscription."""

    client_id: str
    metrics_port: int
    ready: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, mqtt_url: str, db_url: str, group: str) -> None:
        args = ["--mqtt", mqtt_url, "--db", db_url, "--log-level", "WARNING", "gateway", "--shared"]
        args += ["--group", group, "--client-id", self.client_id, "--ready-file", str(self.ready)]
        args += ["--metrics-port", str(self.metrics_port)]
        with self.log.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.process.cli", *args], stdout=log, stderr=log
            )

    def counters(self) -> dict[str, float]:
        """The member's own counters; empty until its metrics server is up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
                body = resp.read().decode()
        except OSError:
            return {}
        out = {}
        for line in body.splitlines():
            name, _, value = line.partition(" ")
            if name in ("rhizome_readings_stored_total", "rhizome_duplicates_total"):
                out[name] = float(value)
        return out

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class RunResult:
    gateways: int
    rate: float  # messages per second from the first member subscribed to the last row committed
    wall_s: float  # including process start-up
    shares: tuple[int, ...]  # rows each member stored
    duplicates: int
    rows: int
    distinct: int


def check_store(engine: Engine) -> tuple[int, int]:
    """COUNT(*) and COUNT(DISTINCT (device_id, seq)) of the readings table."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT COUNT(*) FROM readings")).scalar_one()
        distinct = conn.execute(text("SELECT COUNT(DISTINCT (device_id, seq)) FROM readings")).scalar_one()
    return rows, distinct


def run(
    n: int, broker: EmbeddedBroker, admin_url: str, region: dict, topics: list[str], count: int, tmp: Path
) -> RunResult:
    """Preload `count` messages for `n` members, start them, time the drain, check the store."""
    url = broker.url(ACCOUNT)
    target = MqttTarget.from_url(url)
    tag = uuid.uuid4().hex[:6]
    group = f"scale{n}-{tag}"
    members = [
        Member(f"{group}-{i}", free_port("127.0.0.1"), tmp / f"{group}-{i}.ready", tmp / f"{group}-{i}.log")
        for i in range(n)
    ]
    db_url, drop = postgres_database(admin_url)
    try:
        engine = fresh_store(db_url, region)
        for m in members:
            make_session(
                target,
                m.client_id,
                topic_filter=shared_filter(group),
                session_expiry_s=SHARED_SESSION_EXPIRY_S,
            )
        began = time.perf_counter()
        preload(target, topics, count, tag)
        took = time.perf_counter() - began
        print(f"  {n} gateway(s): preloaded {count} in {took:.1f} s", file=sys.stderr)
        if took > PRELOAD_BUDGET_S:
            raise SystemExit(f"preload took {took:.0f} s: the members' sessions may have expired; use fewer")
        started = time.perf_counter()
        for m in members:
            m.start(url, db_url, group)
        first_ready = None
        stored, counters = 0.0, [dict[str, float]() for _ in members]
        last_progress = started
        while stored < count:
            if first_ready is None and any(m.ready.exists() for m in members):
                first_ready = time.perf_counter()
            for i, m in enumerate(members):
                if not m.alive():
                    raise SystemExit(f"gateway {m.client_id} exited; log:\n{m.log.read_text()[-2000:]}")
                counters[i] = m.counters() or counters[i]
            stored = sum(c.get("rhizome_readings_stored_total", 0.0) for c in counters)
            if time.perf_counter() - last_progress > 5:
                print(f"    {stored:.0f} of {count} stored", file=sys.stderr)
                last_progress = time.perf_counter()
            if time.perf_counter() - started > 900:
                raise SystemExit(f"only {stored:.0f} of {count} stored after 900 s")
            time.sleep(0.25)  # each scrape costs the members a little CPU
        ended = time.perf_counter()
        for m in members:
            m.stop()
        time.sleep(1.0)  # anything late would show up as an extra row
        rows, distinct = check_store(engine)
        engine.dispose()
    finally:
        for m in members:
            m.stop()
        drop()
    assert first_ready is not None
    return RunResult(
        gateways=n,
        rate=count / (ended - first_ready),
        wall_s=ended - started,
        shares=tuple(int(c.get("rhizome_readings_stored_total", 0)) for c in counters),
        duplicates=int(sum(c.get("rhizome_duplicates_total", 0) for c in counters)),
        rows=rows,
        distinct=distinct,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--communities", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration, interleaved [3]")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    region = generate_region(args.communities, seed=1)
    topics = device_topics(region)
    # Interleaved (1, 2, 2, 1, 1, 2, ...) so load from other work on the machine hits both alike.
    order = [n for i in range(args.repeats) for n in ((1, 2) if i % 2 == 0 else (2, 1))]
    results: list[RunResult] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(Path(tmp) / "broker", [ACCOUNT], prefer="mosquitto") as broker,
    ):
        print(f"{len(topics)} devices, {args.messages} messages per run, {broker.kind}", file=sys.stderr)
        for i, n in enumerate(order, 1):
            load = os.getloadavg()[0]
            print(f"run {i}/{len(order)}: {n} gateway(s), load average {load:.1f}", file=sys.stderr)
            results.append(run(n, broker, args.postgres, region, topics, args.messages, Path(tmp)))
    ok = all(r.rows == r.distinct == args.messages for r in results)
    print(f"{'gateways':>8} {'msg/s':>9} {'wall s':>7} {'rows':>8} {'distinct':>8} {'dups':>5}  per member")
    for r in sorted(results, key=lambda r: r.gateways):
        shares = " / ".join(str(s) for s in r.shares)
        counts = f"{r.rows:8d} {r.distinct:8d} {r.duplicates:5d}"
        print(f"{r.gateways:8d} {r.rate:9.0f} {r.wall_s:7.1f} {counts}  {shares}")
    one = statistics.median(r.rate for r in results if r.gateways == 1)
    two = statistics.median(r.rate for r in results if r.gateways == 2)
    print(f"median: one gateway {one:.0f} msg/s, two gateways {two:.0f} msg/s, speed-up {two / one:.2f}x")
    print(
        json.dumps(
            {"one_gateway_rate": round(one, 1), "two_gateway_rate": round(two, 1), "stored_equals_sent": ok}
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
