"""Federation benchmark: a region of community nodes on one machine, cut in parts for hours, then healed.

    .venv/bin/python bench/federation.py [--nodes 50] [--partition-hours 3] [--sim-hour-s 60] [--seed 1]

Each node is a real Mosquitto (one process per node, gateway/broker/embedded.py), its own SQLite store and a
federation agent (gateway/federation/agent.py); the agents run as threads of this one process
(gateway/federation/sim.py), the "lightweight in-process nodes over real brokers" of the issue. Every link
runs through a `Cable`, a TCP relay that can be cut like a failed uplink. The link graph is a ring plus one
chord per node (each node dials two peers, the chord chosen with --seed), so every node has about four links.

The clock is compressed: one simulated hour lasts --sim-hour-s real seconds. Every node writes what a
community node would: a `stock` summary (four goods) every simulated 10 minutes, and on about one slot in 24
a `fault` fact (one of its own devices gone silent, closed again 10-60 simulated minutes later), so a region
of N nodes writes about 6.25 N facts per simulated hour. Beats, resends and the planning lease run in real
seconds (--beat-s, --resend-s, --lease-s), as they would on a real node.

Phases: start (brokers, stores, agents); idle (links up, nobody writes: beat and keepalive traffic alone);
--warm-hours of writing with every link up; --partition-hours of writing with the region split in two halves
and --isolate of the nodes cut off from everyone; heal (writing stops) and wait until every node holds
exactly the facts written; then the planning role's failover: the agent of the node every node names as
holder is stopped, and the clock runs until every other node names the same new holder.

Figures (the JSON line's keys):

* lost: facts written that the worst node does not hold after the wait; duplicated: rows minus distinct
  (origin, seq), summed over every node's store (the unique key should keep it 0; it is counted, not assumed).
* converged, converge_s: every node holds exactly the union of what was written; real seconds from heal.
* failover_s: real seconds from stopping the holder's agent until every other node names one new holder
  (bounded below by --lease-s: the role moves when its holder is unheard that long).
* false_silence_faults: no gateway runs here, so silence faults cannot be raised falsely by one; what is
  checked is the federation's side: fault facts whose device's community is not their origin node's own
  (a node speaking for another's devices, or a relay mixing facts up). Must be 0.
* bytes_per_node_hour: bytes through the cables (MQTT on the wire, both directions) per node and per
  simulated hour of writing, counted from the first write to convergence. Beats run in real time, so on the
  compressed clock they weigh less per simulated hour than on a real node; `idle_bytes_per_node_hour` is the
  idle phase's rate scaled to a real hour (what beats and keepalives cost a node per hour on their own), and
  the table also gives the run's bytes per real hour.
* node_rss_mb, node_pss_mb, node_idle_cpu: total RSS and PSS (MiB) and CPU (fraction of one core) of the
  process tree of one real node (`rhizome node run`), 30 s after it answers, sampled for 60 s; null when
  that command does not exist in this checkout. RSS counts a page shared by several processes (the
  interpreter, SQLAlchemy) in each; PSS splits it among them, so PSS is the memory the node takes from the
  machine. `measure_footprint` takes any command line (see --footprint-cmd).

One process, one interpreter lock: on a 2-core machine the 50 agents (verifying, storing and forwarding
every fact, each arriving at a node about five times, once per link) keep one core busy. At 15 real s per
simulated hour they fell behind the writing; at the default 60 s they keep up, but the catch-up after the heal
(every node taking the other half's hours at once) is bound by that one core, so converge_s and, less,
failover_s are upper bounds for nodes that each have a machine of their own. The figures come with the
process's own CPU use in the table for that reason. (paho watches its sockets with select(), which cannot
take a descriptor above 1023; fifty nodes in one process hold more, so the run uses sim.many_sockets().)

Prints progress lines, a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from gateway.federation.sim import Cable, SimFederation, many_sockets  # noqa: E402
from gateway.process.procutil import free_port, port_open  # noqa: E402
from gateway.store.federation import append_fact  # noqa: E402
from gateway.store.models import FedFact  # noqa: E402

STOCK_EVERY_MIN = 10
FAULT_CHANCE = 1 / 24  # per stock slot: a fault about every 4 simulated hours per node
GOODS = ("rice", "beans", "drinking-water", "diesel")
SIM_START = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
MIB = 1024 * 1024


def say(message: str, *args: object) -> None:
    """A progress line on stderr (stdout carries the table and the JSON line)."""
    print(
        f"[{time.strftime('%H:%M:%S')}] " + (message % args if args else message), file=sys.stderr, flush=True
    )


# -- the region --


def node_names(count: int) -> list[str]:
    """n00, n01, ...: sorted by name is the planning role's order (the file names no planners)."""
    width = max(2, len(str(count - 1)))
    return [f"n{i:0{width}d}" for i in range(count)]


def link_graph(names: Sequence[str], seed: int) -> list[tuple[str, str]]:
    """(dial, to) pairs: node i dials i+1 (a ring) and one chord to a node at least 3 steps away."""
    count = len(names)
    pairs = {(i, (i + 1) % count) for i in range(count)} if count > 1 else set()
    rng = random.Random(seed)
    for i in range(count):
        choices = [j for j in range(count) if min((i - j) % count, (j - i) % count) >= 3]
        rng.shuffle(choices)
        for j in choices:
            if (i, j) not in pairs and (j, i) not in pairs:
                pairs.add((i, j))
                break
    return [(names[a], names[b]) for a, b in sorted(pairs)]


def partition_groups(names: Sequence[str], isolate: float, seed: int) -> dict[str, int]:
    """Group of each node during the cut: two halves of the ring, and `isolate` of the nodes alone."""
    groups = {name: 0 if i < len(names) // 2 else 1 for i, name in enumerate(names)}
    alone = random.Random(seed + 1).sample(list(names), round(len(names) * isolate))
    for k, name in enumerate(sorted(alone)):
        groups[name] = 2 + k
    return groups


class Writer:
    """What each node writes on the simulated clock. `catch_up` queues what is due; each node's agent appends
    its queue in its own tick (`tick`, SimFederation's on_tick), so the bench never waits on a store's lock.
    Remembers every fact appended so that the end state can be checked."""

    def __init__(self, names: Sequence[str], seed: int) -> None:
        self.names = list(names)
        self.written = dict.fromkeys(self.names, 0)  # origin -> facts appended (seq 1..n)
        self._kinds: dict[str, dict[str, int]] = {
            name: {} for name in self.names
        }  # per node: one thread each
        self._queue: dict[str, deque[tuple[str, dict[str, Any], datetime]]] = {n: deque() for n in self.names}
        self._slot = dict.fromkeys(self.names, 0)  # next stock slot per node
        self._open: dict[str, tuple[str, int]] = {}  # node -> (device, slot it closes)
        self._rng = {name: random.Random(f"{seed}-{name}") for name in self.names}

    def catch_up(self, sim_min: float) -> None:
        """Queue every fact due by simulated minute `sim_min`."""
        count = len(self.names)
        for i, name in enumerate(self.names):
            phase = STOCK_EVERY_MIN * i / count  # nodes spread over the 10 minutes, as real ones would be
            while phase + STOCK_EVERY_MIN * self._slot[name] <= sim_min:
                slot = self._slot[name]
                at = SIM_START + timedelta(minutes=phase + STOCK_EVERY_MIN * slot)
                self._queue[name].extend(self._facts_for(name, slot, at))
                self._slot[name] += 1

    def tick(self, name: str, session: Session) -> None:
        """Append `name`'s queued facts (in its agent's tick and transaction)."""
        queue = self._queue[name]
        while queue:
            kind, body, at = queue[0]
            append_fact(session, name, kind, body, at)
            self.written[name] += 1
            self._kinds[name][kind] = self._kinds[name].get(kind, 0) + 1
            queue.popleft()  # only now: `pending` stays above 0 until `written` counts the fact

    def pending(self) -> int:
        """Facts queued and not yet appended."""
        return sum(len(queue) for queue in self._queue.values())

    @property
    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for per_node in self._kinds.values():
            for kind, n in per_node.items():
                out[kind] = out.get(kind, 0) + n
        return out

    def _facts_for(self, name: str, slot: int, at: datetime) -> list[tuple[str, dict[str, Any], datetime]]:
        rng = self._rng[name]
        stock = {
            good: {
                "qty": round(rng.uniform(20, 900), 1),
                "min": 100.0,
                "surplus": round(rng.uniform(0, 80), 1),
                "shortfall": 0.0,
            }
            for good in GOODS
        }
        out: list[tuple[str, dict[str, Any], datetime]] = [("stock", {"community": name, "goods": stock}, at)]
        opened = self._open.get(name)
        if opened is not None and slot >= opened[1]:
            body = {"community": name, "device": opened[0], "reason": "silent", "state": "closed"}
            out.append(("fault", body, at))
            del self._open[name]
        elif opened is None and rng.random() < FAULT_CHANCE:
            device = f"{name}-pump-{rng.randint(1, 3)}"
            out.append(
                ("fault", {"community": name, "device": device, "reason": "silent", "state": "open"}, at)
            )
            self._open[name] = (device, slot + rng.randint(1, 6))
        return out

    def expected(self) -> set[tuple[str, int]]:
        """Every (origin, seq) written."""
        return {(name, seq) for name, n in self.written.items() for seq in range(1, n + 1)}


# -- the run --


@dataclass(frozen=True)
class FedConfig:
    """One run of the federation part."""

    nodes: int = 50
    seed: int = 1
    sim_hour_s: float = 60.0
    warm_hours: float = 0.5
    partition_hours: float = 3.0
    isolate: float = 0.1
    beat_s: float = 5.0
    resend_s: float = 5.0
    lease_s: float = 30.0
    tick_s: float = 0.5
    idle_s: float = 20.0
    converge_timeout_s: float = 300.0
    failover_wait_s: float | None = None  # how long to wait for a new holder; None: 4 leases


@dataclass
class FedResult:
    """What the federation part measured."""

    nodes: int
    links: int
    written: int
    kinds: dict[str, int]
    lost: int
    duplicated: int
    unexpected: int
    converged: bool
    converge_s: float | None
    failover_s: float | None
    failover_from: str | None
    failover_to: str | None
    false_silence_faults: int
    partition_holders_ok: int  # nodes naming the first node they still reached as holder at the cut's end
    sim_hours: float
    run_real_s: float
    wire_bytes: int  # through the cables, first write to convergence
    payload_bytes: int  # frames the agents sent and received (JSON), same span
    idle_wire_bytes: int
    idle_s: float
    redundant_deliveries: int  # facts that arrived at a node already holding them (discarded)
    rejected: int
    start_s: float
    process_cpu_cores: float  # this process (agents, cables, stores) over the writing span
    broker_rss_mb: float  # mean Mosquitto RSS per node at the end


def run_federation(config: FedConfig, workdir: Path) -> FedResult:
    """Build the region, run the phases, check the stores."""
    names = node_names(config.nodes)
    links = link_graph(names, config.seed)
    writer = Writer(names, config.seed)
    began = time.monotonic()
    fed = SimFederation(
        workdir,
        names,
        links,
        beat_s=config.beat_s,
        resend_s=config.resend_s,
        lease_s=config.lease_s,
        tick_s=config.tick_s,
        on_tick=writer.tick,
    )
    say("starting %s nodes (%s links, %s Mosquitto processes)", len(names), len(links), len(names))
    with many_sockets():
        try:
            fed.start()
            start_s = time.monotonic() - began
            say("started in %.1f s; waiting for every link", start_s)
            wait_links(fed, timeout=60)
            return phases(fed, writer, config, names, links, start_s)
        finally:
            fed.stop()


def phases(
    fed: SimFederation,
    writer: Writer,
    config: FedConfig,
    names: list[str],
    links: list[tuple[str, str]],
    start_s: float,
) -> FedResult:
    """Idle, warm, partition, heal, failover."""
    cables = all_cables(fed)
    wire0 = wire_bytes(cables)
    time.sleep(config.idle_s)
    idle_wire = wire_bytes(cables) - wire0
    say("idle %.0f s: %s bytes on the wire (beats, keepalives)", config.idle_s, idle_wire)

    wire0, payload0 = wire_bytes(cables), payload_bytes(fed)
    cpu0, wall0 = _own_cpu(), time.monotonic()
    groups = partition_groups(names, config.isolate, config.seed)
    warm_end = config.warm_hours * 60
    total = (config.warm_hours + config.partition_hours) * 60
    cut = False
    last_log = 0.0
    while True:
        sim_min = (time.monotonic() - wall0) / config.sim_hour_s * 60
        writer.catch_up(min(sim_min, total))
        if not cut and sim_min >= warm_end:
            cut_between(fed, groups)
            cut = True
            count = len(set(parts(names, links, groups).values()))
            alone = len(set(groups.values())) - 2
            say("sim %.1f h: cut two halves and %s nodes alone: %s parts", sim_min / 60, alone, count)
        if sim_min >= total:
            break
        if time.monotonic() - last_log >= 5:
            held = held_counts(fed)
            say(
                "sim %.1f h%s: %s written, held min %s max %s, %s wire bytes",
                sim_min / 60,
                " (cut)" if cut else "",
                sum(writer.written.values()),
                min(held.values()),
                max(held.values()),
                wire_bytes(cables) - wire0,
            )
            last_log = time.monotonic()
        time.sleep(0.1)
    while writer.pending():  # the last facts due are appended in the agents' next tick, still cut off
        time.sleep(0.05)
    holders_ok = part_holders(fed, parts(names, links, groups))
    say(
        "end of the cut: %s of %s nodes name the first node they still reach as holder",
        holders_ok,
        len(names),
    )
    for cable in cables:
        cable.mend()
    healed = time.monotonic()
    expected_total = sum(writer.written.values())
    say("healed; writing stopped at %s facts; waiting for every node to hold them all", expected_total)
    converge_s = wait_held(fed, expected_total, healed, config.converge_timeout_s)
    wire = wire_bytes(cables) - wire0
    payload = payload_bytes(fed) - payload0
    cpu = (_own_cpu() - cpu0) / (time.monotonic() - wall0)
    run_real_s = time.monotonic() - wall0
    expected = writer.expected()
    lost, unexpected, duplicated = check_stores(fed, expected)
    silence = foreign_faults(fed)
    stats = [node.agent.stats for node in fed.nodes.values() if node.agent is not None]
    broker_rss = [rss_kib(node.broker.pid) for node in fed.nodes.values() if node.broker.pid]
    say("stores checked: lost %s, duplicated %s, unexpected %s", lost, duplicated, unexpected)
    failover_s, old, new = failover(fed, config)
    return FedResult(
        nodes=len(names),
        links=len(links),
        written=expected_total,
        kinds=dict(writer.kinds),
        lost=lost,
        duplicated=duplicated,
        unexpected=unexpected,
        converged=converge_s is not None and lost == 0 and unexpected == 0,
        converge_s=converge_s,
        failover_s=failover_s,
        failover_from=old,
        failover_to=new,
        false_silence_faults=silence,
        partition_holders_ok=holders_ok,
        sim_hours=config.warm_hours + config.partition_hours,
        run_real_s=run_real_s,
        wire_bytes=wire,
        payload_bytes=payload,
        idle_wire_bytes=idle_wire,
        idle_s=config.idle_s,
        redundant_deliveries=sum(s.duplicates for s in stats),
        rejected=sum(s.rejected for s in stats),
        start_s=start_s,
        process_cpu_cores=cpu,
        broker_rss_mb=sum(broker_rss) / max(1, len(broker_rss)) / 1024,
    )


def all_cables(fed: SimFederation) -> list[Cable]:
    return [cable for node in fed.nodes.values() for cable in node.cables.values()]


def wire_bytes(cables: Sequence[Cable]) -> int:
    return sum(cable.bytes for cable in cables)


def payload_bytes(fed: SimFederation) -> int:
    agents = [node.agent for node in fed.nodes.values() if node.agent is not None]
    return sum(a.stats.sent_bytes + a.stats.received_bytes for a in agents)


def wait_links(fed: SimFederation, timeout: float) -> None:
    """Until every agent sees every one of its links up (a frame heard over a live connection)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        down = [
            (node.name, peer)
            for node in fed.nodes.values()
            if node.agent is not None
            for peer in node.agent.links
            if not node.agent.link_up(peer)
        ]
        if not down:
            return
        time.sleep(0.5)
    raise SystemExit(f"links still down after {timeout:.0f} s: {down[:5]}")


def cut_between(fed: SimFederation, groups: dict[str, int]) -> None:
    """Cut every cable whose two ends are in different parts."""
    for node in fed.nodes.values():
        for peer, cable in node.cables.items():
            if groups[node.name] != groups[peer]:
                cable.cut()


def parts(names: Sequence[str], links: Sequence[tuple[str, str]], groups: dict[str, int]) -> dict[str, str]:
    """Each node's part during the cut, named by its first node: the nodes it still reaches over uncut links
    (a node of a half whose links all run to cut-off nodes is a part of its own)."""
    first = {name: name for name in names}

    def root(name: str) -> str:
        while first[name] != name:
            name = first[name]
        return name

    for a, b in links:
        if groups[a] == groups[b]:
            ra, rb = root(a), root(b)
            first[max(ra, rb)] = min(ra, rb)
    return {name: root(name) for name in names}


def part_holders(fed: SimFederation, part_of: dict[str, str]) -> int:
    """Nodes naming as holder the first node (by name) of the part they are cut into, as the lease should."""
    agents = {name: node.agent for name, node in fed.nodes.items() if node.agent is not None}
    return sum(1 for name, agent in agents.items() if agent.holder() == part_of[name])


def held_counts(fed: SimFederation) -> dict[str, int]:
    """Signed facts held per node."""
    out = {}
    for name, node in fed.nodes.items():
        with node.sessions() as session:
            query = select(func.count()).select_from(FedFact).where(FedFact.sig.is_not(None))
            out[name] = int(session.scalar(query) or 0)
    return out


def wait_held(fed: SimFederation, total: int, since: float, timeout: float) -> float | None:
    """Real seconds from `since` until every node holds `total` signed facts, or None after `timeout`."""
    last_log = 0.0
    while time.monotonic() - since < timeout:
        held = held_counts(fed)
        if all(n == total for n in held.values()):
            took = time.monotonic() - since
            say("every node holds %s facts, %.1f s after the heal", total, took)
            return took
        if time.monotonic() - last_log >= 5:
            behind = sum(1 for n in held.values() if n < total)
            say(
                "  %.0f s after heal: %s nodes behind, worst holds %s of %s",
                time.monotonic() - since,
                behind,
                min(held.values()),
                total,
            )
            last_log = time.monotonic()
        time.sleep(0.5)
    return None


def check_stores(fed: SimFederation, expected: set[tuple[str, int]]) -> tuple[int, int, int]:
    """(lost at the worst node, facts held that nobody wrote at the worst node, duplicated rows summed)."""
    lost = unexpected = duplicated = 0
    for node in fed.nodes.values():
        held = node.facts()
        lost = max(lost, len(expected - held))
        unexpected = max(unexpected, len(held - expected))
        with node.engine.connect() as conn:
            rows = conn.execute(text("SELECT COUNT(*) FROM fed_facts")).scalar_one()
            distinct = conn.execute(text("SELECT COUNT(*) FROM (SELECT DISTINCT origin, seq FROM fed_facts)"))
            duplicated += int(rows) - int(distinct.scalar_one())
    return lost, unexpected, duplicated


def foreign_faults(fed: SimFederation) -> int:
    """Fault facts, at the node holding most, whose device's community is not their origin node's."""
    worst = 0
    for node in fed.nodes.values():
        with node.sessions() as session:
            faults = session.execute(select(FedFact.origin, FedFact.body).where(FedFact.kind == "fault"))
            foreign = sum(
                1
                for origin, body in faults
                if body.get("community") != origin or not str(body.get("device", "")).startswith(f"{origin}-")
            )
        worst = max(worst, foreign)
    return worst


def failover(fed: SimFederation, config: FedConfig) -> tuple[float | None, str | None, str | None]:
    """Stop the agreed holder's agent; real seconds until every other node names one new holder."""
    deadline = time.monotonic() + config.lease_s * 3
    agreed: str | None = None
    while time.monotonic() < deadline:
        seen = {node.agent.holder() for node in fed.nodes.values() if node.agent is not None}
        if len(seen) == 1:
            agreed = seen.pop()
            break
        time.sleep(0.2)
    if agreed is None:
        say("failover: the nodes never agreed on a holder; not measured")
        return None, None, None
    say(
        "every node names %s as holder; stopping its agent (lease %.0f s, beat %.0f s)",
        agreed,
        config.lease_s,
        config.beat_s,
    )
    stopped = time.monotonic()
    fed.stop_agent(agreed)
    waited = config.failover_wait_s or config.lease_s * 4
    deadline = stopped + waited
    while time.monotonic() < deadline:
        seen = {node.agent.holder() for node in fed.nodes.values() if node.agent is not None}
        if len(seen) == 1 and agreed not in seen:
            new = seen.pop()
            took = time.monotonic() - stopped
            say("every other node names %s, %.1f s after %s stopped", new, took, agreed)
            return took, agreed, new
        time.sleep(0.1)
    say("failover: no single new holder after %.0f s", waited)
    return None, agreed, None


# -- one real node's footprint --


@dataclass(frozen=True)
class Footprint:
    """A process tree's resident memory and CPU while nothing is asked of it."""

    rss_mb: float  # mean of the samples (total of the tree; pages shared between processes count in each)
    rss_max_mb: float
    pss_mb: float  # mean proportional set size of the tree: each shared page split between its sharers, so
    # this is the memory the tree takes from the machine
    cpu: float  # CPU seconds per second over the sample window (1.0 = one core busy)
    processes: int  # in the tree at the last sample
    samples: int
    sample_s: float


def rss_kib(pid: int | None) -> int:
    """VmRSS of a process in KiB; 0 once it is gone."""
    if pid is None:
        return 0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def pss_kib(pid: int) -> int:
    """A process's proportional set size in KiB (/proc/<pid>/smaps_rollup); 0 once it is gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
    return int(match.group(1)) if match else 0


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process in clock ticks, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def process_tree(root: int) -> set[int]:
    """`root` and every live process below it, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = {root}, {root}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def measure_footprint(
    command: Sequence[str],
    *,
    log_path: Path,
    port: int | None = None,
    url_pattern: str = r"https?://[\w.\-]+:(\d+)",
    env: dict[str, str] | None = None,
    start_timeout_s: float = 120.0,
    settle_s: float = 30.0,
    sample_s: float = 60.0,
) -> Footprint:
    """Start `command`, wait until it answers on `port` (or on the first URL with a port it prints), let it
    settle, sample its process tree's RSS and CPU once a second, then stop it (SIGINT, then SIGTERM, SIGKILL).
    """
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        ready_port = _wait_ready(proc, log_path, port, url_pattern, start_timeout_s)
        say("footprint: %s answers on port %s; settling %.0f s", Path(command[0]).name, ready_port, settle_s)
        _alive_for(proc, settle_s, log_path)
        clock_tick = os.sysconf("SC_CLK_TCK")
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        rss: list[int] = []
        pss: list[int] = []
        tree: set[int] = set()
        began = time.monotonic()
        while time.monotonic() - began < sample_s:
            tree = process_tree(proc.pid)
            total = proportional = 0
            for pid in tree:
                ticks = cpu_ticks(pid)
                if ticks is None:
                    continue
                first.setdefault(pid, ticks)
                last[pid] = ticks
                total += rss_kib(pid)
                proportional += pss_kib(pid)
            rss.append(total)
            pss.append(proportional)
            _alive_for(proc, 1.0, log_path)
        window = time.monotonic() - began
        cpu = sum(last[pid] - first[pid] for pid in last) / clock_tick / window
        return Footprint(
            rss_mb=sum(rss) / len(rss) / 1024,
            rss_max_mb=max(rss) / 1024,
            pss_mb=sum(pss) / len(pss) / 1024,
            cpu=cpu,
            processes=len(tree),
            samples=len(rss),
            sample_s=window,
        )
    finally:
        stop_process(proc)


def _wait_ready(
    proc: subprocess.Popen[bytes], log_path: Path, port: int | None, pattern: str, timeout: float
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before answering; log:\n{_tail(log_path)}")
        if port is None:
            match = re.search(pattern, log_path.read_text(errors="replace"))
            port = int(match.group(1)) if match else None
        if port is not None and port_open("127.0.0.1", port):
            return port
        time.sleep(0.5)
    raise RuntimeError(f"no answer within {timeout:.0f} s; log:\n{_tail(log_path)}")


def _alive_for(proc: subprocess.Popen[bytes], seconds: float, log_path: Path) -> None:
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return
    raise RuntimeError(f"exited with {proc.returncode} while being measured; log:\n{_tail(log_path)}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Ask the process to stop as Ctrl-C would; its own process group is killed if it will not."""
    for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGTERM, 10.0)):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # children the supervisor left behind, if any


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:]


def cli_help(*args: str) -> str | None:
    """`rhizome <args> --help`'s text, or None when the command does not exist."""
    command = [sys.executable, "-m", "gateway.process.cli", *args, "--help"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def node_footprint(extra: Sequence[str], settle_s: float, sample_s: float) -> Footprint | None:
    """One real node (`rhizome node run`) measured, or None when this checkout has no such command."""
    if cli_help("node") is None:
        say("node footprint: not measured (rhizome node run not available)")
        return None
    usage = cli_help("node", "run") or ""
    with tempfile.TemporaryDirectory(prefix="rhizome-node-") as tmp:
        if not extra:
            extra = _one_node(Path(tmp))
        command = [sys.executable, "-m", "gateway.process.cli", "--data-dir", tmp, "node", "run", *extra]
        port = None
        if "--port" in usage and "--port" not in extra:
            port = free_port("127.0.0.1")
            command += ["--port", str(port)]
        say("node footprint: %s", shlex.join(command))
        return measure_footprint(
            command, log_path=Path(tmp) / "node.log", port=port, settle_s=settle_s, sample_s=sample_s
        )


def _one_node(data_dir: Path) -> list[str]:
    """A node as a community runs one: utuado of the bundled region, its own key, a federation file naming
    it and a neighbour that dials it (absent here: the node waits, as when its uplink is down)."""
    from gateway.federation.keys import KEY_FILE, NodeKey
    from gateway.store.region import sample_region_path

    key = NodeKey.load_or_create(data_dir / KEY_FILE)
    port = free_port("127.0.0.1")
    federation = data_dir / "federation.toml"
    federation.write_text(
        f'[nodes.utuado]\npublic_key = "{key.public}"\nbroker = "mqtt://127.0.0.1:{port}"\n\n'
        f'[nodes.jayuya]\npublic_key = "{NodeKey.generate().public}"\n\n'
        '[[links]]\ndial = "jayuya"\nto = "utuado"\n',
        encoding="utf-8",
    )
    return ["--name", "utuado", "--federation", str(federation), "--region", str(sample_region_path())]


def command_footprint(
    command: Sequence[str], port: int | None, settle_s: float, sample_s: float
) -> Footprint:
    """Any command's footprint (--footprint-cmd), e.g. `rhizome demo` to show the measure itself works."""
    with tempfile.TemporaryDirectory(prefix="rhizome-footprint-") as tmp:
        say("footprint of: %s", shlex.join(command))
        return measure_footprint(
            command, log_path=Path(tmp) / "cmd.log", port=port, settle_s=settle_s, sample_s=sample_s
        )


# -- report --


def per_node_hour(total: int, nodes: int, hours: float) -> float:
    """Bytes each node exchanged (sent + received: every link byte has two ends) per hour."""
    return 2 * total / nodes / hours if hours > 0 else 0.0


def report(
    result: FedResult | None, config: FedConfig, footprint: Footprint | None, label: str
) -> dict[str, Any]:
    """Print the table; return the JSON line's object."""
    rows: list[tuple[str, str]] = []
    out: dict[str, Any] = {}
    if result is not None:
        sim_h, real_h = result.sim_hours, result.run_real_s / 3600
        wire_sim = per_node_hour(result.wire_bytes, result.nodes, sim_h)
        wire_real = per_node_hour(result.wire_bytes, result.nodes, real_h)
        payload_sim = result.payload_bytes / result.nodes / sim_h  # agents count both their ends themselves
        idle_hour = per_node_hour(result.idle_wire_bytes, result.nodes, result.idle_s / 3600)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(result.kinds.items()))
        rate = sum(result.kinds.values()) / result.nodes / sim_h
        rows += [
            ("nodes / links", f"{result.nodes} / {result.links} (ring + one chord each, seed {config.seed})"),
            ("start (brokers, stores, agents)", f"{result.start_s:.1f} s"),
            ("clock", f"1 simulated hour = {config.sim_hour_s:g} real s"),
            (
                "beat / resend / lease / tick",
                f"{config.beat_s:g} / {config.resend_s:g} / {config.lease_s:g} / {config.tick_s:g} real s",
            ),
            ("writing", f"{config.warm_hours:g} h linked + {config.partition_hours:g} h cut (simulated)"),
            ("cut", f"two halves, {round(config.nodes * config.isolate)} nodes alone"),
            (
                "facts written",
                f"{result.written} ({kinds}); {rate:.2f} per node per sim h",
            ),
            (
                "holders during the cut",
                f"{result.partition_holders_ok} of {result.nodes} named the first node they still reached",
            ),
            ("converged", f"{result.converged} in {_num(result.converge_s)} s after the heal"),
            ("lost / duplicated / unexpected", f"{result.lost} / {result.duplicated} / {result.unexpected}"),
            (
                "redundant deliveries (discarded)",
                f"{result.redundant_deliveries}; rejected {result.rejected}",
            ),
            (
                "false silence faults",
                f"{result.false_silence_faults} (fault facts naming another community's device)",
            ),
            ("failover", f"{_num(result.failover_s)} s ({result.failover_from} -> {result.failover_to})"),
            (
                "wire bytes/node/sim hour",
                f"{wire_sim:,.0f} (MQTT through the cables, sent+received; beats compressed)",
            ),
            (
                "wire bytes/node/real hour",
                f"{wire_real:,.0f} (same bytes over the run's {result.run_real_s:.0f} real s)",
            ),
            ("frame bytes/node/sim hour", f"{payload_sim:,.0f} (JSON frames only, the agents' own counts)"),
            (
                "idle wire bytes/node/hour",
                f"{idle_hour:,.0f} (beats + keepalives, nothing written, real time)",
            ),
            (
                "this process's CPU",
                f"{result.process_cpu_cores:.2f} cores of {os.cpu_count()} "
                f"(agents, cables, {result.nodes} stores)",
            ),
            ("Mosquitto RSS per node", f"{result.broker_rss_mb:.1f} MiB"),
        ]
        out |= {
            "nodes": result.nodes,
            "lost": result.lost,
            "duplicated": result.duplicated,
            "converged": result.converged,
            "converge_s": _round(result.converge_s),
            "failover_s": _round(result.failover_s),
            "false_silence_faults": result.false_silence_faults,
            "bytes_per_node_hour": round(wire_sim),
        }
    if footprint is not None:
        rows += [
            ("footprint of", label),
            (
                "footprint RSS",
                f"{footprint.rss_mb:.1f} MiB mean, {footprint.rss_max_mb:.1f} max, "
                f"{footprint.processes} processes",
            ),
            ("footprint PSS", f"{footprint.pss_mb:.1f} MiB mean ({footprint.pss_mb * 1.048576:.0f} MB)"),
            ("footprint idle CPU", f"{footprint.cpu:.3f} cores over {footprint.sample_s:.0f} s"),
        ]
    else:
        rows.append(("node footprint", "not measured (rhizome node run not available)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    out |= {
        "node_rss_mb": None if footprint is None else round(footprint.rss_mb, 1),
        "node_pss_mb": None if footprint is None else round(footprint.pss_mb, 1),
        "node_idle_cpu": None if footprint is None else round(footprint.cpu, 4),
        "footprint_of": None if footprint is None else label,
    }
    if result is not None:
        out |= {
            "idle_bytes_per_node_hour": round(
                per_node_hour(result.idle_wire_bytes, result.nodes, result.idle_s / 3600)
            ),
            "facts_written": result.written,
            "sim_hour_s": config.sim_hour_s,
            "partition_hours": config.partition_hours,
            "lease_s": config.lease_s,
            "beat_s": config.beat_s,
        }
    return out


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sim-hour-s", type=float, default=60.0, help="real seconds per simulated hour [60]")
    parser.add_argument(
        "--warm-hours", type=float, default=0.5, help="simulated hours linked, before the cut [0.5]"
    )
    parser.add_argument("--partition-hours", type=float, default=3.0, help="simulated hours cut [3]")
    parser.add_argument("--isolate", type=float, default=0.1, help="fraction of nodes cut off alone [0.1]")
    parser.add_argument("--beat-s", type=float, default=5.0)
    parser.add_argument("--resend-s", type=float, default=5.0)
    parser.add_argument("--lease-s", type=float, default=30.0)
    parser.add_argument("--tick-s", type=float, default=0.5, help="agent worker tick [0.5]")
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle phase, real seconds [20]")
    parser.add_argument("--skip-federation", action="store_true", help="only the footprint")
    parser.add_argument("--skip-footprint", action="store_true")
    parser.add_argument("--footprint-cmd", help="measure this command instead of `rhizome node run`")
    parser.add_argument("--footprint-port", type=int, help="the port that says --footprint-cmd is up")
    parser.add_argument("--node-run-args", default="", help="extra arguments for `rhizome node run`")
    parser.add_argument("--settle-s", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    config = FedConfig(
        nodes=args.nodes,
        seed=args.seed,
        sim_hour_s=args.sim_hour_s,
        warm_hours=args.warm_hours,
        partition_hours=args.partition_hours,
        isolate=args.isolate,
        beat_s=args.beat_s,
        resend_s=args.resend_s,
        lease_s=args.lease_s,
        tick_s=args.tick_s,
        idle_s=args.idle_s,
    )
    result = None
    if not args.skip_federation:
        with tempfile.TemporaryDirectory(prefix="rhizome-fed-") as tmp:
            result = run_federation(config, Path(tmp))
    footprint, label = None, "rhizome node run"
    if args.footprint_cmd:
        command = shlex.split(args.footprint_cmd)
        footprint = command_footprint(command, args.footprint_port, args.settle_s, args.sample_s)
        label = shlex.join(command)
    elif not args.skip_footprint:
        footprint = node_footprint(shlex.split(args.node_run_args), args.settle_s, args.sample_s)
    out = report(result, config, footprint, label)
    print(json.dumps(out))
    ok = result is None or (result.converged and result.lost == 0 and result.duplicated == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
