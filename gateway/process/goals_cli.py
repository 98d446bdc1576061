"""`rhizome goals set | list | remove`: the monthly sector goals of communities and the region, from a shell.

The same checks as the dashboard's form (gateway.store.goals), sector and kind included, so listing the
commands imports no store module; a refused value exits 1 with its message.
Progress against the goals is the dashboard's (/goals): the gateway does not read it.
"""

from __future__ import annotations

import click

from gateway.contract import clock
from gateway.process.context import pass_settings, store_transaction
from gateway.process.settings import Settings

COMMUNITY_HELP = "a community's slug, or 'region' for the whole region [region]"


def _month(value: str | None) -> str:
    from gateway.store.goals import month_of, parse_month

    return parse_month(value) if value is not None else month_of(clock.now())


@click.group("goals", short_help="monthly sector goals: hours of work and board places filled")
def goals() -> None:
    """Monthly sector goals of communities and the region: hours of work given, or board places filled."""


@goals.command("set", short_help="set (or change) a goal")
@click.argument("sector")
@click.argument("kind")
@click.argument("target")
@click.option("--community", default="region", metavar="SLUG", help=COMMUNITY_HELP)
@click.option("--month", metavar="YYYY-MM", help="the month [this month on the work clock]")
@click.option("--by", "set_by", default="cli", metavar="NAME", help="who sets it, as the page shows [cli]")
@pass_settings
def goals_set(
    settings: Settings, sector: str, kind: str, target: str, community: str, month: str | None, set_by: str
) -> int:
    """Set SECTOR's goal (food, education, health, maintenance, governance or other) of KIND (hours of work,
    or slots: board places filled) to TARGET for the month, in a community or the region."""
    from gateway.store import goals as store

    with store_transaction(settings) as session:
        goal = store.set_goal(
            session,
            community_id=store.community_id_of(session, community),
            sector=sector,
            month=_month(month),
            kind=kind,
            target=target,
            set_by=set_by,
        )
        click.echo(f"goal {goal.id}: {_describe(goal.sector, goal.kind, goal.target, community, goal.month)}")
    return 0


@goals.command("list", short_help="list a month's goals")
@click.option("--month", metavar="YYYY-MM", help="the month [this month on the work clock]")
@click.option("--community", metavar="SLUG", help="only this community's goals ('region': the region's)")
@pass_settings
def goals_list(settings: Settings, month: str | None, community: str | None) -> int:
    """The month's goals, one a line: id, community, sector, kind, target, who set it."""
    from sqlalchemy import select

    from gateway.store import goals as store
    from gateway.store.models import Community

    with store_transaction(settings) as session:
        chosen = _month(month)
        if community is None:
            found = store.goals_for(session, chosen)
        else:
            found = store.goals_for(session, chosen, store.community_id_of(session, community))
        ids = {g.community_id for g in found if g.community_id is not None}
        slugs = dict(session.execute(select(Community.id, Community.slug).where(Community.id.in_(ids))).all())
        if not found:
            click.echo(f"no goals for {chosen}")
        for goal in found:
            where = store.REGION if goal.community_id is None else slugs[goal.community_id]
            line = _describe(goal.sector, goal.kind, goal.target, where, goal.month)
            click.echo(f"{goal.id}\t{line}" + (f" (set by {goal.set_by})" if goal.set_by else ""))
    return 0


@goals.command("remove", short_help="remove a goal")
@click.argument("goal_id", type=click.IntRange(min=1), metavar="ID")
@pass_settings
def goals_remove(settings: Settings, goal_id: int) -> int:
    """Remove the goal ID (see `rhizome goals list`)."""
    from gateway.store import goals as store

    with store_transaction(settings) as session:
        goal = store.remove_goal(session, goal_id)
        click.echo(f"removed goal {goal_id}: {goal.sector} {goal.kind} {goal.target:g} in {goal.month}")
    return 0


def _describe(sector: str, kind: str, target: float, community: str, month: str) -> str:
    return f"{month} {community} {sector}: {target:g} {kind}"
