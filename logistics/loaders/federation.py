"""Loader of the regional plan between nodes: replicated facts in, a `plan` fact out (the ORM lives here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store import federation as facts
from gateway.store.federation import role_holder
from gateway.store.models import FedFact, FedNode, utcnow
from logistics.allocation.regional import CommunitySummary, ProposedShipment, UnderWay

__all__ = ["load_regional", "role_holder", "save_regional_plan", "under_way", "utcnow"]

MAX_SUMMARY_AGE = timedelta(hours=24)  # a node unheard for a day is not planned for from what it once said


def load_regional(
    session: Session, now: datetime, node: str, alive_s: float
) -> tuple[list[CommunitySummary], list[UnderWay]]:
    """The latest stock summary (a day old at most) of every node heard within `alive_s` (a node that cannot
    hear the plan cannot accept it), and the shipments accepted and under way."""
    heard = {row.name: row.last_heard_at for row in session.scalars(select(FedNode))}
    summaries: list[CommunitySummary] = []
    for origin, row in sorted(facts.latest_of_kind(session, "stock").items()):
        at = heard.get(origin)
        alive = origin == node or (at is not None and (now - at).total_seconds() <= alive_s)
        if alive and now - row.at <= MAX_SUMMARY_AGE:
            summaries.extend(CommunitySummary.from_fact(origin, row.body))
    return summaries, under_way(session)


def under_way(session: Session) -> list[UnderWay]:
    """Shipments of any plan that both of their communities accepted and nobody has delivered yet."""
    accepted: dict[str, set[str]] = {}
    for row in facts.facts_of_kind(session, "answer"):
        if row.body.get("accept") is True:
            accepted.setdefault(str(row.body["ref"]), set()).add(str(row.body["community"]))
    delivered = {str(row.body["ref"]) for row in facts.facts_of_kind(session, "delivered")}
    out = []
    for plan in facts.facts_of_kind(session, "plan"):
        for item in plan.body.get("shipments", []):
            ref = f"{plan.origin}/{plan.seq}#{item['id']}"
            ends = {item["from_community"], item["to_community"]}
            if ref not in delivered and ends <= accepted.get(ref, set()):
                out.append(
                    UnderWay(item["from_community"], item["to_community"], item["good"], item["quantity"])
                )
    return out


def _lanes(shipments: Sequence[dict[str, object]]) -> set[tuple[object, ...]]:
    return {(s["from_community"], s["to_community"], s["good"], s["quantity"]) for s in shipments}


def save_regional_plan(
    session: Session, node: str, shipments: Sequence[ProposedShipment], now: datetime
) -> FedFact | None:
    """Propose the plan as a `plan` fact, unless it proposes exactly what is still waiting for answers
    (then None): the shipments of the newest plan that are neither accepted by both ends nor declined."""
    body = {"shipments": [s.to_json() for s in shipments]}
    plans = facts.facts_of_kind(session, "plan")
    newest = max(plans, key=lambda r: (r.at, r.origin, r.seq), default=None)
    waiting: list[dict[str, object]] = []
    if newest is not None:
        answers: dict[str, list[bool]] = {}
        for row in facts.facts_of_kind(session, "answer"):
            answers.setdefault(str(row.body["ref"]), []).append(bool(row.body["accept"]))
        for item in newest.body.get("shipments", []):
            said = answers.get(f"{newest.origin}/{newest.seq}#{item['id']}", [])
            if False not in said and len(said) < 2:
                waiting.append(item)
    if _lanes(waiting) == _lanes(body["shipments"]):
        return None
    return facts.append_fact(session, node, "plan", body, now)
