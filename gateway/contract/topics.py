"""MQTT contract v1: the topic tree, its QoS and the slugs that name its levels (stdlib only).

Every topic Rhizome publishes or subscribes to is built here; `docs/mqtt.md` lists them in prose.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

from gateway.contract.reasons import ProtocolError

ROOT: Final = "rhizome/v1"
QOS: Final = 1

SLUG_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
UPSTREAM_KINDS: Final = ("telemetry", "stock", "state")


def is_slug(value: object) -> bool:
    """True for identifiers usable as one topic level: lowercase ASCII, digits and inner dashes."""
    return isinstance(value, str) and SLUG_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Topic:
    """One upstream topic: rhizome/v1/<community>/<site>/<device>/<kind>."""

    community: str
    site: str
    device: str
    kind: str

    def __post_init__(self) -> None:
        for name in ("community", "site", "device"):
            if not is_slug(getattr(self, name)):
                raise ProtocolError("topic_invalid", f"{name} {getattr(self, name)!r} is not a slug")
        if self.kind not in UPSTREAM_KINDS:
            raise ProtocolError("topic_invalid", f"kind {self.kind!r} not one of {UPSTREAM_KINDS}")

    @classmethod
    def parse(cls, topic: str) -> Topic:
        """Parse a topic string or raise ProtocolError('topic_invalid')."""
        return _parse_topic(topic)

    def __str__(self) -> str:
        return f"{ROOT}/{self.community}/{self.site}/{self.device}/{self.kind}"

    def sibling(self, kind: str) -> Topic:
        """The same device's topic of another kind."""
        return Topic(self.community, self.site, self.device, kind)


@functools.lru_cache(maxsize=65536)  # a device uses the same few topics all its life
def _parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != ROOT:
        raise ProtocolError("topic_invalid", f"expected {ROOT}/<community>/<site>/<device>/<kind>")
    return Topic(parts[2], parts[3], parts[4], parts[5])


# Subscriptions and downstream topics.
UPSTREAM_FILTER: Final = f"{ROOT}/+/+/+/+"
INTERNAL_EVENTS: Final = f"{ROOT}/internal/events"
# Simulation control: what happens to a simulated device in the world (a crew's repair, goods unloaded).
# Outside the upstream filter, so the gateway never sees it; `rhizome devices simulate --control` reads it.
SIM_CONTROL_FILTER: Final = f"{ROOT}/sim/+"


def shared_filter(group: str, topic_filter: str = UPSTREAM_FILTER) -> str:
    """An MQTT v5 shared subscription: the broker spreads messages over the group's members."""
    if not is_slug(group):
        raise ValueError(f"group {group!r} is not a slug")
    return f"$share/{group}/{topic_filter}"


def community_alerts_topic(community: str) -> str:
    """Alerts everyone in a community may see (assembly screens, crew phones)."""
    return f"{ROOT}/alerts/{community}"


def member_alerts_topic(member_id: int) -> str:
    """Alerts addressed to one crew member."""
    return f"{ROOT}/members/{member_id}/alerts"


def member_routes_topic(member_id: int) -> str:
    """Route notices addressed to one driver."""
    return f"{ROOT}/members/{member_id}/routes"


def sim_control_topic(device: str) -> str:
    """Simulation control of one simulated device: {"action": "repair"} or {"action": "receive", ...}."""
    return f"{ROOT}/sim/{device}"


def command_topic(community: str, site: str, device: str) -> str:
    """Commands addressed to one device (the only topic a device subscribes to)."""
    return f"{ROOT}/{community}/{site}/{device}/command"


def is_command_topic(topic: str) -> bool:
    """A device's command topic: downstream traffic that the gateway's upstream wildcard also matches."""
    parts = topic.split("/")
    return len(parts) == 6 and parts[5] == "command" and f"{parts[0]}/{parts[1]}" == ROOT


# Every downstream topic of one kind, as filters: what the broker's ACL lets the gateway publish.
COMMAND_FILTER: Final = f"{ROOT}/+/+/+/command"
COMMUNITY_ALERTS_FILTER: Final = f"{ROOT}/alerts/+"
MEMBER_ALERTS_FILTER: Final = f"{ROOT}/members/+/alerts"
MEMBER_ROUTES_FILTER: Final = f"{ROOT}/members/+/routes"

# A community broker's bridge publishes its link state here, retained: "1" when the link is up; the regional
# broker holds the bridge's will "0" and publishes it when the link drops uncleanly (Mosquitto's bridge
# `notifications`). Five levels, so the upstream filter never matches it; it lies inside the community's own
# namespace, so the ACL that confines a bridge to `rhizome/v1/<community>/...` can allow it.
BRIDGE_STATE_FILTER: Final = f"{ROOT}/+/bridge/state"
BRIDGE_UP: Final = b"1"
BRIDGE_DOWN: Final = b"0"


def bridge_state_topic(community: str) -> str:
    """Where the bridge of `community`'s own broker says whether its link to the region is up."""
    if not is_slug(community):
        raise ValueError(f"community {community!r} is not a slug")
    return f"{ROOT}/{community}/bridge/state"


def bridge_state_community(topic: str) -> str | None:
    """The community a bridge state topic belongs to; None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[3:] != ["bridge", "state"]:
        return None
    return parts[2] if is_slug(parts[2]) else None
