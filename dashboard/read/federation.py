"""What a node's dashboard shows of its federation: the nodes and their link state, who holds the planning
role, the shipments between communities that involve this node, and which communities are whose.

Everything comes from the node's own store (the federation agent keeps `fed_nodes` and the fact log) and
its federation file; no person is named: an answer's `by` is never read here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.federation.directory import Federation
from gateway.federation.node_facts import plan_shipments
from gateway.store import federation as facts
from gateway.store.models import Community, FedNode, Good

WAITING_FOR_US = "waiting for us"
WAITING_FOR_THEM = "waiting for them"
ACCEPTED = "accepted by both"
DECLINED = "declined"
SUPERSEDED = "superseded"
DELIVERED = "delivered"
SHIPMENT_STATUSES = (WAITING_FOR_US, WAITING_FOR_THEM, ACCEPTED, DECLINED, SUPERSEDED, DELIVERED)
MAX_REF = 200
# origin/seq#id as gateway.federation.node_facts.shipment_ref writes it.
_REF = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?/[1-9][0-9]{0,17}#[A-Za-z0-9._:-]{1,64}$")


def is_ref(text: str) -> bool:
    """Whether `text` has the shape of a shipment's federation-wide name (it may still name nothing)."""
    return len(text) <= MAX_REF and _REF.match(text) is not None


def for_how_long(seconds: float) -> str:
    """A duration as people read it on a screen: 40 s -> "under a minute", 130 min -> "2 h 10 min"."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{hours // 24} days"


@dataclass(frozen=True)
class NodeState:
    """One node of the federation as this node knows it."""

    name: str
    me: bool
    direct: bool  # a link of this node
    link_up: bool | None  # direct peers only
    last_heard_at: datetime | None
    down: bool  # a direct link down, or unheard for more than the lease: the region cannot hear it
    down_for_s: float | None  # since when it is down (None: never heard, or not down)
    communities: tuple[str, ...]  # slugs, from its latest `node` fact

    def text(self, now: datetime) -> str:
        """ "link up", "link down for 12 min", "last heard 3 min ago"... for the page and the map."""
        if self.me:
            return "this node"
        if self.direct:
            if not self.down:
                return "link up"
            return "link down" + (
                f" for {for_how_long(self.down_for_s)}" if self.down_for_s is not None else ""
            )
        if self.last_heard_at is None:
            return "never heard (link down)"
        heard = f"last heard {for_how_long((now - self.last_heard_at).total_seconds())} ago"
        return heard + (" (link down)" if self.down else "")


def node_states(session: Session, federation: Federation, me: str, now: datetime) -> list[NodeState]:
    """Every node of the federation file, this one first, then by name."""
    rows = {row.name: row for row in session.scalars(select(FedNode))}
    served = _communities_by_node(session)
    peers = {peer for peer, _ in federation.peers_of(me)}
    out = []
    for name in sorted(federation.nodes, key=lambda n: (n != me, n)):
        row = rows.get(name)
        if name == me:
            out.append(NodeState(name, True, False, None, now, False, None, served.get(name, ())))
            continue
        direct = name in peers or (row is not None and row.direct)
        heard = row.last_heard_at if row is not None else None
        link_up = (row.link_up if row is not None else False) if direct else None
        unheard_s = None if heard is None else (now - heard).total_seconds()
        stale = unheard_s is None or unheard_s > federation.lease_s
        down = (direct and not link_up) or stale
        down_for: float | None = None
        if down and direct and not link_up and row is not None:
            down_for = (now - row.changed_at).total_seconds()
        elif down and unheard_s is not None:
            down_for = unheard_s
        out.append(NodeState(name, False, direct, link_up, heard, down, down_for, served.get(name, ())))
    return out


def _communities_by_node(session: Session) -> dict[str, tuple[str, ...]]:
    """node -> the community slugs its newest `node` fact lists."""
    out = {}
    for origin, row in facts.latest_of_kind(session, "node").items():
        listed = row.body.get("communities", [])
        out[origin] = tuple(str(c["slug"]) for c in listed if isinstance(c, dict) and "slug" in c)
    return out


def holder(session: Session, federation: Federation, me: str, now: datetime) -> str | None:
    """Who holds the regional planning role, by the rule every node applies."""
    return facts.role_holder(session, federation.planner_order(), federation.lease_s, me, now)


@dataclass(frozen=True)
class CommunityLink:
    """A community another node serves, with that node's link state (the map marks it)."""

    node: str
    down: bool
    text: str


def community_links(
    session: Session, federation: Federation, me: str, now: datetime
) -> dict[str, CommunityLink]:
    """community slug -> its node's link state, for the communities of the other nodes."""
    out = {}
    for state in node_states(session, federation, me, now):
        if state.me:
            continue
        for slug in state.communities:
            out[slug] = CommunityLink(state.name, state.down, state.text(now))
    return out


@dataclass(frozen=True)
class ShipmentRow:
    """One shipment between communities, as the page and the API show it."""

    ref: str
    plan: str  # origin/seq of its plan
    good: str
    good_name: str
    unit: str
    quantity: float
    from_node: str
    to_node: str
    from_community: str
    to_community: str
    from_name: str
    to_name: str
    km: float | None
    status: str
    ours: tuple[str, ...]  # this node's communities that have still to answer (a coordinator may)

    def to_json(self) -> dict[str, Any]:
        """The API's view (no person: who answered is not part of it)."""
        return {
            "ref": self.ref,
            "plan": self.plan,
            "good": self.good,
            "quantity": self.quantity,
            "unit": self.unit,
            "from_node": self.from_node,
            "to_node": self.to_node,
            "from_community": self.from_community,
            "to_community": self.to_community,
            "km": self.km,
            "status": self.status,
        }


def shipments(session: Session, me: str, slugs: Sequence[str]) -> list[ShipmentRow]:
    """Every shipment of every plan sending from or to this node's communities, newest plan first."""
    answers: dict[tuple[str, str], bool] = {}
    for row in facts.facts_of_kind(session, "answer"):  # the first answer per (ref, community) counts
        answers.setdefault(
            (str(row.body.get("ref")), str(row.body.get("community"))), bool(row.body["accept"])
        )
    delivered = {str(row.body.get("ref")) for row in facts.facts_of_kind(session, "delivered")}
    names = {slug: name for slug, name in session.execute(select(Community.slug, Community.name))}
    goods = {
        slug: (name, unit) for slug, name, unit in session.execute(select(Good.slug, Good.name, Good.unit))
    }
    mine = set(slugs)
    out: list[tuple[int, ShipmentRow]] = []
    plans: dict[int, int] = {}  # plan row id -> its place, oldest first
    for pending in plan_shipments(session, me, slugs):
        item = pending.item
        ends = (str(item["from_community"]), str(item["to_community"]))
        said = [answers.get((pending.ref, end)) for end in ends]
        ours = tuple(end for end, answer in zip(ends, said, strict=True) if end in mine and answer is None)
        if pending.ref in delivered:
            status = DELIVERED
        elif said == [True, True]:
            status = ACCEPTED
        elif False in said:
            status = DECLINED
        elif pending.superseded:
            status = SUPERSEDED
        else:
            status = WAITING_FOR_US if ours else WAITING_FOR_THEM
        good = str(item["good"])
        good_name, unit = goods.get(good, (good, ""))
        km = item.get("km")
        place = plans.setdefault(pending.plan.id, len(plans))
        shown = ShipmentRow(
            ref=pending.ref,
            plan=f"{pending.plan.origin}/{pending.plan.seq}",
            good=good,
            good_name=good_name,
            unit=unit,
            quantity=float(item["quantity"]),
            from_node=str(item.get("from", "")),
            to_node=str(item.get("to", "")),
            from_community=ends[0],
            to_community=ends[1],
            from_name=names.get(ends[0], ends[0]),
            to_name=names.get(ends[1], ends[1]),
            km=float(km) if isinstance(km, int | float) else None,
            status=status,
            ours=ours if status == WAITING_FOR_US else (),
        )
        out.append((place, shown))
    out.sort(key=lambda pair: -pair[0])  # newest plan first, each plan's shipments in its own order
    return [row for _, row in out]
