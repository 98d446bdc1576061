"""Who a node is: its name, its key, and the key the federation file lists for it; the passwords it dials
its peers with. Light (no store), for the agent and the supervisor."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gateway.federation.directory import Federation
from gateway.federation.keys import KEY_FILE, NodeKey
from gateway.process.settings import Settings

PEER_PASSWORDS = "federation"  # <data_dir>/federation/<peer>.password: node.<us> on that peer's broker


def node_name(settings: Settings) -> str:
    """The node's name, or ValueError naming how to give it."""
    if not settings.node_name:
        raise ValueError("a node needs its name: --name or RHIZOME_NODE_NAME")
    return settings.node_name


def check_key(settings: Settings, federation: Federation) -> NodeKey:
    """The node's key, created on first use; it must be the one the federation file lists for the node."""
    name = node_name(settings)
    key = NodeKey.load_or_create(settings.data_dir / KEY_FILE)
    entry = federation.nodes.get(name)
    if entry is None:
        raise ValueError(f"node {name!r} is not in the federation file; add:\n{node_entry(name, key, None)}")
    if entry.public_key != key.public:
        raise ValueError(
            f"the federation file lists another key for {name!r} than {settings.data_dir / KEY_FILE}; "
            f"its entry should read:\n{node_entry(name, key, entry.broker)}"
        )
    return key


def node_entry(name: str, key: NodeKey, broker: str | None) -> str:
    """The node's table for the federation file."""
    broker_line = f'broker = "{broker}"' if broker else 'broker = "mqtt://<address peers reach>:1883"'
    return f'[nodes.{name}]\npublic_key = "{key.public}"\n{broker_line}\n'


def peer_password_reader(data_dir: Path) -> Callable[[str], str | None]:
    """password_for(peer): node.<us>'s password on that peer's broker, read from the node's data dir (or
    RHIZOME_FED_PASSWORD for every peer), each time the agent connects."""

    def password_for(peer: str) -> str | None:
        path = data_dir / PEER_PASSWORDS / f"{peer}.password"
        try:
            return path.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError):
            return os.environ.get("RHIZOME_FED_PASSWORD")

    return password_for
