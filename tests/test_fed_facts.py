"""Federation facts without a broker: the envelope, signatures, idempotent storage, vectors, and what a
node does with plans (answer by rule, carry, book a delivery once)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.federation import Fact, Frame, parse_fact, parse_frame
from gateway.contract.reasons import FedReason, ProtocolError
from gateway.federation.directory import parse_federation
from gateway.federation.keys import NodeKey, verify
from gateway.federation.node_facts import NodeRules, answer, plan_shipments, publish, settle
from gateway.federation.prepare import node_region
from gateway.store import federation as log_store
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import DeadLetter, FedFact, Shipment, Stock, StockLedgerEntry
from gateway.store.region import load_region, read_region, sample_region_path
from logistics.allocation.regional import CommunitySummary, plan_between_nodes
from logistics.loaders.federation import save_regional_plan, under_way

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
KEYS = {name: NodeKey.generate() for name in ("valle", "rio", "monte")}


def signed(origin: str, seq: int, body: dict | None = None, kind: str = "stock") -> Fact:
    return KEYS[origin].sign(Fact(origin, seq, kind, AT, body or {"n": seq}))


def store(session: Session, facts: list[Fact], via: str = "rio", me: str = "valle") -> log_store.StoreResult:
    keys = {name: key.public for name, key in KEYS.items()}
    return log_store.store_facts(session, facts, via=via, self_name=me, key_of=keys.get, verify=verify)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def test_a_fact_survives_the_wire_and_its_signature_covers_every_field() -> None:
    fact = signed("rio", 3, {"community": "rio", "goods": {"rice": {"stock": 1.5}}})
    wire = json.loads(Frame("facts", "rio", facts=(fact,)).encode())
    back = parse_fact(wire["facts"][0])
    assert back == fact and verify(back, KEYS["rio"].public)
    for field, value in (("seq", 4), ("origin", "monte"), ("body", {"n": 1}), ("kind", "fault")):
        forged = Fact(**{**back.__dict__, field: value})
        assert not verify(forged, KEYS["rio"].public), field
    assert not verify(back, KEYS["monte"].public)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff", "not_utf8"),
        (b"{", "not_json"),
        (b"[]", "not_object"),
        (b'{"t": "gossip", "node": "rio"}', "field_type"),
        (b'{"t": "ack", "node": "Rio!", "have": {}}', "slug_invalid"),
        (b'{"t": "ack", "node": "rio", "have": {"valle": -1}}', "field_type"),
        (b'{"t": "beat", "node": "rio", "heard": {"valle": NaN}}', "not_json"),
        (b'{"t": "facts", "node": "rio", "facts": {}}', "field_type"),
        (b"x" * 70_000, "payload_too_large"),
    ],
)
def test_an_unreadable_frame_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame(payload)
    assert caught.value.reason == reason


def test_one_bad_fact_costs_only_itself() -> None:
    good = signed("rio", 1).to_json()
    bad = [
        {**good, "v": 2},
        {**good, "seq": 0},
        {**good, "kind": "rumour"},
        {**good, "sig": ""},
        {**good, "extra": 1},
        {**good, "at": "yesterday"},
    ]
    frame, refused = parse_frame(json.dumps({"t": "facts", "node": "rio", "facts": [good, *bad]}).encode())
    assert [f.seq for f in frame.facts] == [1]
    assert [exc.reason for _, exc in refused] == [
        "version_unsupported",
        "field_type",
        "field_type",
        "field_missing",
        "field_unknown",
        "ts_invalid",
    ]


def test_facts_are_stored_once_and_forgeries_are_dead_lettered(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        first = store(session, [signed("rio", 1), signed("monte", 1)])
        again = store(session, [signed("rio", 1)], via="monte")
    assert (len(first.stored), again.duplicates) == (2, 1)
    stranger = NodeKey.generate().sign(Fact("nobody", 1, "stock", AT, {}))
    tampered = Fact(**{**signed("rio", 2).__dict__, "body": {"n": 99}})
    other_content = signed("rio", 1, {"n": "changed"})  # validly signed, but (rio, 1) is held already
    with sessions.begin() as session:
        refused = store(session, [stranger, tampered, other_content], via="monte")
        log_store.append_fact(session, "monte", "stock", {"n": "mine"}, AT)  # monte's own seq 1, unsigned yet
        forged_mine = NodeKey.generate().sign(Fact("monte", 2, "stock", AT, {"n": 2}))
        in_my_name = store(session, [signed("monte", 1, {"n": "other"}), forged_mine], via="rio", me="monte")
        restored = store(session, [signed("monte", 3)], via="rio", me="monte")  # a backup's later fact
    assert refused.rejected == {"origin_unknown": 1, "signature_invalid": 1, "fact_conflict": 1}
    assert in_my_name.rejected == {"fact_conflict": 1, "signature_invalid": 1}
    assert [f.seq for f in restored.stored] == [3]
    assert set(refused.rejected) | set(in_my_name.rejected) == set(get_args(FedReason))
    with sessions() as session:
        kept = session.scalars(select(DeadLetter.reason).order_by(DeadLetter.id)).all()
        assert kept == [
            "origin_unknown",
            "signature_invalid",
            "fact_conflict",
            "fact_conflict",
            "signature_invalid",
        ]
        letter = session.scalars(select(DeadLetter)).first()
        assert letter is not None and json.loads(letter.payload)["origin"] == "nobody"  # the raw fact is kept
        assert session.scalar(select(func.count()).select_from(FedFact)) == 4  # rio 1, monte 1 and 3, own seq


def test_the_vector_stops_at_the_first_gap(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        store(session, [signed("rio", n) for n in (1, 2, 3, 5, 6)] + [signed("monte", 1)])
        log_store.append_fact(session, "valle", "stock", {"n": 1}, AT)  # unsigned: not offered yet
        assert log_store.have_vector(session) == {"rio": 3, "monte": 1}
        above = log_store.facts_above(session, {"rio": 2}, limit=10)
        assert sorted((f.origin, f.seq) for f in above) == [("monte", 1), ("rio", 3), ("rio", 5), ("rio", 6)]
        assert log_store.sign_pending(session, "valle", KEYS["valle"].sign) == 1
        assert log_store.have_vector(session)["valle"] == 1


def test_the_federation_file_is_checked() -> None:
    nodes = {
        "valle": {"public_key": KEYS["valle"].public, "broker": "mqtt://10.0.0.1:1883"},
        "rio": {"public_key": "x"},
    }
    fed = parse_federation({"nodes": nodes, "links": [{"dial": "rio", "to": "valle"}]})
    assert fed.peers_of("rio") == [("valle", True)] and fed.peers_of("valle") == [("rio", False)]
    assert fed.planner_order() == ("rio", "valle")
    for bad, message in (
        ({"nodes": {}}, "needs a"),
        ({"nodes": {"Valle": {"public_key": "x"}}}, "not a slug"),
        ({"nodes": nodes, "links": [{"dial": "valle", "to": "rio"}]}, "lists no broker"),
        ({"nodes": nodes, "links": [{"dial": "rio", "to": "nowhere"}]}, "no node"),
        ({"nodes": nodes, "planners": ["ghost"]}, "planner"),
        ({"nodes": nodes, "lease_s": 0}, "lease_s"),
        ({"nodes": nodes, "lease_s": 10, "beat_s": 6}, "beat_s"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_federation(bad)


# --- a node's store and what it does with plans ------------------------------------------------------------

A, B = "camuy", "arecibo"


def node_store(tmp_path: Path, name: str) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / f'{name}.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        load_region(session, node_region(read_region(sample_region_path()), [name]))
    return engine, sessions


def test_a_node_loads_only_its_own_communitys_people_devices_and_stock(tmp_path: Path) -> None:
    data = read_region(sample_region_path())
    mine = node_region(data, [A])
    other = next(c for c in mine["communities"] if c["slug"] == B)
    assert other["needs"] == {} and all(not s["devices"] and not s["stock"] for s in other["sites"])
    assert {m["community"] for m in mine["members"]} == {A}
    assert len(mine["communities"]) == len(data["communities"])  # every place is still there to ship to
    with pytest.raises(ValueError, match="not in the region"):
        node_region(data, ["atlantis"])


def test_a_plan_is_answered_by_rule_carried_and_its_delivery_booked_once(tmp_path: Path) -> None:
    engines = {}
    stores = {}
    for name in (A, B):
        engines[name], stores[name] = node_store(tmp_path, name)
    rules = NodeRules(auto_accept_kg=300.0)
    summaries = []
    for name in (A, B):
        with stores[name].begin() as session:
            assert publish(session, name, [name], rules, AT) == 2  # its node entry and its stock
            assert publish(session, name, [name], rules, AT) == 0  # nothing changed
            row = log_store.latest_of_kind(session, "stock")[name]
            summaries.extend(CommunitySummary.from_fact(name, row.body))
    shipments, plan = plan_between_nodes(summaries, [])
    assert plan is not None and shipments and {(s.from_node, s.to_node) for s in shipments} == {(A, B)}
    kg = {slug: float(g["kg"]) for summary in summaries for slug, g in summary.goods.items()}

    def weight(item: dict) -> float:
        return float(item["quantity"]) * kg[item["good"]]

    heavy = [s for s in shipments if weight(s.to_json()) > 300]  # rice: over the rule, waits for a person
    assert heavy and len(heavy) < len(shipments)
    # The holder's plan fact, replicated to both nodes (signed by the holder, here A itself).
    with stores[A].begin() as session:
        fact = save_regional_plan(session, A, shipments, AT)
        assert fact is not None and save_regional_plan(session, A, shipments, AT) is None  # same plan twice
        log_store.sign_pending(session, A, KEYS_BY_NODE[A].sign)
        plan_fact = log_store.as_fact(fact)
    with stores[B].begin() as session:
        keys = {A: KEYS_BY_NODE[A].public}
        log_store.store_facts(session, [plan_fact], via=A, self_name=B, key_of=keys.get, verify=verify)
    for name in (A, B):
        with stores[name].begin() as session:
            settle(session, name, [name], rules, AT)
            pending = plan_shipments(session, name, [name])
            assert {p.mine for p in pending if weight(p.item) <= 300} == {True}
            assert {p.mine for p in pending if weight(p.item) > 300} == {None}
    # Answers travel; a coordinator in B accepts the heavy one, A's coordinator too.
    answers = []
    for name in (A, B):
        with stores[name].begin() as session:
            for p in plan_shipments(session, name, [name]):
                if p.mine is None:
                    answer(session, name, p.ref, name, True, "coordinator", AT)
            log_store.sign_pending(session, name, KEYS_BY_NODE[name].sign)
            answers += [
                log_store.as_fact(r) for r in log_store.facts_of_kind(session, "answer") if r.origin == name
            ]
    for name, other in ((A, B), (B, A)):
        with stores[name].begin() as session:
            mine = [f for f in answers if f.origin == other]
            keys = {other: KEYS_BY_NODE[other].public}
            log_store.store_facts(session, mine, via=other, self_name=name, key_of=keys.get, verify=verify)
            settle(session, name, [name], rules, AT)
            settle(session, name, [name], rules, AT)  # idempotent
    with stores[A]() as session:
        carried = session.scalars(select(Shipment).where(Shipment.fed_ref.is_not(None))).all()
        assert len(carried) == len(shipments)
        assert len(under_way(session)) == len(shipments)
    with stores[B]() as session:
        assert session.scalar(select(func.count()).select_from(Shipment)) == 0  # B carries nothing
    # A's driver delivers the first one; A reports it; B books it once.
    first = carried[0]
    with stores[A].begin() as session:
        row = session.get(Shipment, first.id)
        assert row is not None
        row.status = "delivered"
        assert publish(session, A, [A], rules, AT + timedelta(minutes=1)) >= 1
        log_store.sign_pending(session, A, KEYS_BY_NODE[A].sign)
        delivered = [log_store.as_fact(r) for r in log_store.facts_of_kind(session, "delivered")]
    assert len(delivered) == 1
    with stores[B].begin() as session:
        keys = {A: KEYS_BY_NODE[A].public}
        log_store.store_facts(session, delivered, via=A, self_name=B, key_of=keys.get, verify=verify)
        good = delivered[0].body["good"]
        before = _held(session, B, good)
        settle(session, B, [B], rules, AT)
        settle(session, B, [B], rules, AT)
        assert _held(session, B, good) == pytest.approx(before + first.quantity)
        booked = session.scalars(
            select(StockLedgerEntry).where(StockLedgerEntry.reason.like("delivered by %"))
        ).all()
        assert len(booked) == 1 and booked[0].delta == first.quantity
        assert under_way(session) != [] and len(under_way(session)) == len(shipments) - 1
    for engine in engines.values():
        engine.dispose()


KEYS_BY_NODE = {A: NodeKey.generate(), B: NodeKey.generate()}


def _held(session: Session, community: str, good: str) -> float:
    from gateway.store.models import Community, Good, Site

    query = (
        select(func.coalesce(func.sum(Stock.quantity), 0.0))
        .join(Site, Stock.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .join(Good, Stock.good_id == Good.id)
        .where(Community.slug == community, Good.slug == good)
    )
    return float(session.scalar(query) or 0.0)


def test_the_lease_must_outlast_beats_relayed_across_the_federation() -> None:
    nodes = {name: {"public_key": "k", "broker": "mqtt://h:1883"} for name in ("a", "b", "c", "d", "e")}
    chain = [{"dial": x, "to": y} for x, y in (("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"))]
    fed = parse_federation({"nodes": nodes, "links": chain, "lease_s": 30, "beat_s": 5})
    assert fed.diameter() == 4 and not fed.lease_is_safe()  # 5 s x (4 + 3) = 35 s > 30 s
    ring = [*chain, {"dial": "e", "to": "a"}]
    assert parse_federation({"nodes": nodes, "links": ring, "lease_s": 30, "beat_s": 5}).lease_is_safe()


def test_a_link_whose_hello_went_missing_asks_again() -> None:
    from gateway.federation.links import LinkState

    link = LinkState("rio", dials=True, beat_s=1.0, resend_s=2.0)
    link.connected = True
    assert link.ask_due(10.0)  # never asked
    link.asked_at = 10.0
    assert not link.ask_due(11.0) and link.ask_due(12.0)  # again after resend_s, until an answer
    link.reset({"rio": 3})
    assert not link.ask_due(20.0) and link.may_send(20.0)  # known now: facts may flow
