"""`rhizome node init | run | federate | help`: a community node, its federation agent and the help its crew
give neighbours (docs/nodes.md)."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.process.context import PATH, pass_settings, store_transaction
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
    from gateway.federation.identity import node_entry
    from gateway.federation.keys import KEY_FILE, NodeKey

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
    from gateway.federation.agent_main import federate as run_agent

    return run_agent(_node_settings(settings, name, federation, communities))


@node.group("help", short_help="neighbours' repair tasks this node's crew can help with")
def help_group() -> None:
    """Repair tasks other nodes cannot staff, open to this node's crew (cross-community help)."""


def _node_name(settings: Settings, name: str | None) -> str:
    settings = _node_settings(settings, name, None, None)
    if not settings.node_name:
        raise click.UsageError("give the node's name: --name or RHIZOME_NODE_NAME")
    return settings.node_name


@help_group.command("list", short_help="neighbours' open tasks near a member that fit their skills")
@NAME
@click.option("--member", "member_id", type=int, required=True, help="the crew member's id on this node")
@click.option("--km", type=click.FloatRange(0, 500, min_open=True), default=25.0, show_default=True)
@pass_settings
def help_list(settings: Settings, name: str | None, member_id: int, km: float) -> int:
    """List the open tasks of other nodes within KM of the member's home that need no skill they lack."""
    from gateway.federation.help import neighbour_tasks

    node_name = _node_name(settings, name)
    with store_transaction(settings) as session:
        found = neighbour_tasks(session, node_name, member_id, within_km=km)
        if not found:
            click.echo("no neighbour's task open to this member")
        for t in found:
            mark = " (offered)" if t.offered else ""
            skills = ", ".join(t.skills) or "no skill"
            click.echo(
                f"{t.ref}  {t.community}  urgency {t.urgency}  {t.hours:g} h  {t.km:.1f} km  {skills}  "
                f"{t.title}{mark}"
            )
    return 0


@help_group.command("offer", short_help="a member offers to help with a neighbour's task")
@NAME
@click.option("--member", "member_id", type=int, required=True, help="the crew member's id on this node")
@click.argument("ref")
@pass_settings
def help_offer(settings: Settings, name: str | None, member_id: int, ref: str) -> int:
    """Offer the member's hours for the neighbour's task REF (as `help list` shows it); the task's node
    answers, and the hours are reserved only if they still fit the member's offer then."""
    from gateway.federation.help import offer_help
    from gateway.store.models import utcnow

    node_name = _node_name(settings, name)
    with store_transaction(settings) as session:
        row = offer_help(session, node_name, member_id, ref, utcnow())
        click.echo(f"offered {row.hours:g} h for {ref}; {row.community} answers through the federation")
    return 0


@node.command("prepare", hidden=True)
@click.option("--region", type=PATH, metavar="FILE", help="region file, loaded on the first start")
@pass_settings
def prepare(settings: Settings, region: Path | None) -> int:
    """`node run`'s first step, in a process of its own: the store ready, the broker files written. Prints
    the node's processes' broker URLs, passwords included, as one JSON line for `node run`'s pipe."""
    import json

    from gateway.federation.prepare import prepare_for_run

    click.echo(json.dumps(prepare_for_run(settings, region)))
    return 0
