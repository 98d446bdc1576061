"""A node's dashboard and its federation: the /federation page (nodes, links, the planning role, shipments
between communities), a coordinator's Accept / Decline, /api/federation, and the map marking the
communities of a node whose link is down. Nothing of it exists where the dashboard is not a node."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dashboard.read import federation as fed
from dashboard.web.accounts import Account, MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig
from dashboard.web.store import get_store
from gateway.contract.errors import InvalidInput
from gateway.contract.federation import Fact
from gateway.federation.keys import NodeKey, verify
from gateway.federation.node_facts import NodeRules, answer, publish
from gateway.federation.prepare import node_region
from gateway.process.settings import Settings
from gateway.store import federation as log_store
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Community, FedFact, FedNode, utcnow
from gateway.store.region import load_region, read_region, sample_region_path
from logistics.allocation.regional import ProposedShipment
from logistics.loaders.federation import save_regional_plan
from tests.test_dashboard_pages import PASSWORD, Auth

ME, PEER, FAR = "camuy", "arecibo", "lares"
KEYS = {name: NodeKey.generate() for name in (ME, PEER, FAR)}
HOSTILE = '<img src=x onerror="alert(1)">'
SHIPMENTS = [
    ProposedShipment("1", PEER, ME, PEER, ME, "rice", 400.0, 21.4),  # to us: waits for our coordinator
    ProposedShipment("2", ME, PEER, ME, PEER, "drinking-water", 900.0, 21.4),
]


@dataclass
class Node:
    app: Flask
    sessions: sessionmaker[Session]
    plan_origin: str
    plan_seq: int

    def ref(self, shipment_id: str) -> str:
        return f"{self.plan_origin}/{self.plan_seq}#{shipment_id}"


def federation_file(path: Path, **extra: Any) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in {"lease_s": 30, "beat_s": 5, **extra}.items()]
    for name, key in KEYS.items():
        lines += [
            f"[nodes.{name}]",
            f'public_key = "{key.public}"',
            f'broker = "mqtt://10.0.0.{len(name)}:1883"',
        ]
    lines += [
        "[[links]]",
        f'dial = "{PEER}"',
        f'to = "{ME}"',
        "[[links]]",
        f'dial = "{FAR}"',
        f'to = "{PEER}"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _peer_facts(tmp_path: Path) -> list[Any]:
    """The peer's own `node` and `stock` facts, signed, as they reach this node."""
    engine = make_engine(f"sqlite:///{tmp_path / 'peer.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        load_region(session, node_region(read_region(sample_region_path()), [PEER]))
        publish(session, PEER, [PEER], NodeRules(), utcnow())
        log_store.sign_pending(session, PEER, KEYS[PEER].sign)
        out = [log_store.as_fact(r) for r in session.scalars(select(FedFact).order_by(FedFact.seq))]
    engine.dispose()
    return out


def peer_fact(seq: int, kind: str, body: dict[str, Any], at: datetime | None = None) -> Fact:
    """A fact of the peer's, signed by it (its seqs 1-3 are its node, stock and plan facts)."""
    if kind == "answer":
        body = {"by": "rule", **body}
    return KEYS[PEER].sign(Fact(PEER, seq, kind, at or utcnow(), body))


def receive(session: Session, facts: list[Any], via: str = PEER) -> None:
    keys = {name: key.public for name, key in KEYS.items()}
    result = log_store.store_facts(session, facts, via=via, self_name=ME, key_of=keys.get, verify=verify)
    assert not result.rejected, result.rejected


@pytest.fixture(scope="module")
def password_hash() -> str:
    return make_account("someone", PASSWORD, "viewer").password_hash


def seed_store(directory: Path) -> tuple[Path, str, int]:
    """This node's store (camuy) holding its peer's facts and a plan by the peer with a shipment each way:
    the file, and the plan's origin and seq. Built once per module; each test works on a copy."""
    path = directory / "node.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    now = utcnow()
    with sessions.begin() as session:
        load_region(session, node_region(read_region(sample_region_path()), [ME]))
        session.execute(update(Community).where(Community.slug == PEER).values(name=HOSTILE))
        publish(session, ME, [ME], NodeRules(), now)
        receive(session, _peer_facts(directory))
    # The plan comes from the peer, as the holder of the role when it was last heard.
    peer_engine = make_engine(f"sqlite:///{directory / 'peer.db'}")
    with make_session_factory(peer_engine).begin() as session:
        plan = save_regional_plan(session, PEER, SHIPMENTS, now)
        assert plan is not None
        log_store.sign_pending(session, PEER, KEYS[PEER].sign)
        plan_fact = log_store.as_fact(plan)
    peer_engine.dispose()
    with sessions.begin() as session:
        receive(session, [plan_fact])
    engine.dispose()
    return path, plan_fact.origin, plan_fact.seq


def node_app(
    seeded: tuple[Path, str, int], directory: Path, accounts: MemoryAccountStore, **fed_extra: Any
) -> Node:
    """A copy of the seeded store served as node camuy: its peer's direct link went down 12 minutes ago,
    a far node (through the peer) was heard 2 minutes ago."""
    source, origin, seq = seeded
    path = directory / "served.db"
    shutil.copyfile(source, path)
    url = f"sqlite:///{path}"
    settings = Settings(
        database_url=url, node_name=ME, federation_file=federation_file(directory / "fed.toml", **fed_extra)
    )
    app = create_app(settings, DashboardConfig(public_map=False), accounts, test_config={"TESTING": True})
    now = utcnow()
    with get_store(app).sessions.begin() as session:
        log_store.note_node(session, PEER, direct=True, link_up=False, heard_at=now - timedelta(minutes=12))
        log_store.note_node(session, FAR, direct=False, link_up=None, heard_at=now - timedelta(minutes=2))
        session.execute(
            update(FedNode).where(FedNode.name == PEER).values(changed_at=now - timedelta(minutes=12))
        )
    return Node(app, get_store(app).sessions, origin, seq)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    return seed_store(tmp_path_factory.mktemp("fednode"))


@pytest.fixture
def node(tmp_path: Path, password_hash: str, seeded: tuple[Path, str, int]) -> Iterator[Node]:
    accounts = MemoryAccountStore(
        [Account("coord", password_hash, "coordinator"), Account("viewer", password_hash, "viewer")]
    )
    served = node_app(seeded, tmp_path, accounts, planners=[PEER, ME], lease_s=600)
    yield served
    get_store(served.app).engine.dispose()


def signed_in(node: Node, username: str) -> Auth:
    auth = Auth(node.app.test_client())
    assert auth.login(username).status_code == 302
    return auth


def answers(node: Node) -> list[dict[str, Any]]:
    with node.sessions() as session:
        return [dict(r.body) for r in log_store.facts_of_kind(session, "answer") if r.origin == ME]


def shipment_block(page: str, ref: str) -> str:
    found = re.search(rf'<li class="rz-task rz-shipment" data-ref="{re.escape(ref)}">(.*?)</li>', page, re.S)
    assert found is not None, ref
    return found.group(1)


def test_a_coordinator_accepts_a_waiting_shipment_and_the_fact_is_written(node: Node) -> None:
    auth = signed_in(node, "coord")
    page = auth.client.get("/federation").get_data(as_text=True)
    incoming, outgoing = shipment_block(page, node.ref("1")), shipment_block(page, node.ref("2"))
    assert "waiting for us" in incoming and "waiting for us" in outgoing
    assert 'value="accept"' in incoming and 'value="decline"' in incoming
    assert "2 shipments wait for this node" in page
    response = auth.post(
        "/federation/answer", {"ref": node.ref("1"), "decision": "accept"}, page="/federation"
    )
    assert response.status_code == 302 and response.location == "/federation"
    assert answers(node) == [{"ref": node.ref("1"), "community": ME, "accept": True, "by": "coord"}]
    after = auth.client.get("/federation").get_data(as_text=True)
    assert "Accepted: 400 kg Rice" in after
    block = shipment_block(after, node.ref("1"))
    assert "waiting for them" in block and 'value="accept"' not in block
    # The peer's answer arrives: accepted by both.
    with node.sessions.begin() as session:
        receive(session, [peer_fact(4, "answer", {"ref": node.ref("1"), "community": PEER, "accept": True})])
    final = auth.client.get("/federation").get_data(as_text=True)
    assert "accepted by both" in shipment_block(final, node.ref("1"))
    # The decline of the other one, recorded as a decline.
    declined = auth.post(
        "/federation/answer", {"ref": node.ref("2"), "decision": "decline"}, page="/federation"
    )
    assert declined.status_code == 302
    assert answers(node)[-1] == {"ref": node.ref("2"), "community": ME, "accept": False, "by": "coord"}
    assert "declined" in shipment_block(auth.client.get("/federation").get_data(as_text=True), node.ref("2"))


def test_a_viewer_sees_the_page_without_buttons_and_may_not_answer(node: Node) -> None:
    auth = signed_in(node, "viewer")
    page = auth.client.get("/federation")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "waiting for us" in text
    assert "/federation/answer" not in text and 'value="accept"' not in text
    refused = auth.post(
        "/federation/answer", {"ref": node.ref("1"), "decision": "accept"}, page="/federation"
    )
    assert refused.status_code == 403 and answers(node) == []
    anonymous = node.app.test_client().get("/federation")
    assert anonymous.status_code == 302 and anonymous.location.startswith("/login")


def test_a_second_answer_is_refused_with_409(node: Node) -> None:
    auth = signed_in(node, "coord")
    first = auth.post("/federation/answer", {"ref": node.ref("1"), "decision": "accept"}, page="/federation")
    again = auth.post("/federation/answer", {"ref": node.ref("1"), "decision": "decline"}, page="/federation")
    assert first.status_code == 302 and again.status_code == 409
    assert "waiting for them" in again.get_data(as_text=True)
    assert len(answers(node)) == 1


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"ref": "arecibo/1#1'><script>", "decision": "accept"}, 400),
        ({"ref": "", "decision": "accept"}, 400),
        ({"ref": "x" * 5000, "decision": "accept"}, 400),
        ({"ref": "arecibo/99999999999999999999#1", "decision": "accept"}, 400),
        ({"ref": "arecibo/1#1", "decision": "maybe"}, 400),
        ({"ref": "arecibo/77#1", "decision": "accept"}, 404),
        ({"ref": "nobody/1#1", "decision": "accept"}, 404),
    ],
)
def test_a_forged_ref_or_decision_is_a_4xx_not_a_500(node: Node, form: dict[str, str], status: int) -> None:
    auth = signed_in(node, "coord")
    response = auth.post("/federation/answer", form, page="/federation")
    assert response.status_code == status
    assert "<script>" not in response.get_data(as_text=True)
    assert answers(node) == []


def test_a_post_without_the_csrf_token_is_refused(node: Node) -> None:
    auth = signed_in(node, "coord")
    response = auth.client.post("/federation/answer", data={"ref": node.ref("1"), "decision": "accept"})
    assert response.status_code == 400 and answers(node) == []


def test_names_are_escaped_and_no_person_is_named(node: Node) -> None:
    auth = signed_in(node, "coord")
    auth.post("/federation/answer", {"ref": node.ref("2"), "decision": "accept"}, page="/federation")
    page = auth.client.get("/federation").get_data(as_text=True)
    assert (
        HOSTILE not in page and "&lt;img src=x onerror=" in page
    )  # the peer community's name, and the notice
    body = auth.client.get("/api/federation").get_data(as_text=True)
    assert '"by"' not in body and "coord" not in body.replace('"coordinator"', "")
    map_page = auth.client.get("/").get_data(as_text=True)
    assert HOSTILE not in map_page


def test_the_page_shows_each_nodes_link_and_the_planning_role(node: Node) -> None:
    page = signed_in(node, "viewer").client.get("/federation").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-node="([a-z-]+)".*?class="rz-link-state">([^<]*)</td>', page, re.S))
    assert rows == {ME: "this node", PEER: "link down for 12 min", FAR: "last heard 2 min ago"}
    # arecibo comes first among the planners but was last heard 12 minutes ago (lease 10 min): camuy holds it.
    assert re.search(r'held by <strong id="rz-holder">camuy</strong> \(this node\)', page)


def test_the_api_gives_nodes_holder_and_shipments(node: Node) -> None:
    client = signed_in(node, "viewer").client
    body = client.get("/api/federation").get_json()
    assert (body["node"], body["communities"], body["holder"], body["lease_s"]) == (ME, [ME], ME, 600.0)
    states = {n["name"]: n for n in body["nodes"]}
    assert states[PEER]["down"] and states[PEER]["direct"] and states[PEER]["link_up"] is False
    assert 700 < states[PEER]["down_for_s"] < 740 and states[PEER]["communities"] == [PEER]
    assert not states[FAR]["down"] and not states[FAR]["direct"] and states[FAR]["link_up"] is None
    assert states[ME]["me"] and states[ME]["communities"] == [ME]
    assert [s["status"] for s in body["shipments"]] == ["waiting for us", "waiting for us"]
    assert body["shipments"][0] | {"plan": ""} == {
        "ref": node.ref("1"),
        "plan": "",
        "good": "rice",
        "quantity": 400.0,
        "unit": "kg",
        "from_node": PEER,
        "to_node": ME,
        "from_community": PEER,
        "to_community": ME,
        "km": 21.4,
        "status": "waiting for us",
    }
    assert body["waiting_for_us"] == 2
    assert client.get("/api/federation?x=1").status_code == 400
    assert node.app.test_client().get("/api/federation").status_code == 401


def test_the_planning_role_goes_to_the_first_planner_heard_within_the_lease(node: Node) -> None:
    with node.sessions.begin() as session:
        log_store.note_node(session, PEER, direct=True, link_up=True, heard_at=utcnow())
    client = signed_in(node, "viewer").client
    body = client.get("/api/federation").get_json()
    assert body["holder"] == PEER
    assert {n["name"]: n["state"] for n in body["nodes"]}[PEER] == "link up"


def test_the_map_marks_the_communities_of_a_node_whose_link_is_down(node: Node) -> None:
    page = signed_in(node, "viewer").client.get("/").get_data(as_text=True)
    block = re.search(r'<script type="application/json" id="rz-data-links"[^>]*>(.*?)</script>', page, re.S)
    assert block is not None
    links = json.loads(block.group(1))
    assert links == {PEER: {"node": PEER, "down": True, "text": "link down for 12 min"}}
    assert "1 communities of other nodes behind a link that is down" in page
    assert "link down: its node is cut off" in page  # the legend says what the dashed ring means
    with node.sessions.begin() as session:
        log_store.note_node(session, PEER, direct=True, link_up=True, heard_at=utcnow())
    again = signed_in(node, "viewer").client.get("/").get_data(as_text=True)
    assert '"down":false' in again and "0 communities of other nodes" in again


def test_a_node_unheard_beyond_the_lease_counts_as_down_even_if_not_direct(node: Node) -> None:
    with node.sessions() as session:
        fake_now = utcnow() + timedelta(
            minutes=9
        )  # the far node, heard 2 min ago, is 11 min unheard (lease 10)
        states = {s.name: s for s in fed.node_states(session, node_ctx(node).federation, ME, fake_now)}
    far = states[FAR]
    assert far.down and far.text(fake_now) == "last heard 11 min ago (link down)"


def node_ctx(node: Node) -> Any:
    return node.app.extensions["rhizome.node"]


def test_statuses_superseded_and_delivered(node: Node) -> None:
    with node.sessions.begin() as session:
        answer(session, ME, node.ref("1"), ME, True, "coord", utcnow())
        receive(session, [peer_fact(4, "answer", {"ref": node.ref("1"), "community": PEER, "accept": True})])
        delivered = {"ref": node.ref("1"), "to": ME, "to_community": ME, "good": "rice", "quantity": 400.0}
        receive(session, [peer_fact(5, "delivered", delivered)])
        newer = {"shipments": [SHIPMENTS[1].to_json()]}
        receive(session, [peer_fact(6, "plan", newer, utcnow() + timedelta(seconds=1))])
    with node.sessions() as session:
        rows = {(r.plan, r.ref.rsplit("#")[1]): r.status for r in fed.shipments(session, ME, [ME])}
    old = f"{node.plan_origin}/{node.plan_seq}"
    assert rows == {
        (f"{PEER}/6", "2"): "waiting for us",
        (old, "1"): "delivered",
        (old, "2"): "superseded",
    }
    auth = signed_in(node, "coord")
    refused = auth.post(
        "/federation/answer", {"ref": node.ref("2"), "decision": "accept"}, page="/federation"
    )
    assert refused.status_code == 409 and "superseded" in refused.get_data(as_text=True)


def test_not_a_node_no_federation_page_api_or_map_marks(tmp_path: Path, password_hash: str) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine).begin() as session:
        load_region(session, node_region(read_region(sample_region_path()), [ME]))
        assert session.scalar(select(func.count()).select_from(FedFact)) == 0
    engine.dispose()
    accounts = MemoryAccountStore([Account("coord", password_hash, "coordinator")])
    app = create_app(Settings(database_url=url), DashboardConfig(), accounts, test_config={"TESTING": True})
    try:
        auth = Auth(app.test_client())
        assert auth.login("coord").status_code == 302
        assert auth.client.get("/federation").status_code == 404
        assert auth.client.get("/api/federation").status_code == 404
        assert auth.post("/federation/answer", {"ref": "a/1#1", "decision": "accept"}).status_code == 404
        page = auth.client.get("/").get_data(as_text=True)
        assert "rz-data-links" not in page and "other nodes" not in page and "link down: its node" not in page
    finally:
        get_store(app).engine.dispose()


def test_a_federation_file_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    broken = tmp_path / "fed.toml"
    broken.write_text("lease_s = [", encoding="utf-8")
    with pytest.raises(InvalidInput):
        create_app(
            Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", node_name=ME, federation_file=broken)
        )
    other = federation_file(tmp_path / "other.toml")
    with pytest.raises(ValueError, match="not in"):
        create_app(
            Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", node_name="ponce", federation_file=other)
        )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "under a minute"),
        (59, "under a minute"),
        (60, "1 min"),
        (7199, "119 min"),
        (7200, "2 h"),
        (7800, "2 h 10 min"),
        (3 * 86400, "3 days"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert fed.for_how_long(seconds) == text


def test_the_api_answers_as_its_openapi_document_says(node: Node) -> None:
    """The fuzz test (tests/test_openapi_contract.py) sees a dashboard that is no node, where this path is a
    404; here the node's answer is checked against the document's schema."""
    client = signed_in(node, "viewer").client
    served = client.get("/api/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(served)
    schema.app = node.app
    operation = schema["/api/federation"]["GET"]
    case = operation.Case()
    cookie = client.get_cookie("rhizome_session")
    assert cookie is not None
    response = case.call(cookies={"rhizome_session": cookie.value}, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    case.validate_response(response, checks=[response_schema_conformance, status_code_conformance])


def test_answers_sent_at_once_are_written_once(node: Node) -> None:
    """A double tap, or two coordinators at once: one answer fact, the others a 409."""
    clients = [signed_in(node, "coord") for _ in range(6)]
    tokens = [c.token("/federation") for c in clients]
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def tap(auth: Auth, token: str) -> None:
        start.wait()
        form = {"ref": node.ref("1"), "decision": "accept", "csrf_token": token}
        statuses.append(auth.client.post("/federation/answer", data=form).status_code)

    threads = [threading.Thread(target=tap, args=pair) for pair in zip(clients, tokens, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [302] + [409] * 5
    assert len(answers(node)) == 1
