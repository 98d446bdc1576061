"""Whether this dashboard runs as a community node, and of which federation.

Read once at start (a federation file that cannot be read stops the dashboard, as a bad tile URL does):
the pages and the map ask `current_node()`, which is None when the dashboard is not a node, and then show
nothing of the federation (its pages answer 404).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, abort, current_app

from gateway.federation.directory import Federation, read_federation
from gateway.process.settings import Settings

EXTENSION = "rhizome.node"


@dataclass(frozen=True)
class NodeContext:
    """This node: its name, the communities it serves, and the federation file it was started with."""

    name: str
    communities: tuple[str, ...]
    federation: Federation


def init_app(app: Flask, settings: Settings) -> NodeContext | None:
    """Read the federation file when the settings name a node and its file; else the app is no node."""
    node: NodeContext | None = None
    if settings.node_name and settings.federation_file is not None:
        federation = read_federation(settings.federation_file)
        if settings.node_name not in federation.nodes:
            raise ValueError(f"node {settings.node_name!r} is not in {settings.federation_file}")
        node = NodeContext(settings.node_name, settings.communities, federation)
    app.extensions[EXTENSION] = node
    app.jinja_env.globals["current_node"] = current_node  # the bar links /federation on a node
    return node


def current_node() -> NodeContext | None:
    """This app's node, or None when it does not run as one."""
    node: NodeContext | None = current_app.extensions.get(EXTENSION)
    return node


def node_or_404() -> NodeContext:
    """The node, for pages that exist only on a node."""
    node = current_node()
    if node is None:
        abort(404, description="this dashboard does not run as a community node")
    return node
