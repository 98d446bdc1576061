"""Benchmark: can one simulator process keep 10,000 devices at one message every 10 s (1,000 msg/s)?

Starts its own Mosquitto with the project's config (gateway/broker/mosquitto/mosquitto.conf via
EmbeddedBroker),
a counting subscriber in a separate process (so it does not compete for the simulator's GIL) that checks
every message arrives once and in order per device, and runs the simulator in multiplexed mode at speed 1
through the store-and-forward spool, exactly as `rhizome devices simulate` does. The first interval (every
device reports once at the start, then at its phase) is the warm-up; the rate is measured after it.

    .venv/bin/python bench/simulate.py [--devices 10000] [--interval 10] [--duration 60]

Prints a table, then a last line of JSON with `devices`, `target_rate` and `achieved_rate` (msg/s).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KINDS = ("pump", "soil", "cold_room", "stock")
PER_COMMUNITY = 100


def bench_region(devices: int, interval_s: float) -> dict[str, Any]:
    """`devices` devices of all four kinds, 100 per community, all reporting every `interval_s` seconds."""
    communities = []
    for c in range(-(-devices // PER_COMMUNITY)):
        sites = []
        for n in range(c * PER_COMMUNITY, min(devices, (c + 1) * PER_COMMUNITY)):
            kind = KINDS[n % len(KINDS)]
            device = {"slug": f"bench-d{n:05d}", "kind": kind, "interval_s": interval_s}
            site = {"slug": f"s{n:05d}", "kind": "farm" if kind == "soil" else "storage", "lon": -66.5}
            sites.append({**site, "stock": {"rice": 500.0, "drinking-water": 2000.0}, "devices": [device]})
        communities.append({"slug": f"bench-c{c:03d}", "sites": sites})
    return {"format": "rhizome-region/1", "communities": communities}


def count_messages(url: str, topic_filter: str) -> int:
    """The counting subscriber (a child process): data messages, duplicates and reorderings per device."""
    from gateway.contract.client import make_client
    from gateway.contract.target import MqttTarget

    target = MqttTarget.from_url(url, "5")
    last: dict[str, int] = {}
    counts = {"data": 0, "state": 0, "duplicates": 0, "out_of_order": 0}
    client = make_client(target, "bench-counter", reconnect_delay=None)  # paho's reconnect delays, as ever
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        parts = message.topic.split("/")
        if parts[-1] == "state":
            counts["state"] += 1
            return
        seq = json.loads(message.payload)["seq"]
        previous = last.get(parts[4], -1)
        if seq == previous:
            counts["duplicates"] += 1
        elif seq < previous:
            counts["out_of_order"] += 1
        last[parts[4]] = max(seq, previous)
        counts["data"] += 1

    client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect(target.host, target.port)
    client.loop_start()
    if not subscribed.wait(10):
        return 1
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says when the simulator has stopped
    quiet = -1
    while quiet != counts["data"]:  # wait until the broker has delivered everything
        quiet = counts["data"]
        time.sleep(1.0)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({**counts, "devices": len(last)}), flush=True)
    return 0


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Broker, counter, simulator; the measurements."""
    from devices.fleet import MultiplexedFleet
    from devices.regionfile import devices_of
    from devices.simulator import Simulator
    from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
    from gateway.contract.target import MqttTarget

    specs = devices_of(bench_region(args.devices, args.interval))
    account = BrokerAccount("bench", secrets.token_urlsafe(12))
    with (
        tempfile.TemporaryDirectory(prefix="rhizome-bench-") as tmp,
        EmbeddedBroker(Path(tmp) / "broker", [account], prefer="mosquitto") as broker,
    ):
        url = broker.url(account)
        counter = subprocess.Popen(
            [sys.executable, __file__, "--count", url, "rhizome/v1/#"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert counter.stdin is not None and counter.stdout is not None
        if counter.stdout.readline().strip() != "ready":
            raise RuntimeError("the counting subscriber could not subscribe")
        target = MqttTarget.from_url(url, broker.protocol)
        fleet = MultiplexedFleet(target, specs, Path(tmp) / "state", args.connections)
        simulator = Simulator(
            specs, fleet, seed=args.seed, speed=1.0, sim_start=datetime(2025, 6, 1, 12, tzinfo=UTC)
        )
        samples: queue.Queue[tuple[float, int, float]] = queue.Queue()
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                stats = simulator.stats
                samples.put((stats.elapsed_s, stats.published, stats.lag_s))

        sampler = threading.Thread(target=sample, daemon=True)
        cpu_before, broker_before = resource.getrusage(resource.RUSAGE_SELF), process_cpu_s(broker.pid or 0)
        sampler.start()
        stats = simulator.run(threading.Event(), args.duration)
        done.set()
        sampler.join()
        cpu_after, broker_after = resource.getrusage(resource.RUSAGE_SELF), process_cpu_s(broker.pid or 0)
        out, _ = counter.communicate("stop\n", timeout=120)
        counted = json.loads(out.strip().splitlines()[-1])
    series = list(samples.queue)
    steady = [s for s in series if s[0] >= args.interval]
    first, last = steady[0], steady[-1]
    achieved = (last[1] - first[1]) / (last[0] - first[0])
    steady_lag = max(s[2] for s in steady)
    sim_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    broker_cpu = None if broker_after is None or broker_before is None else broker_after - broker_before
    return {
        "devices": args.devices,
        "interval_s": args.interval,
        "connections": args.connections,
        "duration_s": round(stats.elapsed_s, 1),
        "target_rate": round(args.devices / args.interval, 1),
        "achieved_rate": round(achieved, 1),
        "published": stats.published,
        "delivered": counted["data"],
        "duplicates": counted["duplicates"],
        "out_of_order": counted["out_of_order"],
        "dropped": stats.dropped,
        "max_lag_steady_s": round(steady_lag, 3),
        "keeps_up": achieved >= 0.98 * args.devices / args.interval and steady_lag < args.interval,
        "max_lag_startup_s": round(stats.max_lag_s, 2),
        "simulator_cpu_cores": round(sim_cpu / max(stats.elapsed_s, 1e-9), 2),
        "broker_cpu_cores": round(broker_cpu / stats.elapsed_s, 2) if broker_cpu is not None else None,
        "cpus": os.cpu_count(),
    }


def table(result: dict[str, Any]) -> str:
    """The human-readable part."""
    rows = [
        ("devices", f"{result['devices']:,}"),
        ("interval per device", f"{result['interval_s']:g} s"),
        ("connections (multiplexed)", str(result["connections"])),
        ("measured for", f"{result['duration_s']} s (rate after the first interval)"),
        ("target rate", f"{result['target_rate']:,.0f} msg/s"),
        ("achieved rate (published)", f"{result['achieved_rate']:,.0f} msg/s"),
        ("published / delivered", f"{result['published']:,} / {result['delivered']:,}"),
        ("duplicates / out of order", f"{result['duplicates']} / {result['out_of_order']}"),
        ("dropped by the spool", str(result["dropped"])),
        ("max lag after warm-up", f"{result['max_lag_steady_s']} s (keeps up: {result['keeps_up']})"),
        ("max lag at start-up", f"{result['max_lag_startup_s']} s (every device reports at once)"),
        ("simulator CPU", f"{result['simulator_cpu_cores']} cores of {result['cpus']}"),
        ("broker CPU (Mosquitto)", f"{result['broker_cpu_cores']} cores"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'measure':<{width}}  value", f"{'-' * width}  {'-' * 40}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between a device's messages")
    parser.add_argument("--duration", type=float, default=60.0, help="real seconds of simulation")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", nargs=2, metavar=("URL", "FILTER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count:
        return count_messages(*args.count)
    if args.duration <= args.interval * 2:
        parser.error("--duration must be more than two intervals (the first one is the warm-up)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args)
    print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
