"""Soak: many simulated devices for many minutes into a `rhizome gateway` process on PostgreSQL.

Starts its own Mosquitto with the shipped config (gateway/broker/mosquitto/mosquitto.conf, on a free
loopback port),
a fresh PostgreSQL database, the gateway as a process (`rhizome gateway --metrics-port`), and the device
simulator (devices/simulator.py, multiplexed over a few connections) in this process. Devices report at the
sample region's intervals (pumps and cold rooms every 60 s, soil and stock every 300 s); `--speed` is chosen
so that the fleet sends `--rate` messages per second in total.

Every ~15 s it logs sent, stored, lag and the resident memory (VmRSS) of the gateway's processes (the MQTT
process and its store-writer child). At the end:

* memory growth: total RSS of the gateway's processes at the end of the run against the first sample after
  the warm-up (default 2 minutes, a fifth of shorter runs);
* lag: per message, `received_at - device_ts` (device clock to the gateway taking it off the broker), and at
  every sample the age of the freshest stored reading (which adds the wait for the commit); the max of both;
* stored = sent: rows in `readings` against the simulator's own count of published readings, and no gap in
  any device's seq (the unique key (device, seq) already rules out duplicates in the table).

    .venv/bin/python bench/soak.py [--minutes 10] [--devices 10000] [--rate 2000]

Prints a table, then one JSON line: {"memory_growth": ..., "max_lag_s": ..., "stored_equals_sent": ..., ...}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench.ingest import fresh_store, postgres_database
from bench.synthetic.region import generate_region
from devices.fleet import MultiplexedFleet
from devices.regionfile import devices_of
from devices.simulator import Simulator
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract.target import MqttTarget
from gateway.process.procutil import free_port

KINDS = (
    ("pump", "pump", 60.0),
    ("soil", "farm", 300.0),
    ("cold_room", "storage", 60.0),
    ("stock", "storage", 300.0),
)
PER_COMMUNITY = 100
STOCK = {"rice": 500.0, "drinking-water": 2000.0}


def soak_region(devices: int) -> dict[str, Any]:
    """`devices` devices of the four kinds in turn, one per site, 100 per community, sample intervals."""
    communities = []
    for c in range(-(-devices // PER_COMMUNITY)):
        sites = []
        for n in range(c * PER_COMMUNITY, min(devices, (c + 1) * PER_COMMUNITY)):
            kind, site_kind, interval = KINDS[n % len(KINDS)]
            site: dict[str, Any] = {"slug": f"s{n:05d}", "name": f"Site {n}", "kind": site_kind}
            site |= {"lat": 18.2, "lon": -66.5}
            site["devices"] = [{"slug": f"soak-d{n:05d}", "kind": kind, "interval_s": interval}]
            if kind == "stock":
                site["stock"] = dict(STOCK)
            sites.append(site)
        community = {"slug": f"soak-c{c:03d}", "name": f"Soak {c}", "lat": 18.2, "lon": -66.5}
        communities.append({**community, "sites": sites})
    goods = [g for g in generate_region(1, seed=1)["goods"] if g["slug"] in STOCK]
    return {"format": "rhizome-region/1", "name": "Soak", "goods": goods, "communities": communities}


def rate_at_speed_one(region: dict[str, Any]) -> float:
    """Messages per second the region's devices send at speed 1."""
    return sum(1.0 / d["interval_s"] for c in region["communities"] for s in c["sites"] for d in s["devices"])


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (VmRSS), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def children(pid: int) -> list[int]:
    """Direct children of a process (the gateway's store writer and multiprocessing's resource tracker)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return sorted(set(found))


def scrape(port: int) -> dict[str, float]:
    """The gateway's counters from /metrics (name{labels} -> value); empty if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
    except OSError:
        return {}
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


@dataclass
class Sample:
    """One look at the run."""

    t: float
    sent: int
    stored: int
    received: int
    store_lag_s: float | None
    gateway_kib: int
    writer_kib: int
    broker_kib: int

    @property
    def total_kib(self) -> int:
        return self.gateway_kib + self.writer_kib


def freshest_age_s(engine: Engine) -> float | None:
    """Age of the freshest stored reading's device timestamp (the last 500 rows by id: no table scan)."""
    query = text("SELECT max(device_ts) FROM (SELECT device_ts FROM readings ORDER BY id DESC LIMIT 500) r")
    with engine.connect() as connection:
        newest = connection.execute(query).scalar()
    return None if newest is None else (datetime.now(UTC) - newest).total_seconds()


class GatewayProcess:
    """`rhizome gateway` as a child process, logging to a file."""

    def __init__(self, workdir: Path, mqtt_url: str, db_url: str, metrics_port: int) -> None:
        self.log_path = workdir / "gateway.log"
        ready = workdir / "gateway.ready"
        args = [
            sys.executable,
            "-m",
            "gateway.process.cli",
            "--mqtt",
            mqtt_url,
            "--db",
            db_url,
            "--log-level",
            "INFO",
        ]
        args += ["gateway", "--client-id", f"soak-{secrets.token_hex(3)}", "--ready-file", str(ready)]
        args += ["--metrics-port", str(metrics_port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def writer_pid(self) -> int | None:
        for pid in children(self.process.pid):
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def stored_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM readings")).scalar() or 0)


def final_checks(engine: Engine) -> dict[str, Any]:
    """Per-message lag over every row, seq gaps per device, dead letters."""
    with engine.connect() as connection:
        lag = connection.execute(
            text(
                "SELECT max(extract(epoch FROM received_at - device_ts)), "
                "percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - device_ts)), "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - device_ts)) "
                "FROM readings"
            )
        ).one()
        gaps = connection.execute(
            text(
                "SELECT coalesce(sum(n), 0) FROM (SELECT max(seq) - min(seq) + 1 - count(*) AS n "
                "FROM readings GROUP BY device_id) per_device"
            )
        ).scalar()
        letters = connection.execute(text("SELECT count(*) FROM dead_letters")).scalar()
        devices = connection.execute(text("SELECT count(DISTINCT device_id) FROM readings")).scalar()
    return {
        "transit_max_s": float(lag[0] or 0.0),
        "transit_p99_s": float(lag[1] or 0.0),
        "transit_p50_s": float(lag[2] or 0.0),
        "seq_gaps": int(gaps or 0),
        "dead_letters": int(letters or 0),
        "devices_heard": int(devices or 0),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Broker, store, gateway, simulator; samples every `--sample-every` s; the figures."""
    region = soak_region(args.devices)
    speed = args.rate / rate_at_speed_one(region)
    duration = args.minutes * 60.0
    warmup = args.warmup if args.warmup is not None else min(120.0, duration / 5)
    specs = devices_of(region)
    account = BrokerAccount("soak", secrets.token_urlsafe(12))
    load_before = os.getloadavg()
    samples: list[Sample] = []
    with (
        tempfile.TemporaryDirectory(prefix="rhizome-soak-") as tmp,
        EmbeddedBroker(Path(tmp) / "broker", [account], prefer="mosquitto") as broker,
    ):
        db_url, drop = postgres_database(args.postgres)
        engine = None
        gateway = None
        try:
            engine = fresh_store(db_url, region)
            port = free_port()
            gateway = GatewayProcess(Path(tmp), broker.url(account), db_url, port)
            writer = gateway.writer_pid()
            if writer is None:
                raise RuntimeError("the gateway's store writer is not running")
            pids = (gateway.process.pid, writer)
            log(
                f"{args.devices:,} devices at speed {speed:.1f} -> {args.rate:,.0f} msg/s for "
                f"{args.minutes} min; gateway pid {pids[0]}, writer pid {pids[1]}, broker pid {broker.pid}, "
                f"warm-up {warmup:.0f} s"
            )
            target = MqttTarget.from_url(broker.url(account), broker.protocol)
            fleet = MultiplexedFleet(target, specs, Path(tmp) / "state", args.connections)
            simulator = Simulator(specs, fleet, seed=args.seed, speed=speed, log_every_s=3600)
            stats_box: dict[str, Any] = {}
            sim = threading.Thread(
                target=lambda: stats_box.setdefault("stats", simulator.run(threading.Event(), duration)),
                name="simulator",
                daemon=True,
            )
            started = time.monotonic()
            sim.start()

            def take() -> Sample:
                metrics = scrape(port)
                sample = Sample(
                    time.monotonic() - started,
                    simulator.stats.published,
                    int(metrics.get("rhizome_readings_stored_total", 0)),
                    int(metrics.get("rhizome_messages_received_total", 0)),
                    freshest_age_s(engine),
                    rss_kib(pids[0]),
                    rss_kib(pids[1]),
                    rss_kib(broker.pid or 0),
                )
                samples.append(sample)
                lag = "-" if sample.store_lag_s is None else f"{sample.store_lag_s:.2f} s"
                log(
                    f"t={sample.t:5.0f} s  sent {sample.sent:>9,}  stored {sample.stored:>9,}  "
                    f"backlog {sample.sent - sample.stored:>7,}  freshest stored {lag:>8}  "
                    f"RSS gateway {sample.gateway_kib / 1024:.1f} "
                    f"+ writer {sample.writer_kib / 1024:.1f} MiB, "
                    f"broker {sample.broker_kib / 1024:.1f} MiB"
                )
                return sample

            next_sample = started + args.sample_every
            while sim.is_alive():
                sim.join(max(0.0, next_sample - time.monotonic()))
                if time.monotonic() >= next_sample and sim.is_alive():
                    take()
                    next_sample += args.sample_every
                if gateway.process.poll() is not None:
                    raise RuntimeError(f"the gateway died:\n{gateway.log_path.read_text()[-3000:]}")
            stats = stats_box["stats"]
            end = take()  # the last sample: the simulator has just stopped
            log(
                f"simulator stopped: {stats.published:,} readings published in {stats.elapsed_s:.0f} s; "
                "waiting for the gateway to store them"
            )
            deadline, last, quiet_since = time.monotonic() + args.drain_timeout, -1, time.monotonic()
            while time.monotonic() < deadline:
                rows = stored_rows(engine)
                if rows != last:
                    last, quiet_since = rows, time.monotonic()
                elif rows >= stats.published and time.monotonic() - quiet_since >= 3.0:
                    break
                time.sleep(1.0)
            metrics = scrape(port)
            same_pids = gateway.process.poll() is None and gateway.writer_pid() == pids[1]
            checks = final_checks(engine)
            rows = stored_rows(engine)
        finally:
            if gateway is not None:
                gateway.stop()
            if engine is not None:
                engine.dispose()
            drop()
        log_text = gateway.log_path.read_text(errors="replace")
    warm = next((s for s in samples if s.t >= warmup), samples[0])
    running = samples[:-1]  # the last sample comes after the simulator stopped: nothing fresh to store
    steady = [s for s in running if s.t >= warmup and s.store_lag_s is not None]
    store_lag_all = max((s.store_lag_s for s in running if s.store_lag_s is not None), default=0.0)
    store_lag_steady = max((s.store_lag_s or 0.0 for s in steady), default=0.0)
    growth = (end.total_kib - warm.total_kib) / warm.total_kib if warm.total_kib else None
    return {
        "memory_growth": round(growth, 4) if growth is not None else None,
        "max_lag_s": round(max(store_lag_all, checks["transit_max_s"]), 3),
        "stored_equals_sent": rows == stats.published and checks["seq_gaps"] == 0,
        "devices": args.devices,
        "minutes": args.minutes,
        "target_rate": args.rate,
        "speed": round(speed, 2),
        "achieved_rate": round(stats.published / max(stats.elapsed_s, 1e-9), 1),
        "sent": stats.published,
        "stored": rows,
        "seq_gaps": checks["seq_gaps"],
        "devices_heard": checks["devices_heard"],
        "duplicates_redelivered": int(metrics.get("rhizome_duplicates_total", -1)),
        "dead_letters": checks["dead_letters"],
        "spool_dropped": stats.dropped,
        "simulator_max_schedule_lag_s": round(stats.max_lag_s, 2),
        "warmup_s": round(warmup),
        "rss_warm_mib": round(warm.total_kib / 1024, 1),
        "rss_end_mib": round(end.total_kib / 1024, 1),
        "rss_max_mib": round(max(s.total_kib for s in samples) / 1024, 1),
        "gateway_rss_warm_end_mib": [round(warm.gateway_kib / 1024, 1), round(end.gateway_kib / 1024, 1)],
        "writer_rss_warm_end_mib": [round(warm.writer_kib / 1024, 1), round(end.writer_kib / 1024, 1)],
        "broker_rss_warm_end_mib": [round(warm.broker_kib / 1024, 1), round(end.broker_kib / 1024, 1)],
        "max_store_lag_s": round(store_lag_all, 3),
        "max_store_lag_after_warmup_s": round(store_lag_steady, 3),
        "transit_max_s": round(checks["transit_max_s"], 3),
        "transit_p99_s": round(checks["transit_p99_s"], 3),
        "transit_p50_s": round(checks["transit_p50_s"], 3),
        "max_backlog": max(s.sent - s.stored for s in samples),
        "same_pids": same_pids,
        "gateway_errors": len(re.findall(r"ERROR|Traceback", log_text)),
        "samples": [
            [
                round(s.t),
                s.sent,
                s.stored,
                None if s.store_lag_s is None else round(s.store_lag_s, 2),
                round(s.gateway_kib / 1024, 1),
                round(s.writer_kib / 1024, 1),
            ]
            for s in samples
        ],
        "loadavg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }


def log(message: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def table(r: dict[str, Any]) -> str:
    """The human-readable part: the samples, then the figures."""
    lines = [
        f"{'t (s)':>6} {'sent':>10} {'stored':>10} {'freshest (s)':>13} {'gateway MiB':>12} "
        f"{'writer MiB':>11}"
    ]
    for t, sent, stored, lag, gw, wr in r["samples"]:
        lines.append(
            f"{t:6d} {sent:10,} {stored:10,} {lag if lag is not None else '-':>13} {gw:12.1f} {wr:11.1f}"
        )
    rows = [
        ("devices / target rate", f"{r['devices']:,} / {r['target_rate']:,.0f} msg/s (speed {r['speed']})"),
        ("achieved rate", f"{r['achieved_rate']:,.0f} msg/s over {r['minutes']} min"),
        (
            "sent / stored",
            f"{r['sent']:,} / {r['stored']:,} (seq gaps {r['seq_gaps']}, "
            f"{r['devices_heard']:,} devices heard)",
        ),
        ("stored = sent", str(r["stored_equals_sent"])),
        ("redelivered duplicates", str(r["duplicates_redelivered"])),
        ("dead letters / spool drops", f"{r['dead_letters']} / {r['spool_dropped']}"),
        ("simulator behind schedule", f"max {r['simulator_max_schedule_lag_s']} s (CPU-starved if large)"),
        ("gateway RSS after warm-up", f"{r['rss_warm_mib']} MiB (t >= {r['warmup_s']} s; gateway + writer)"),
        ("gateway RSS at the end", f"{r['rss_end_mib']} MiB (max {r['rss_max_mib']} MiB)"),
        ("memory growth", f"{r['memory_growth']:+.1%}" if r["memory_growth"] is not None else "-"),
        (
            "broker RSS warm / end",
            f"{r['broker_rss_warm_end_mib'][0]} / {r['broker_rss_warm_end_mib'][1]} MiB",
        ),
        (
            "lag device ts -> gateway",
            f"p50 {r['transit_p50_s']} s, p99 {r['transit_p99_s']} s, max {r['transit_max_s']} s",
        ),
        (
            "freshest stored reading age",
            f"max {r['max_store_lag_s']} s, after warm-up {r['max_store_lag_after_warmup_s']} s",
        ),
        ("max backlog (sent - stored)", f"{r['max_backlog']:,}"),
        ("gateway never restarted", f"{r['same_pids']} (errors in its log: {r['gateway_errors']})"),
        (
            "machine",
            f"{r['cpus']} cores, load {r['loadavg_before_after'][0]} before, "
            f"{r['loadavg_before_after'][1]} after (shared)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines += ["", *(f"{name:<{width}}  {value}" for name, value in rows)]
    return "\n".join(lines)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="aggregate messages per second")
    parser.add_argument("--warmup", type=float, help="seconds before the memory baseline [min(120, run / 5)]")
    parser.add_argument("--sample-every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--connections", type=int, default=4, help="simulator connections (multiplexed)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="admin URL")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the store")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.devices < 1 or args.rate <= 0 or args.minutes <= 0:
        parser.error("--devices, --rate and --minutes must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args)
    print(table(result))
    result.pop("samples")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
