"""What a node tells the federation about itself, and what it does with what it is told.

Out: its communities (`node`), their stock and needs (`stock`), the faults its own gateway raised (`fault`),
its answers to plans (`answer`), the shipments it delivered (`delivered`), the repair tasks it cannot staff
(`task`), its members' offers of help (`help`) and the hours they gave away from home (`hours`, see
gateway.federation.help). In: plans that involve its communities (answered by the assembly's rule or left
for a coordinator), deliveries that reached it (booked into its ledger once, in the transaction that stores
the fact), neighbours' offers for its tasks and the answers to its own members' offers. Everything reads and
writes the node's own store; the federation agent calls `publish` and `settle` on its worker thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.federation import help as fed_help
from gateway.store import federation as facts
from gateway.store import stock
from gateway.store.models import (
    Community,
    DeliveryPlan,
    Device,
    Fault,
    FedFact,
    Good,
    NeedLevel,
    Shipment,
    Site,
    Stock,
    utcnow,
)
from gateway.store.models.vocab import LedgerSource, PlanStatus, ShipmentStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeRules:
    """A node's assembly's rules for plans between communities, and how often it reports."""

    auto_accept_kg: float = 500.0  # a shipment up to this weight is accepted without asking anyone
    stock_every_s: float = 300.0  # a changed stock summary at most this often (a shortage at once)
    help_after_s: float = (
        1800.0  # an open repair nobody here took is offered to neighbours after this (work clock)
    )
    hours_every_s: float = (
        3600.0  # changed sums of hours given away from home at most this often (work clock)
    )

    def __post_init__(self) -> None:
        if not 0 <= self.auto_accept_kg <= 1e7:
            raise ValueError("auto_accept_kg must be 0 to 10,000,000")
        if not 1 <= self.stock_every_s <= 86_400:
            raise ValueError("stock_every_s must be 1 to 86,400 seconds")
        if not 0 <= self.help_after_s <= 30 * 86_400:
            raise ValueError("help_after_s must be 0 to 2,592,000 seconds")
        if not 1 <= self.hours_every_s <= 30 * 86_400:
            raise ValueError("hours_every_s must be 1 to 2,592,000 seconds")


def own_communities(session: Session, slugs: Sequence[str]) -> list[Community]:
    """The node's communities, in the order given; an unknown slug is an error."""
    rows = {c.slug: c for c in session.scalars(select(Community).where(Community.slug.in_(slugs)))}
    missing = [slug for slug in slugs if slug not in rows]
    if missing:
        raise LookupError(f"communities not in this node's store: {missing}")
    return [rows[slug] for slug in slugs]


def publish(session: Session, node: str, slugs: Sequence[str], rules: NodeRules, now: datetime) -> int:
    """Append what changed since the node last said it; returns how many facts were written."""
    communities = own_communities(session, slugs)
    written = _publish_node(session, node, communities, now)
    written += _publish_stock(session, node, communities, rules, now)
    written += _publish_faults(session, node, communities, now)
    written += _publish_deliveries(session, node, now)
    written += fed_help.publish_tasks(session, node, communities, rules.help_after_s, now)
    written += fed_help.publish_hours(session, node, rules.hours_every_s, now)
    return written


def _publish_node(session: Session, node: str, communities: Sequence[Community], now: datetime) -> int:
    body = {
        "communities": [{"slug": c.slug, "name": c.name, "lat": c.lat, "lon": c.lon} for c in communities]
    }
    last = _latest_own(session, node, "node")
    if last is not None and last.body == body:
        return 0
    facts.append_fact(session, node, "node", body, now)
    return 1


def stock_body(session: Session, community: Community) -> dict[str, Any]:
    """A community's stock per good (summed over its sites) with its need levels: what planners use."""
    held: dict[int, float] = {}
    rows = session.execute(
        select(Stock.good_id, Stock.quantity)
        .join(Site, Stock.site_id == Site.id)
        .where(Site.community_id == community.id)
    )
    for good_id, quantity in rows:
        held[good_id] = held.get(good_id, 0.0) + float(quantity)
    needs = {
        n.good_id: n for n in session.scalars(select(NeedLevel).where(NeedLevel.community_id == community.id))
    }
    goods: dict[str, Any] = {}
    for good in session.scalars(select(Good).where(Good.id.in_(set(held) | set(needs))).order_by(Good.slug)):
        need = needs.get(good.id)
        goods[good.slug] = {
            "stock": round(held.get(good.id, 0.0), 3),
            "minimum": need.minimum if need else 0.0,
            "target": need.target if need else 0.0,
            "sector": good.sector,
            "essential": good.essential,
            "perishability_hours": good.perishability_hours,
            "kg": good.weight_kg_per_unit,
        }
    return {"community": community.slug, "lat": community.lat, "lon": community.lon, "goods": goods}


def _short(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (c["community"], slug)
        for c in body["communities"]
        for slug, g in c["goods"].items()
        if g["stock"] < g["minimum"]
    }


def _publish_stock(
    session: Session, node: str, communities: Sequence[Community], rules: NodeRules, now: datetime
) -> int:
    """One `stock` fact for all the node's communities: when it changed, at most every `stock_every_s`, but
    at once when a shortage begins or ends (that is what the region plans on)."""
    body = {"communities": [stock_body(session, c) for c in communities]}
    last = _latest_own(session, node, "stock")
    if last is not None:
        if last.body == body:
            return 0
        changed_shortage = _short(dict(last.body)) != _short(body)
        if not changed_shortage and now - last.at < timedelta(seconds=rules.stock_every_s):
            return 0
    facts.append_fact(session, node, "stock", body, now)
    return 1


def _publish_faults(session: Session, node: str, communities: Sequence[Community], now: datetime) -> int:
    told: dict[int, bool] = {}  # fault id -> closing told
    for row in facts.facts_of_kind(session, "fault"):
        if row.origin == node:
            told[int(row.body["fault"])] = (
                told.get(int(row.body["fault"]), False) or row.body["closed_at"] is not None
            )
    ids = [c.id for c in communities]
    rows = session.execute(
        select(Fault, Device.slug, Community.slug)
        .join(Device, Fault.device_id == Device.id)
        .join(Site, Fault.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .where(Community.id.in_(ids))
        .order_by(Fault.id)
    )
    written = 0
    for fault, device, community in rows:
        closed = fault.status != "open"
        if fault.id in told and (told[fault.id] or not closed):
            continue
        body = {
            "fault": fault.id,
            "community": community,
            "device": device,
            "kind": fault.kind,
            "severity": fault.severity,
            "opened_at": fault.opened_at.isoformat(),
            "closed_at": (fault.cleared_at or now).isoformat() if closed else None,
        }
        facts.append_fact(session, node, "fault", body, now)
        written += 1
    return written


def _publish_deliveries(session: Session, node: str, now: datetime) -> int:
    told = {str(row.body["ref"]) for row in facts.facts_of_kind(session, "delivered") if row.origin == node}
    query = (
        select(Shipment, Good.slug)
        .join(Good, Shipment.good_id == Good.id)
        .where(Shipment.fed_ref.is_not(None), Shipment.status == ShipmentStatus.DELIVERED)
    )
    written = 0
    for shipment, good in session.execute(query):
        if shipment.fed_ref in told:
            continue
        plan = _plan_shipment(session, str(shipment.fed_ref))
        if plan is None:
            continue
        body = {
            "ref": shipment.fed_ref,
            "to": plan["to"],
            "to_community": plan["to_community"],
            "good": good,
            "quantity": shipment.quantity,
        }
        facts.append_fact(session, node, "delivered", body, now)
        written += 1
    return written


# --- plans: answer them, carry the accepted ones, book what arrives -----------------------------------------


def shipment_ref(plan: FedFact, shipment_id: str) -> str:
    """The federation-wide name of one shipment of a plan."""
    return f"{plan.origin}/{plan.seq}#{shipment_id}"


def _plan_shipment(session: Session, ref: str) -> dict[str, Any] | None:
    origin, _, rest = ref.partition("/")
    seq, _, shipment_id = rest.partition("#")
    row = session.scalar(select(FedFact).where(FedFact.origin == origin, FedFact.seq == int(seq)))
    if row is None or row.kind != "plan":
        return None
    for item in row.body.get("shipments", []):
        if str(item.get("id")) == shipment_id:
            return dict(item)
    return None


@dataclass(frozen=True)
class PendingShipment:
    """A shipment of a plan that involves this node, waiting for (or holding) its answers."""

    ref: str
    plan: FedFact
    item: dict[str, Any]
    mine: bool | None  # this node's answer (None: not given yet)
    theirs: bool | None  # the other community's answer
    superseded: bool  # a newer plan replaced it before both accepted


def plan_shipments(session: Session, node: str, slugs: Sequence[str]) -> list[PendingShipment]:
    """Every shipment of every plan that sends from or to this node's communities, with the answers so far.

    The newest plan (by time, then origin) is the live one; an older plan's shipment that both sides had not
    accepted by the time the newer one arrived is superseded and never carried.
    """
    plans = sorted(facts.facts_of_kind(session, "plan"), key=lambda r: (r.at, r.origin, r.seq))
    newest = plans[-1] if plans else None
    answers: dict[tuple[str, str], bool] = {}
    for row in facts.facts_of_kind(session, "answer"):
        answers.setdefault((str(row.body["ref"]), str(row.body["community"])), bool(row.body["accept"]))
    mine = set(slugs)
    out = []
    for plan in plans:
        for item in plan.body.get("shipments", []):
            ends = {item["from_community"], item["to_community"]}
            if not ends & mine:
                continue
            ref = shipment_ref(plan, str(item["id"]))
            ours = item["from_community"] if item["from_community"] in mine else item["to_community"]
            other = item["to_community"] if ours == item["from_community"] else item["from_community"]
            my_answer, their_answer = answers.get((ref, ours)), answers.get((ref, other))
            if other in mine:
                their_answer = my_answer
            both = my_answer is True and their_answer is True
            out.append(
                PendingShipment(
                    ref, plan, dict(item), my_answer, their_answer, plan is not newest and not both
                )
            )
    return out


def answer(
    session: Session, node: str, ref: str, community: str, accept: bool, by: str, now: datetime
) -> FedFact:
    """This node's community answers one shipment (by the rule, or a coordinator's choice)."""
    return facts.append_fact(
        session, node, "answer", {"ref": ref, "community": community, "accept": accept, "by": by}, now
    )


def settle(session: Session, node: str, slugs: Sequence[str], rules: NodeRules, now: datetime) -> int:
    """Answer by rule what the rule covers, put accepted shipments this node sends on its drivers' list,
    book deliveries that reached it, and settle offers of help both ways. Idempotent: every step checks
    what is already done."""
    done = 0
    mine = set(slugs)
    weights = dict(session.execute(select(Good.slug, Good.weight_kg_per_unit)).all())
    for pending in plan_shipments(session, node, slugs):
        if pending.superseded:
            continue
        item = pending.item
        for community in (item["from_community"], item["to_community"]):
            if community not in mine or _answered(session, pending.ref, community):
                continue
            kg = float(item["quantity"]) * float(weights.get(item["good"], 1.0))
            if kg <= rules.auto_accept_kg:
                answer(session, node, pending.ref, community, True, "rule", now)
                done += 1
        both = _answered(session, pending.ref, item["from_community"]) is True and (
            _answered(session, pending.ref, item["to_community"]) is True
        )
        if both and item["from_community"] in mine:
            done += _carry(session, pending)
    done += _book_deliveries(session, node, slugs, now)
    done += fed_help.settle_tasks(session, node, now)
    done += fed_help.settle_help(session, node, now)
    return done


def _answered(session: Session, ref: str, community: str) -> bool | None:
    for row in facts.facts_of_kind(session, "answer"):
        if row.body.get("ref") == ref and row.body.get("community") == community:
            return bool(row.body["accept"])
    return None


def _carry(session: Session, pending: PendingShipment) -> int:
    """A shipment both communities accepted becomes one of this node's own, for its drivers' routes."""
    if session.scalar(select(Shipment.id).where(Shipment.fed_ref == pending.ref)) is not None:
        return 0
    item = pending.item
    good = session.scalar(select(Good).where(Good.slug == item["good"]))
    source = _hub(session, item["from_community"])
    destination = _hub(session, item["to_community"])
    if good is None or source is None or destination is None:
        log.warning("shipment %s names a good or community this node does not know; not carried", pending.ref)
        return 0
    plan_id = session.scalar(
        select(DeliveryPlan.id)
        .where(DeliveryPlan.status == PlanStatus.PROPOSED)
        .order_by(DeliveryPlan.id.desc())
    )
    if plan_id is None:
        row = DeliveryPlan(status=PlanStatus.PROPOSED.value)
        session.add(row)
        session.flush()
        plan_id = row.id
    session.add(
        Shipment(
            plan_id=plan_id,
            good_id=good.id,
            from_site_id=source,
            to_site_id=destination,
            quantity=float(item["quantity"]),
            status=ShipmentStatus.PLANNED.value,
            fed_ref=pending.ref,
        )
    )
    log.info(
        "shipment %s accepted by both communities: %s %s to %s",
        pending.ref,
        item["quantity"],
        item["good"],
        item["to_community"],
    )
    return 1


def _hub(session: Session, community: str) -> int | None:
    """The site a community gives from and receives at: its storage site, else its first site."""
    rows = session.execute(
        select(Site.id, Site.kind)
        .join(Community, Site.community_id == Community.id)
        .where(Community.slug == community)
        .order_by(Site.id)
    ).all()
    for site_id, kind in rows:
        if kind == "storage":
            return int(site_id)
    return int(rows[0][0]) if rows else None


def _book_deliveries(session: Session, node: str, slugs: Sequence[str], now: datetime) -> int:
    """Goods another node delivered to one of ours enter our ledger, once per delivery fact."""
    booked = 0
    mine = set(slugs)
    for row in facts.facts_of_kind(session, "delivered"):
        if row.origin == node or row.body.get("to_community") not in mine:
            continue
        reason = f"delivered by {row.origin}: {row.body['ref']}"
        if row.applied_at is not None:
            continue
        site = _hub(session, str(row.body["to_community"]))
        good = session.scalar(select(Good).where(Good.slug == row.body["good"]))
        if site is None or good is None:
            continue
        current = session.get(Stock, (site, good.id))
        before = current.quantity if current is not None else 0.0
        quantity = float(row.body["quantity"])
        stock.record(
            session,
            current,
            site,
            good.id,
            before + quantity,
            quantity,
            source=LedgerSource.DELIVERY,
            reason=reason,
            at=now,
        )
        row.applied_at = now
        booked += 1
    return booked


def _latest_own(session: Session, node: str, kind: str) -> FedFact | None:
    query = select(FedFact).where(FedFact.origin == node, FedFact.kind == kind).order_by(FedFact.seq.desc())
    return session.scalars(query.limit(1)).first()


class NodeDuties:
    """What the agent does for its node every few seconds: report what changed, settle what plans ask."""

    def __init__(self, node: str, slugs: Sequence[str], rules: NodeRules, every_s: float = 10.0) -> None:
        self.node, self.slugs, self.rules, self.every_s = node, tuple(slugs), rules, every_s
        self._last = float("-inf")

    def __call__(self, session: Session) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        at = utcnow()
        written = publish(session, self.node, self.slugs, self.rules, at)
        settled = settle(session, self.node, self.slugs, self.rules, at)
        if written or settled:
            log.info("node %s: %s facts reported, %s plan steps settled", self.node, written, settled)
