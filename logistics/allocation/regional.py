"""The regional plan between community nodes: stock summaries in, proposed shipments out (pure).

The node holding the planning role has no stock of its own to read: it has each node's latest `stock` fact
(what every community holds and needs) and the shipments already accepted and under way. From those it
builds the usual allocation problem (logistics.allocation, whole units, loads worth their trip) and
proposes its shipments; the communities at both ends accept or decline each one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logistics.allocation.data import (
    SECTOR_PRIORITY,
    AllocationInput,
    AllocationPlan,
    GoodInfo,
    Holding,
    Place,
)
from logistics.allocation.solve import solve_allocation


@dataclass(frozen=True)
class CommunitySummary:
    """One community as its node last reported it (the body of a `stock` fact)."""

    node: str
    community: str
    lat: float
    lon: float
    goods: Mapping[str, Mapping[str, Any]]  # slug -> stock, minimum, target, sector, essential, kg, ...
    people: float = 0.0  # who the community serves, when the fact says (worst-off first weighs it)

    @classmethod
    def from_fact(cls, node: str, body: Mapping[str, Any]) -> list[CommunitySummary]:
        """The summaries a node's `stock` fact carries, one per community it serves."""
        return [
            cls(
                node,
                str(c["community"]),
                float(c["lat"]),
                float(c["lon"]),
                dict(c["goods"]),
                max(0.0, float(c.get("people") or 0.0)),
            )
            for c in body.get("communities", [])
        ]


@dataclass(frozen=True)
class UnderWay:
    """A shipment both communities accepted that has not been delivered yet."""

    from_community: str
    to_community: str
    good: str
    quantity: float


@dataclass(frozen=True)
class ProposedShipment:
    """One shipment of a regional plan, as the `plan` fact lists it."""

    id: str
    from_node: str
    to_node: str
    from_community: str
    to_community: str
    good: str
    quantity: float
    km: float

    def to_json(self) -> dict[str, Any]:
        """The entry of the plan fact's `shipments`."""
        return {
            "id": self.id,
            "from": self.from_node,
            "to": self.to_node,
            "from_community": self.from_community,
            "to_community": self.to_community,
            "good": self.good,
            "quantity": self.quantity,
            "km": round(self.km, 1),
        }


def regional_input(
    summaries: Sequence[CommunitySummary], under_way: Sequence[UnderWay]
) -> tuple[AllocationInput, list[CommunitySummary], list[str]]:
    """The allocation problem of the summaries, with goods under way counted where they are going.

    Returns the input, the communities by place id (0..n-1) and the goods by good id.
    """
    communities = sorted(summaries, key=lambda s: s.community)
    index = {s.community: i for i, s in enumerate(communities)}
    slugs = sorted({slug for s in communities for slug in s.goods})
    good_ids = {slug: i for i, slug in enumerate(slugs)}
    infos: dict[str, GoodInfo] = {}
    levels: dict[tuple[int, int], list[float]] = {}
    for summary in communities:
        for slug, g in summary.goods.items():
            sector = str(g.get("sector", "other"))
            infos.setdefault(
                slug,
                GoodInfo(
                    good_ids[slug],
                    slug,
                    sector if sector in SECTOR_PRIORITY else "other",
                    bool(g.get("essential", False)),
                    g.get("perishability_hours"),
                    float(g.get("kg", 1.0)),
                ),
            )
            minimum, target = float(g.get("minimum", 0.0)), float(g.get("target", 0.0))
            levels[index[summary.community], good_ids[slug]] = [
                max(0.0, float(g.get("stock", 0.0))),
                minimum,
                max(minimum, target),
                max(0.0, float(g.get("short_hours") or 0.0)),  # hours below the minimum, when the fact says
            ]
    for shipment in under_way:
        for community, sign in ((shipment.from_community, -1.0), (shipment.to_community, 1.0)):
            key = (index.get(community, -1), good_ids.get(shipment.good, -1))
            if key in levels:
                levels[key][0] = max(0.0, levels[key][0] + sign * shipment.quantity)
    places = [Place(i, s.community, s.lat, s.lon, people=s.people) for i, s in enumerate(communities)]
    holdings = [Holding(p, g, *values) for (p, g), values in sorted(levels.items())]
    goods = [infos[slug] for slug in slugs]
    return AllocationInput(places, goods, holdings), communities, slugs


def plan_between_nodes(
    summaries: Sequence[CommunitySummary], under_way: Sequence[UnderWay], time_limit_s: float = 30.0
) -> tuple[list[ProposedShipment], AllocationPlan | None]:
    """The shipments that cover the region's shortages from its surplus, between different communities."""
    if len(summaries) < 2:
        return [], None
    data, communities, slugs = regional_input(summaries, under_way)
    plan = solve_allocation(data, time_limit_s=time_limit_s)
    out = []
    for n, s in enumerate(sorted(plan.shipments, key=lambda s: (s.from_place, s.to_place, s.good_id)), 1):
        source, target = communities[s.from_place], communities[s.to_place]
        out.append(
            ProposedShipment(
                str(n),
                source.node,
                target.node,
                source.community,
                target.community,
                slugs[s.good_id],
                float(s.quantity),
                float(s.distance_km),
            )
        )
    return out, plan
