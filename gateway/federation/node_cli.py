"""`rhizome node init | run | federate`: a community node and its federation agent (docs/nodes.md)."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.process.context import PATH, pass_settings
from gateway.process.settings import Settings


def _node_settings(
    settings: Settings, name: str | None, federation: Path | None, communities: str | None
) -> Settings:
    return settings.with_overrides(node_name=name, federation_file=federation, node_communities=communities)


NAME = click.option("--name", metavar="NODE", help="this node's name in the federation [RHIZOME_NODE_NAME]")
FEDERATION = click.option(
    "--federation", type=PATH, metavar="FILE", help="the federation file [RHIZOME_FEDERATION_FILE]"
)


@click.group("node", short_help="a community node: its own broker, gateway, planner, dashboard and agent")
def node() -> None:
    """A community node: the whole of Rhizome for its own communities, federated with its neighbours."""


@node.command("init", short_help="create the node's key and print its federation-file entry")
@NAME
@click.option("--broker", metavar="URL", help="where peers reach this node's broker [mqtt://HOST:1883]")
@pass_settings
def init(settings: Settings, name: str | None, broker: str | None) -> int:
    """Create the node's signing key in the data dir (once) and print the entry the federation file needs."""
    from gateway.federation.keys import KEY_FILE, NodeKey
    from gateway.federation.node import node_entry

    settings = _node_settings(settings, name, None, None)
    if not settings.node_name:
        raise click.UsageError("give the node's name: --name or RHIZOME_NODE_NAME")
    key = NodeKey.load_or_create(settings.data_dir / KEY_FILE)
    click.echo(node_entry(settings.node_name, key, broker), nl=False)
    return 0


@node.command("run", short_help="run the node: broker, gateway, planner, dashboard, federation agent")
@NAME
@FEDERATION
@click.option("--community", "communities", metavar="SLUGS", help="communities it serves [its name]")
@click.option("--region", type=PATH, metavar="FILE", help="region file, loaded on the first start")
@click.option("--port", type=int, metavar="PORT", help="dashboard port [RHIZOME_DASHBOARD_PORT, 8000]")
@click.option("--exit-after", type=float, metavar="S", help="stop cleanly after S seconds")
@pass_settings
def run(
    settings: Settings,
    name: str | None,
    federation: Path | None,
    communities: str | None,
    region: Path | None,
    port: int | None,
    exit_after: float | None,
) -> int:
    """Run a community node on its own store until Ctrl-C: it keeps working with no uplink at all."""
    from gateway.federation.node import run_node

    return run_node(_node_settings(settings, name, federation, communities), region, port, exit_after)


@node.command("federate", short_help="run only the node's federation agent")
@NAME
@FEDERATION
@click.option("--community", "communities", metavar="SLUGS", help="communities it serves [its name]")
@pass_settings
def federate(settings: Settings, name: str | None, federation: Path | None, communities: str | None) -> int:
    """Run the agent that exchanges facts with the node's peers (`node run` starts it itself)."""
    from gateway.federation.node import federate as run_agent

    return run_agent(_node_settings(settings, name, federation, communities))
