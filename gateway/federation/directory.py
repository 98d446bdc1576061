"""The federation file: which nodes exist, their public keys, where their brokers are and who dials whom.

Every node holds the same file (the assembly that admits a node adds its entry and hands the file round);
nothing in it is secret. A node only trusts facts signed by a key listed here.

    lease_s = 30                       # the planning role moves when its holder is unheard this long
    beat_s = 5                         # every link carries a beat this often (a link is down after 3 missed)
    planners = ["valle", "rio"]        # who may hold the regional planning role, first alive wins
    [nodes.valle]
    public_key = "base64 Ed25519"
    broker = "mqtt://10.0.0.2:1883"    # where peers that dial this node connect
    [[links]]
    dial = "rio"                       # rio's agent connects to valle's broker, as account node-rio
    to = "valle"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.contract.errors import InvalidInput
from gateway.contract.target import MqttTarget
from gateway.contract.topics import is_slug

DEFAULT_LEASE_S = 30.0
DEFAULT_BEAT_S = 5.0


@dataclass(frozen=True)
class NodeEntry:
    """One node of the federation."""

    name: str
    public_key: str
    broker: str | None = None


@dataclass(frozen=True)
class Link:
    """`dial` connects to the broker of `to`; both then speak over that one connection."""

    dial: str
    to: str


@dataclass(frozen=True)
class Federation:
    """The federation as one node reads its file."""

    nodes: dict[str, NodeEntry]
    links: tuple[Link, ...] = ()
    planners: tuple[str, ...] = ()
    lease_s: float = DEFAULT_LEASE_S
    beat_s: float = DEFAULT_BEAT_S
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for link in self.links:
            for end in (link.dial, link.to):
                if end not in self.nodes:
                    raise InvalidInput(f"link {link.dial} -> {link.to}: no node {end!r} in the federation")
            if link.dial == link.to:
                raise InvalidInput(f"link {link.dial} -> {link.to}: a node does not link to itself")
            if self.nodes[link.to].broker is None:
                raise InvalidInput(f"link {link.dial} -> {link.to}: node {link.to!r} lists no broker")
        for name in self.planners:
            if name not in self.nodes:
                raise InvalidInput(f"planner {name!r} is not a node of the federation")
        if not 1 <= self.lease_s <= 3600:
            raise InvalidInput("lease_s must be 1 to 3600 seconds")
        if not 0.1 <= self.beat_s <= self.lease_s / 2:
            raise InvalidInput("beat_s must be at least 0.1 s and at most half of lease_s")

    def peers_of(self, node: str) -> list[tuple[str, bool]]:
        """(peer, this node dials it) for every link of `node`."""
        out = [(link.to, True) for link in self.links if link.dial == node]
        return out + [(link.dial, False) for link in self.links if link.to == node]

    def diameter(self) -> int:
        """The most links between any two connected nodes: beats relayed that far arrive up to that many beat
        periods late, so a lease shorter than beat_s x (diameter + 3) can expire a holder that is alive."""
        neighbours: dict[str, set[str]] = {name: set() for name in self.nodes}
        for link in self.links:
            neighbours[link.dial].add(link.to)
            neighbours[link.to].add(link.dial)
        longest = 0
        for start in self.nodes:
            seen, frontier, hops = {start}, [start], 0
            while frontier:
                frontier = [n for node in frontier for n in neighbours[node] if n not in seen]
                seen.update(frontier)
                hops += bool(frontier)
            longest = max(longest, hops)
        return longest

    def lease_is_safe(self) -> bool:
        """Whether the lease outlasts the beats' relay across the whole federation (see `diameter`)."""
        return self.lease_s >= self.beat_s * (self.diameter() + 3)

    def planner_order(self) -> tuple[str, ...]:
        """Who takes the regional planning role, in order: the file's list, else every node by name."""
        return self.planners or tuple(sorted(self.nodes))

    def broker_of(self, node: str, username: str, password: str | None) -> MqttTarget:
        """Where `username` reaches `node`'s broker."""
        url = self.nodes[node].broker
        if url is None:
            raise InvalidInput(f"node {node!r} lists no broker")
        target = MqttTarget.from_url(url)
        return MqttTarget(target.host, target.port, username, password, target.tls, "5", target.ca_file)


def parse_federation(data: dict[str, Any]) -> Federation:
    """A federation from the file's parsed TOML (or the same shape built in code); InvalidInput if wrong."""
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise InvalidInput("a federation file needs a [nodes.<name>] table per node")
    nodes: dict[str, NodeEntry] = {}
    for name, entry in raw_nodes.items():
        if not is_slug(name):
            raise InvalidInput(f"node name {name!r} is not a slug (lowercase letters, digits, dashes)")
        if not isinstance(entry, dict) or not isinstance(entry.get("public_key"), str):
            raise InvalidInput(f"node {name!r} needs a public_key")
        broker = entry.get("broker")
        if broker is not None:
            try:
                MqttTarget.from_url(str(broker))
            except ValueError as exc:
                raise InvalidInput(f"node {name!r}: {exc}") from exc
        nodes[name] = NodeEntry(name, entry["public_key"], None if broker is None else str(broker))
    links = []
    for item in data.get("links", []):
        if not isinstance(item, dict) or not {"dial", "to"} <= set(item):
            raise InvalidInput("each [[links]] entry needs dial and to")
        links.append(Link(str(item["dial"]), str(item["to"])))
    planners = data.get("planners", [])
    if not isinstance(planners, list):
        raise InvalidInput("planners is a list of node names")
    timing = []
    for name, default in (("lease_s", DEFAULT_LEASE_S), ("beat_s", DEFAULT_BEAT_S)):
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{name} is a number of seconds")
        timing.append(float(value))
    return Federation(nodes, tuple(links), tuple(str(p) for p in planners), timing[0], timing[1])


def read_federation(path: Path) -> Federation:
    """Read and check a federation file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    return parse_federation(data)
