"""The node's fact log: its own facts in sequence, its peers' stored once per (origin, seq), and the "have"
vector that tells a peer exactly what to send. Sessions are the caller's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.contract.federation import FACT_KINDS, FACT_VERSION, Fact, canonical, inbound_topic
from gateway.contract.reasons import ProtocolError
from gateway.store.models import DeadLetter, FedFact, FedNode, utcnow

MAX_APPEND_RETRIES = 5


def append_fact(session: Session, origin: str, kind: str, body: Mapping[str, Any], at: datetime) -> FedFact:
    """Add one of this node's facts with the next sequence number (signed later by the federation agent).

    Several processes of a node write facts (the planner its plans, the dashboard a coordinator's answer);
    the unique (origin, seq) makes a race fail, and the caller's transaction retries in a savepoint.
    """
    if kind not in FACT_KINDS:
        raise ValueError(f"kind {kind!r} not one of {FACT_KINDS}")
    canonical(dict(body))  # refuses NaN and what JSON cannot carry before anything is stored
    for _ in range(MAX_APPEND_RETRIES):
        last = session.scalar(select(func.max(FedFact.seq)).where(FedFact.origin == origin)) or 0
        row = FedFact(origin=origin, seq=last + 1, kind=kind, version=FACT_VERSION, at=at, body=dict(body))
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue
        return row
    raise RuntimeError(f"could not allocate a sequence number for {origin} after {MAX_APPEND_RETRIES} tries")


def unsigned(session: Session, origin: str, limit: int = 500) -> list[FedFact]:
    """This node's facts still waiting for a signature, oldest first."""
    query = select(FedFact).where(FedFact.origin == origin, FedFact.sig.is_(None)).order_by(FedFact.seq)
    return list(session.scalars(query.limit(limit)))


def as_fact(row: FedFact) -> Fact:
    """The contract's view of a stored fact."""
    return Fact(row.origin, row.seq, row.kind, row.at, row.body, row.version, row.sig or "")


def have_vector(session: Session) -> dict[str, int]:
    """origin -> the highest seq held with every lower one held too (only signed facts count)."""
    signed = FedFact.sig.is_not(None)
    query = select(FedFact.origin, func.count(), func.max(FedFact.seq)).where(signed).group_by(FedFact.origin)
    vector: dict[str, int] = {}
    for origin, count, top in session.execute(query):
        if count == top:
            vector[origin] = int(top)
            continue
        seqs = session.scalars(
            select(FedFact.seq).where(FedFact.origin == origin, signed).order_by(FedFact.seq)
        )
        contiguous = 0
        for seq in seqs:
            if seq != contiguous + 1:
                break
            contiguous = seq
        vector[origin] = contiguous
    return vector


def facts_above(session: Session, have: Mapping[str, int], limit: int) -> list[Fact]:
    """Signed facts the holder of `have` lacks, oldest first per origin, at most `limit` in all.

    Origins are taken in turn so that one busy node cannot starve the others in a long catch-up.
    """
    tops = session.execute(
        select(FedFact.origin, func.max(FedFact.seq)).where(FedFact.sig.is_not(None)).group_by(FedFact.origin)
    )
    wanted = [origin for origin, top in tops if top > have.get(origin, 0)]
    out: list[Fact] = []
    share = max(1, limit // max(1, len(wanted)))
    for origin in sorted(wanted):
        query = (
            select(FedFact)
            .where(FedFact.origin == origin, FedFact.seq > have.get(origin, 0), FedFact.sig.is_not(None))
            .order_by(FedFact.seq)
            .limit(share)
        )
        out.extend(as_fact(row) for row in session.scalars(query))
    return out[:limit]


@dataclass
class StoreResult:
    """What happened to one batch of facts from a peer."""

    stored: list[Fact] = field(default_factory=list)
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def store_facts(
    session: Session,
    facts: Iterable[Fact],
    *,
    via: str,
    self_name: str,
    key_of: Callable[[str], str | None],
    verify: Callable[[Fact, str], bool],
) -> StoreResult:
    """Store a peer's facts idempotently: each once per (origin, seq), checked against its origin's key.

    A fact already held with the same signature is a duplicate (bridges and resends make many); one held with
    different content, or under a seq this node has already used, is a conflict, dead-lettered, and the
    stored one is kept. This node's own facts come back from peers only after its store was restored from
    an older backup: signed with its own key and not held, they are taken back like any other.
    """
    result = StoreResult()
    for fact in facts:
        try:
            key = key_of(fact.origin)
            if key is None:
                raise ProtocolError("origin_unknown", f"node {fact.origin!r} is not in the federation file")
            held = session.execute(
                select(FedFact.id, FedFact.sig).where(FedFact.origin == fact.origin, FedFact.seq == fact.seq)
            ).first()
            if held is not None and held.sig == fact.sig:
                result.duplicates += 1
                continue
            if not verify(fact, key):
                raise ProtocolError(
                    "signature_invalid", f"fact {fact.origin}/{fact.seq} is not signed by its origin"
                )
            if held is not None:
                mine = " (this node's own seq, already used)" if fact.origin == self_name else ""
                raise ProtocolError(
                    "fact_conflict", f"{fact.origin}/{fact.seq} is held with other content{mine}"
                )
            session.add(
                FedFact(
                    origin=fact.origin,
                    seq=fact.seq,
                    kind=fact.kind,
                    version=fact.v,
                    at=fact.at,
                    body=dict(fact.body),
                    sig=fact.sig,
                    via=via,
                )
            )
            session.flush()
            result.stored.append(fact)
        except ProtocolError as exc:
            dead_letter_fact(session, via, self_name, fact.to_json(), exc)
            result.rejected[exc.reason] = result.rejected.get(exc.reason, 0) + 1
    return result


def dead_letter_fact(
    session: Session, via: str, self_name: str, raw: Mapping[str, Any], exc: ProtocolError
) -> None:
    """Keep a refused fact with its reason, as the gateway keeps a refused device message."""
    try:
        payload = canonical(dict(raw))
    except (TypeError, ValueError):
        payload = repr(raw).encode()
    topic = inbound_topic(self_name, via)
    session.add(DeadLetter(topic=topic, payload=payload, reason=exc.reason, detail=exc.detail[:500]))


def facts_of_kind(session: Session, kind: str, since_seq: Mapping[str, int] | None = None) -> list[FedFact]:
    """Every signed fact of `kind`, by origin and seq (own unsigned facts too: this node trusts itself)."""
    query = select(FedFact).where(FedFact.kind == kind).order_by(FedFact.origin, FedFact.seq)
    rows = list(session.scalars(query))
    if since_seq:
        rows = [row for row in rows if row.seq > since_seq.get(row.origin, 0)]
    return rows


def latest_of_kind(session: Session, kind: str) -> dict[str, FedFact]:
    """The newest fact of `kind` from each origin (a node's current stock summary, its node entry)."""
    newest = (
        select(FedFact.origin, func.max(FedFact.seq).label("seq"))
        .where(FedFact.kind == kind)
        .group_by(FedFact.origin)
        .subquery()
    )
    query = select(FedFact).join(newest, (FedFact.origin == newest.c.origin) & (FedFact.seq == newest.c.seq))
    return {row.origin: row for row in session.scalars(query)}


def note_node(
    session: Session, name: str, *, direct: bool, link_up: bool | None, heard_at: datetime | None
) -> None:
    """Record what this node knows of another; `changed_at` moves only when the link state changes."""
    row = session.get(FedNode, name)
    now = utcnow()
    if row is None:
        row = FedNode(name=name, direct=direct, link_up=bool(link_up), last_heard_at=heard_at, changed_at=now)
        session.add(row)
        return
    row.direct = direct
    if link_up is not None and row.link_up != link_up:
        row.link_up = link_up
        row.changed_at = now
    if heard_at is not None and (row.last_heard_at is None or heard_at > row.last_heard_at):
        row.last_heard_at = heard_at


def sign_pending(session: Session, origin: str, sign: Callable[[Fact], Fact], limit: int = 500) -> int:
    """Sign this node's new facts; returns how many were signed."""
    rows = unsigned(session, origin, limit)
    for row in rows:
        signed = sign(as_fact(row))
        session.execute(update(FedFact).where(FedFact.id == row.id).values(sig=signed.sig))
    return len(rows)


def role_holder(
    session: Session, order: Sequence[str], lease_s: float, self_name: str, now: datetime
) -> str | None:
    """Who holds the regional planning role as this node's agent last recorded it: the first of `order`
    heard within `lease_s` (this node always counts as heard). The same rule the agent applies live."""
    heard = {row.name: row.last_heard_at for row in session.scalars(select(FedNode))}
    for name in order:
        if name == self_name:
            return name
        at = heard.get(name)
        if at is not None and (now - at).total_seconds() < lease_s:
            return name
    return None
