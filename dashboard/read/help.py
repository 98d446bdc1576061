"""What a node's dashboard shows of cross-community help (gateway.federation.help): on the crew page, the
neighbours' open repair tasks a member could take and the member's own offers still standing; on the goals
page, the hours other nodes' people gave this node's communities this year.

No person's name is read here: the task facts carry none, a member sees only their own offers, and the
received hours are sums by community and sector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.federation import help as fed_help
from gateway.store import federation as facts
from gateway.store.models import Community, FedHelp
from gateway.store.models.vocab import HelpState

STANDING = (HelpState.OFFERED, HelpState.ACCEPTED)  # offers a member may still withdraw


@dataclass(frozen=True)
class AskingTask:
    """A neighbour's open task as the crew page lists it."""

    task: fed_help.NeighbourTask
    community_name: str


@dataclass(frozen=True)
class MyOffer:
    """One of the member's own offers that still stands."""

    id: int
    title: str
    community_name: str
    hours: float
    state: str


@dataclass(frozen=True)
class Received:
    """Hours a community of this node received from other nodes' people this year, per sector."""

    community_name: str
    by_sector: tuple[tuple[str, float], ...]

    @property
    def total(self) -> float:
        return sum(h for _, h in self.by_sector)


def _names(session: Session, slugs: Sequence[str]) -> dict[str, str]:
    """Community slug -> name (a node's store holds every community of the region)."""
    if not slugs:
        return {}
    return dict(
        session.execute(select(Community.slug, Community.name).where(Community.slug.in_(slugs))).all()
    )


def asking(session: Session, node: str, member_id: int) -> list[AskingTask]:
    """The neighbours' open tasks near the member that need no skill they lack, most urgent first."""
    tasks = fed_help.neighbour_tasks(session, node, member_id)
    names = _names(session, sorted({t.community for t in tasks}))
    return [AskingTask(t, names.get(t.community, t.community)) for t in tasks]


def my_offers(session: Session, member_id: int) -> list[MyOffer]:
    """The member's offers still offered or accepted, oldest first."""
    rows = list(
        session.scalars(
            select(FedHelp)
            .where(FedHelp.member_id == member_id, FedHelp.state.in_(STANDING))
            .order_by(FedHelp.id)
        )
    )
    names = _names(session, sorted({r.community for r in rows}))
    return [MyOffer(r.id, r.title, names.get(r.community, r.community), r.hours, r.state) for r in rows]


def is_known_task(session: Session, ref: str) -> bool:
    """Whether any `task` fact names `ref`: an offer for it that is refused was for a task once open."""
    return any(row.body.get("ref") == ref for row in facts.facts_of_kind(session, "task"))


def received(session: Session, communities: Sequence[str], year: int) -> list[Received]:
    """For each of the node's communities that received any, the hours given by neighbours in `year`."""
    names = _names(session, communities)
    out = []
    for slug in communities:
        by_sector = fed_help.received_hours(session, slug, year)
        shown = tuple((sector, h) for sector, h in sorted(by_sector.items()) if h > 0)
        if shown:
            out.append(Received(names.get(slug, slug), shown))
    return out
