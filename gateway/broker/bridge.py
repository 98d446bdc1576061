"""Community broker config: a local Mosquitto that bridges one community to the regional broker.

Devices publish to their community's broker, which forwards the upstream topics to the regional broker
over a bridge with a persistent session. When the uplink drops, the local broker queues for the bridge (a
bounded queue, persisted to disk) and delivers everything when the uplink returns; the gateway's unique
key (device, seq) turns the bridge's redeliveries into counted duplicates, so each reading is stored once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.contract.target import MqttTarget
from gateway.contract.topics import (
    ROOT,
    UPSTREAM_KINDS,
    bridge_state_topic,
    community_alerts_topic,
    is_slug,
    member_alerts_topic,
    member_routes_topic,
)

DEFAULT_QUEUE = 200_000
# Measured on Mosquitto 2.0.11: 100,000 queued 155-byte readings grew its RSS by 56 MB (and mosquitto.db
# to 31 MB), 578 bytes each in memory.
BYTES_PER_QUEUED_MESSAGE = 580


@dataclass(frozen=True)
class BridgeCommunity:
    """What the bridge needs to know about the community it serves."""

    slug: str
    name: str
    member_ids: tuple[int, ...] | None  # None: unknown (a region file has no member ids)
    messages_per_hour: float  # from its devices' report intervals, to size the queue

    def __post_init__(self) -> None:
        if not is_slug(self.slug):
            raise ValueError(f"community {self.slug!r} is not a slug")
        if self.messages_per_hour < 0:
            raise ValueError("messages_per_hour must not be negative")


@dataclass(frozen=True)
class BridgeOptions:
    """Where the regional broker is and how the community broker runs; defaults suit a Debian host."""

    regional: MqttTarget
    queue_messages: int = DEFAULT_QUEUE
    restart_timeout: tuple[int, int] = (5, 60)  # decorrelated-jitter backoff base and cap, seconds
    keepalive_s: int = 30
    listener: str = "1883"
    password_file: str = "/etc/mosquitto/rhizome.passwd"
    acl_file: str = "/etc/mosquitto/rhizome.acl"
    persistence_location: str = "/var/lib/mosquitto/"
    log_dest: str = "file /var/log/mosquitto/mosquitto.log"
    user: str = "mosquitto"
    autosave_interval_s: int = 60

    def __post_init__(self) -> None:
        if self.queue_messages < 1:
            raise ValueError("the bridge queue must be bounded: queue_messages must be at least 1")
        base, cap = self.restart_timeout
        if not 1 <= base <= cap:
            raise ValueError(f"restart_timeout {base} {cap}: need 1 <= base <= cap")
        if not self.regional.username or not self.regional.password:
            raise ValueError("the regional broker refuses anonymous clients: the bridge needs credentials")
        if any(ch in v for v in (self.regional.username, self.regional.password) for ch in "\r\n "):
            raise ValueError("bridge credentials must not contain spaces or line breaks")


def remote_clientid(community: str) -> str:
    """The bridge's client id on the regional broker."""
    return f"rhizome-bridge-{community}"


def notification_topic(community: str) -> str:
    """Where the bridge publishes its retained 1/0 link state on both brokers (also its will): the
    community's own topic of the contract, which the regional ACL allows the bridge and the gateway reads.
    Mosquitto's default, $SYS/broker/connection/<id>/state, is outside the contract's namespace."""
    return bridge_state_topic(community)


def upstream_topics(community: str) -> list[str]:
    """Topics the bridge forwards to the region: the community's telemetry, stock and state."""
    return [f"{ROOT}/{community}/+/+/{kind}" for kind in UPSTREAM_KINDS]


def downstream_topics(community: BridgeCommunity) -> list[str]:
    """Topics the bridge brings home: device commands, community alerts, its members' alerts and routes."""
    return community_downstream(community.slug, community.member_ids or ())


def community_downstream(community: str, member_ids: Sequence[int]) -> list[str]:
    """The downstream topics of one community and its members (also the bridge account's ACL reads)."""
    topics = [f"{ROOT}/{community}/+/+/command", community_alerts_topic(community)]
    for member in member_ids:
        topics += [member_alerts_topic(member), member_routes_topic(member)]
    return topics


def outage_hours(community: BridgeCommunity, queue_messages: int) -> float | None:
    """How long an uplink outage the queue covers at the community's normal rate (None: no devices)."""
    if community.messages_per_hour <= 0:
        return None
    return queue_messages / community.messages_per_hour


def render_community_conf(
    community: BridgeCommunity, options: BridgeOptions, *, now: datetime | None = None
) -> str:
    """A complete mosquitto.conf for the community's own broker, bridge section last."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Rhizome community broker for {_comment(community.name)} ({community.slug}).",
        f"# Generated by `rhizome bridge config --community {community.slug}` on {stamp}.",
        "# See docs/deploy.md.",
        "# Holds the regional broker's password: root:mosquitto, mode 0640 (a reload on SIGHUP reads it",
        "# again after Mosquitto dropped root).",
        "",
        *_local_broker_lines(community, options),
        "",
        *_bridge_lines(community, options),
    ]
    return "\n".join(lines) + "\n"


def _local_broker_lines(community: BridgeCommunity, options: BridgeOptions) -> list[str]:
    """The community broker itself: accounts, persistence, the bounded queue and the devices' listener."""
    hours = outage_hours(community, options.queue_messages)
    coverage = (
        f"{hours:,.0f} h ({hours / 24:.1f} days) at its {community.messages_per_hour:,.0f} messages/hour"
        if hours is not None
        else "an unknown time (no devices registered yet)"
    )
    megabytes = options.queue_messages * BYTES_PER_QUEUED_MESSAGE / 1e6
    return [
        "per_listener_settings false",
        "allow_anonymous false",
        "# Each device may publish only its own topics and read only its own commands, as on the regional",
        "# broker: `rhizome bridge config --broker-dir DIR` writes both files from the store (see",
        "# docs/security.md). The bridge itself is not held to this ACL by Mosquitto; it forwards only the",
        "# topics below.",
        f"password_file {options.password_file}",
        f"acl_file {options.acl_file}",
        f"user {options.user}",
        "",
        "# The bridge's queue survives a restart of this broker.",
        "persistence true",
        f"persistence_location {options.persistence_location}",
        f"autosave_interval {options.autosave_interval_s}",
        "",
        "# Bounded, unlike the regional broker: a community box has little memory. While the uplink is down",
        f"# the bridge queues up to {options.queue_messages:,} messages (~{megabytes:,.0f} MB of memory),",
        f"# which covers {coverage}.",
        "# Beyond that Mosquitto drops new messages for the bridge, after acknowledging them to the devices",
        "# (their spools cannot help): size the queue for the longest outage you expect (--queue).",
        f"max_queued_messages {options.queue_messages}",
        "max_inflight_messages 100",
        "max_packet_size 65536",
        "persistent_client_expiration 14d",
        "set_tcp_nodelay true",
        f"log_dest {options.log_dest}",
        "",
        "# Devices of this community connect here.",
        f"listener {options.listener}",
    ]


def _bridge_lines(community: BridgeCommunity, options: BridgeOptions) -> list[str]:
    """The bridge section (last in the file: every option after `connection` belongs to it)."""
    remote = options.regional
    base, cap = options.restart_timeout
    lines = [
        "# --- Bridge to the regional broker (keep last: every option below belongs to it) ---",
        f"connection rhizome-{community.slug}",
        f"address {remote.host}:{remote.port}",
        # 3.1.1: the bridge needs nothing from v5, and 2.0's v5 bridges do not ask for a session expiry.
        "bridge_protocol_version mqttv311",
        "# A persistent session on both sides: queued messages survive a dropped link in either direction.",
        "cleansession false",
        f"remote_clientid {remote_clientid(community.slug)}",
        f"local_clientid rhizome-bridge-{community.slug}-local",
        f"remote_username {remote.username}",
        f"remote_password {remote.password}",
        f"keepalive_interval {options.keepalive_s}",
        f"restart_timeout {base} {cap}",
        "start_type automatic",
        "try_private true",
        "# The link state, retained: 1 when up; the regional broker holds the bridge's will, 0, for when the",
        "# link drops. On the community's own topic, which the regional ACL allows the bridge (Mosquitto's",
        "# default, $SYS/broker/connection/..., is refused there, and the refused will drops the bridge).",
        "notifications true",
        f"notification_topic {notification_topic(community.slug)}",
    ]
    if remote.tls:
        lines.append(f"bridge_cafile {remote.ca_file or '/etc/ssl/certs/ca-certificates.crt'}")
    lines.append("# Upstream: only this community's own topics, so one box cannot speak for another.")
    lines += [f"topic {topic} out 1" for topic in upstream_topics(community.slug)]
    if community.member_ids is None:
        lines.append("# Member alerts and routes are not bridged: generate from the store to include them.")
    lines += [f"topic {topic} in 1" for topic in downstream_topics(community)]
    return lines


def messages_per_hour(intervals_s: Sequence[float]) -> float:
    """Normal upstream rate of devices reporting every `intervals_s` seconds."""
    return sum(3600.0 / s for s in intervals_s if s > 0)


def _comment(text: str) -> str:
    """A name on one comment line: a line break in a name must not start a config option."""
    return " ".join(text.split())
