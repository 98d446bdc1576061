"""Cross-community help over facts, without a broker: two node stores pass their facts by hand. A repair task
arecibo cannot staff becomes a `task` fact; camuy's skilled crew near enough see it and offer (`help`);
arecibo takes the first fitting offer (`answer`); camuy reserves the hours only within the person's offer,
and publishes the hours its people gave away from home as sums (`hours`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.errors import InvalidInput
from gateway.contract.topics import member_alerts_topic
from gateway.federation import help as fed_help
from gateway.federation.keys import NodeKey, verify
from gateway.federation.node_facts import NodeRules, publish, settle
from gateway.federation.prepare import node_region
from gateway.store import federation as log_store
from gateway.store import hours
from gateway.store import tasks as lifecycle
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import (
    Community,
    FedFact,
    FedHelp,
    HoursEntry,
    Member,
    MemberSkill,
    OutboxMessage,
    RepairTask,
    Site,
)
from gateway.store.models.vocab import WorkKind
from gateway.store.region import load_region, read_region, sample_region_path

HOME, HELPER = "arecibo", "camuy"  # about 20 km apart
KEYS = {HOME: NodeKey.generate(), HELPER: NodeKey.generate()}
AT = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
RULES = NodeRules(help_after_s=1800)
NAMES = {
    "near": "Ana Nieves Rivera",
    "far": "Beto Far Lugo",
    "unskilled": "Carla Sin Oficio",
    "second": "Dario Otro",
}


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[dict[str, sessionmaker[Session]]]:
    engines, out = [], {}
    for name in (HOME, HELPER):
        engine = make_engine(f"sqlite:///{tmp_path / f'{name}.db'}")
        upgrade(engine)
        out[name] = make_session_factory(engine)
        with out[name].begin() as session:
            load_region(session, node_region(read_region(sample_region_path()), [name]))
        engines.append(engine)
    with out[HELPER].begin() as session:
        camuy = session.scalars(select(Community).where(Community.slug == HELPER)).one()
        places = {"near": (camuy.lat, camuy.lon), "far": (18.42, -66.07), "unskilled": (camuy.lat, camuy.lon)}
        places["second"] = (camuy.lat, camuy.lon)
        for key, (lat, lon) in places.items():
            member = Member(
                name=NAMES[key], community_id=camuy.id, lat=lat, lon=lon, is_crew=True, hours_per_week=10.0
            )
            session.add(member)
            session.flush()
            if key != "unskilled":
                session.add(MemberSkill(member_id=member.id, skill="pump-mechanic"))
    yield out
    for engine in engines:
        engine.dispose()


def member_id(sessions: sessionmaker[Session], key: str) -> int:
    with sessions() as session:
        return session.scalars(select(Member.id).where(Member.name == NAMES[key])).one()


def open_task(
    sessions: sessionmaker[Session], *, escalate: bool, at: datetime = AT, hours_h: float = 4.0
) -> int:
    with sessions.begin() as session:
        site = session.scalars(
            select(Site).join(Community, Site.community_id == Community.id).where(Community.slug == HOME)
        ).first()
        assert site is not None
        task = RepairTask(
            site_id=site.id,
            title="Pump failure at the well",
            status="open",
            urgency=5,
            estimated_hours=hours_h,
            required_skills=["pump-mechanic"],
            created_at=at,
            updated_at=at,
        )
        session.add(task)
        session.flush()
        if escalate:
            lifecycle.apply(session, task, lifecycle.TaskAction.ESCALATE, reason="nobody here", at=at)
        return task.id


def exchange(stores: dict[str, sessionmaker[Session]]) -> None:
    """Each node signs what it wrote and hands every fact it holds to the other (duplicates are dropped)."""
    held = {}
    for name, sessions in stores.items():
        with sessions.begin() as session:
            log_store.sign_pending(session, name, KEYS[name].sign)
            held[name] = [log_store.as_fact(r) for r in session.scalars(select(FedFact).order_by(FedFact.id))]
    keys = {name: key.public for name, key in KEYS.items()}
    for name, other in ((HOME, HELPER), (HELPER, HOME)):
        with stores[name].begin() as session:
            log_store.store_facts(
                session, held[other], via=other, self_name=name, key_of=keys.get, verify=verify
            )


def step(stores: dict[str, sessionmaker[Session]], at: datetime, rounds: int = 3) -> None:
    """Both nodes report, exchange and settle (settle twice: it must be idempotent) a few times."""
    for _ in range(rounds):
        for name, sessions in stores.items():
            with sessions.begin() as session:
                publish(session, name, [name], RULES, at)
        exchange(stores)
        for name, sessions in stores.items():
            with sessions.begin() as session:
                settle(session, name, [name], RULES, at)
                assert settle(session, name, [name], RULES, at) == 0  # nothing left to do
        exchange(stores)


def own_facts(sessions: sessionmaker[Session], origin: str, kind: str) -> list[dict]:
    with sessions() as session:
        return [dict(r.body) for r in log_store.facts_of_kind(session, kind) if r.origin == origin]


def test_an_escalated_task_is_opened_to_neighbours_at_once_an_open_one_after_the_threshold(
    stores: dict[str, sessionmaker[Session]],
) -> None:
    escalated = open_task(stores[HOME], escalate=True)
    young = open_task(stores[HOME], escalate=False)
    with stores[HOME].begin() as session:
        publish(session, HOME, [HOME], RULES, AT + timedelta(minutes=10))
        publish(session, HOME, [HOME], RULES, AT + timedelta(minutes=10))  # nothing new
    told = own_facts(stores[HOME], HOME, "task")
    assert [t["ref"] for t in told] == [f"{HOME}/{escalated}"]
    body = told[0]
    assert body["status"] == "open" and body["community"] == HOME and body["skills"] == ["pump-mechanic"]
    assert body["hours"] == 4.0 and body["urgency"] == 5 and body["title"] == "Pump failure at the well"
    assert {"lat", "lon", "opened_at"} <= set(body)
    with stores[HOME].begin() as session:
        publish(session, HOME, [HOME], RULES, AT + timedelta(minutes=31))
    assert [t["ref"] for t in own_facts(stores[HOME], HOME, "task")][-1] == f"{HOME}/{young}"
    # Taken here after all: neighbours are told, once.
    with stores[HOME].begin() as session:
        task = session.get(RepairTask, young)
        assert task is not None
        crew = session.scalars(select(Member.id)).first()
        assert crew is not None
        lifecycle.apply(
            session, task, lifecycle.TaskAction.ASSIGN, member_id=crew, at=AT + timedelta(hours=1)
        )
        publish(session, HOME, [HOME], RULES, AT + timedelta(hours=1))
        publish(session, HOME, [HOME], RULES, AT + timedelta(hours=1))
    statuses = [(t["ref"], t["status"]) for t in own_facts(stores[HOME], HOME, "task")]
    assert statuses[-1] == (f"{HOME}/{young}", "taken") and len(statuses) == 3


def test_the_neighbour_shows_it_to_skilled_crew_near_enough_only(
    stores: dict[str, sessionmaker[Session]],
) -> None:
    task = open_task(stores[HOME], escalate=True)
    step(stores, AT)
    with stores[HELPER]() as session:
        near = fed_help.neighbour_tasks(session, HELPER, member_id(stores[HELPER], "near"))
        assert [t.ref for t in near] == [f"{HOME}/{task}"] and 0 < near[0].km <= fed_help.HELP_MAX_KM
        assert fed_help.neighbour_tasks(session, HELPER, member_id(stores[HELPER], "far")) == []
        assert fed_help.neighbour_tasks(session, HELPER, member_id(stores[HELPER], "unskilled")) == []
    with stores[HOME]() as session:  # a node never offers its own tasks to itself
        assert fed_help.neighbour_tasks(session, HOME, session.scalars(select(Member.id)).first() or 0) == []


def test_an_offer_is_accepted_the_task_taken_the_hours_reserved_and_a_second_offer_refused(
    stores: dict[str, sessionmaker[Session]],
) -> None:
    task_id = open_task(stores[HOME], escalate=True)
    ref = f"{HOME}/{task_id}"
    step(stores, AT)
    near, second = member_id(stores[HELPER], "near"), member_id(stores[HELPER], "second")
    with stores[HELPER].begin() as session:
        offer = fed_help.offer_help(session, HELPER, near, ref, AT)
        offer_id = offer.id
    step(stores, AT + timedelta(minutes=1))
    with stores[HOME]() as session:
        task = session.get(RepairTask, task_id)
        assert task is not None and task.status == "assigned" and task.assigned_member_id is None
        assert task.helper_ref == fed_help.helper_ref(HELPER, offer_id)
    answers = own_facts(stores[HOME], HOME, "answer")
    assert [(a["accept"], a["helper"]) for a in answers] == [(True, task.helper_ref)]
    assert [t["status"] for t in own_facts(stores[HOME], HOME, "task")] == ["open", "helped"]
    with stores[HELPER]() as session:
        row = session.get(FedHelp, offer_id)
        assert row is not None and row.state == "accepted"
        entry = session.scalars(select(HoursEntry).where(HoursEntry.work == WorkKind.HELP)).one()
        assert (entry.member_id, entry.state, entry.sector, entry.hours) == (
            near,
            "reserved",
            "maintenance",
            4.0,
        )
        alerts = session.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == member_alerts_topic(near))
        )
        events = [json.loads(m.payload)["event"] for m in alerts]
        assert events == ["help_accepted"]
        # It is no longer shown as open to anyone.
        assert fed_help.neighbour_tasks(session, HELPER, second) == []
    # A second offer that reached arecibo after the acceptance (made from the older task fact) is refused.
    with stores[HELPER].begin() as session:
        late = FedHelp(
            task_ref=ref, community=HOME, title="Pump", member_id=second, hours=4.0, skills=["pump-mechanic"]
        )
        session.add(late)
        session.flush()
        late.offer_seq = fed_help._help_fact(session, HELPER, late, True, "", AT).seq
        late_id = late.id
    step(stores, AT + timedelta(minutes=2))
    answers = own_facts(stores[HOME], HOME, "answer")
    assert [(a["accept"], a["reason"]) for a in answers][1] == (False, "another neighbour has taken it")
    with stores[HELPER]() as session:
        assert session.get(FedHelp, late_id).state == "refused"  # type: ignore[union-attr]
        assert not session.scalars(select(HoursEntry).where(HoursEntry.member_id == second)).all()
    with stores[HOME]() as session:
        task = session.get(RepairTask, task_id)
        assert task is not None and task.helper_ref == fed_help.helper_ref(HELPER, offer_id)
    # The repair is confirmed by the data: the hours count as given, and arecibo can count them.
    with stores[HOME].begin() as session:
        task = session.get(RepairTask, task_id)
        assert task is not None
        lifecycle.apply(session, task, lifecycle.TaskAction.CONFIRM, reason="readings normal", at=AT)
    step(stores, AT + timedelta(hours=2))
    with stores[HELPER]() as session:
        assert session.get(FedHelp, offer_id).state == "done"  # type: ignore[union-attr]
    given = own_facts(stores[HELPER], HELPER, "hours")
    assert given[-1] == {"year": 2026, "given": {HOME: {"maintenance": 4.0}}, "planned": {}}
    with stores[HOME]() as session:
        assert fed_help.received_hours(session, HOME, 2026) == {"maintenance": 4.0}
        assert fed_help.received_hours(session, HOME, 2025) == {}
        assert fed_help.received_hours(session, "ponce", 2026) == {}
    _assert_no_person_in_any_fact(stores)


def test_an_offer_beyond_the_maintenance_offer_is_withdrawn_not_accepted(
    stores: dict[str, sessionmaker[Session]],
) -> None:
    task_id = open_task(stores[HOME], escalate=True)
    ref = f"{HOME}/{task_id}"
    step(stores, AT)
    near = member_id(stores[HELPER], "near")
    with stores[HELPER].begin() as session:
        offer_id = fed_help.offer_help(session, HELPER, near, ref, AT).id
        # Before the answer comes, the home planner gives the person 17 h of maintenance this year:
        # 17 + 4 > the 20 h of maintenance they offer.
        starts = AT - timedelta(days=30)
        hours.offer(
            session, near, WorkKind.REPAIR, 999, "maintenance", 17.0, starts, starts + timedelta(hours=17)
        )
    step(stores, AT + timedelta(minutes=1), rounds=4)
    with stores[HELPER]() as session:
        row = session.get(FedHelp, offer_id)
        assert row is not None and row.state == "withdrawn"
        assert not session.scalars(select(HoursEntry).where(HoursEntry.work == WorkKind.HELP)).all()
        alerts = session.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == member_alerts_topic(near))
        )
        assert [json.loads(m.payload)["event"] for m in alerts] == ["help_withdrawn"]
    withdrawals = [h for h in own_facts(stores[HELPER], HELPER, "help") if not h["offer"]]
    assert len(withdrawals) == 1 and "maintenance left" in withdrawals[0]["reason"]
    # arecibo gives the task back to its planner and to the neighbours: it is open again.
    with stores[HOME]() as session:
        task = session.get(RepairTask, task_id)
        assert task is not None and task.status == "escalated" and task.helper_ref is None
    assert [t["status"] for t in own_facts(stores[HOME], HOME, "task")] == ["open", "helped", "open"]
    # Offering again is refused at once, with the reason, and nothing is published.
    with stores[HELPER].begin() as session:
        before = len(log_store.facts_of_kind(session, "help"))
        with pytest.raises(InvalidInput, match="maintenance left this year"):
            fed_help.offer_help(session, HELPER, near, ref, AT + timedelta(minutes=2))
        assert len(log_store.facts_of_kind(session, "help")) == before
    _assert_no_person_in_any_fact(stores)


def test_hours_facts_are_sums_published_at_most_hourly(stores: dict[str, sessionmaker[Session]]) -> None:
    first, second = open_task(stores[HOME], escalate=True), open_task(stores[HOME], escalate=True)
    step(stores, AT)
    near, other = member_id(stores[HELPER], "near"), member_id(stores[HELPER], "second")
    with stores[HELPER].begin() as session:
        fed_help.offer_help(session, HELPER, near, f"{HOME}/{first}", AT)
        other_offer = fed_help.offer_help(session, HELPER, other, f"{HOME}/{second}", AT).id
    step(stores, AT + timedelta(minutes=1))
    sums = own_facts(stores[HELPER], HELPER, "hours")
    assert len(sums) == 1 and sums[0]["planned"] == {HOME: {"maintenance": 8.0}}
    with stores[HELPER].begin() as session:  # done within the hour: the new sums wait
        fed_help.withdraw_help(session, HELPER, other_offer, other, "", AT + timedelta(minutes=2))
        publish(session, HELPER, [HELPER], RULES, AT + timedelta(minutes=30))
    assert len(own_facts(stores[HELPER], HELPER, "hours")) == 1
    with stores[HELPER].begin() as session:
        publish(session, HELPER, [HELPER], RULES, AT + timedelta(minutes=62))
        publish(session, HELPER, [HELPER], RULES, AT + timedelta(minutes=200))  # unchanged: not again
    sums = own_facts(stores[HELPER], HELPER, "hours")
    assert len(sums) == 2 and sums[-1]["planned"] == {HOME: {"maintenance": 4.0}}
    exchange(stores)
    with stores[HOME]() as session:
        assert fed_help.received_hours(session, HOME, 2026) == {}
        assert fed_help.received_hours(session, HOME, 2026, planned=True) == {"maintenance": 4.0}
    _assert_no_person_in_any_fact(stores)


def _assert_no_person_in_any_fact(stores: dict[str, sessionmaker[Session]]) -> None:
    """No fact body names a member or carries a member id: helpers are opaque refs of offers."""
    for sessions in stores.values():
        with sessions() as session:
            names = set(session.scalars(select(Member.name)))
            for row in session.scalars(select(FedFact)):
                text = json.dumps(row.body, ensure_ascii=False)
                assert not any(name in text for name in names), row.body
                assert not {"member", "member_id", "name", "who"} & set(row.body), row.body
                if "helper" in row.body:
                    assert fed_help._split(row.body["helper"], "h") is not None
                if row.kind == "hours":
                    assert set(row.body) == {"year", "given", "planned"}
                    for table in (row.body["given"], row.body["planned"]):
                        assert all(isinstance(h, float) for by in table.values() for h in by.values())


def test_the_cli_lists_and_offers(stores: dict[str, sessionmaker[Session]], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gateway.process.cli import cli

    task = open_task(stores[HOME], escalate=True)
    step(stores, AT)
    db = f"sqlite:///{tmp_path / f'{HELPER}.db'}"
    near, far = member_id(stores[HELPER], "near"), member_id(stores[HELPER], "far")

    def run(*words: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["--db", db, "node", "help", *words, "--name", HELPER])
        return result.exit_code, result.output

    code, out = run("list", "--member", str(near))
    assert code == 0 and f"{HOME}/{task}" in out and "Pump failure at the well" in out
    assert run("list", "--member", str(far)) == (0, "no neighbour's task open to this member\n")
    code, out = run("offer", "--member", str(near), f"{HOME}/{task}")
    assert code == 0 and "offered 4 h" in out
    code, out = run("offer", "--member", str(near), f"{HOME}/{task}")
    assert code == 1 and "offered to help with this task already" in out
    code, out = run("offer", "--member", str(far), f"{HOME}/{task}")
    assert code == 1 and "no such neighbour task open to you" in out
    with stores[HELPER]() as session:
        assert session.scalars(select(FedHelp.member_id)).all() == [near]


def test_malformed_help_and_hours_facts_are_skipped_not_fatal(
    stores: dict[str, sessionmaker[Session]],
) -> None:
    task = open_task(stores[HOME], escalate=True)
    step(stores, AT)
    with stores[HELPER].begin() as session:
        bad_offer = {"ref": f"{HOME}/{task}", "helper": f"{HELPER}/h9", "offer": True, "skills": 5}
        log_store.append_fact(session, HELPER, "help", bad_offer, AT)
        log_store.append_fact(session, HELPER, "hours", {"year": 2026, "given": [1], "planned": "x"}, AT)
    exchange(stores)
    with stores[HOME].begin() as session:
        settle(session, HOME, [HOME], RULES, AT)
        assert own_facts(stores[HOME], HOME, "answer") == []
        assert fed_help.received_hours(session, HOME, 2026, planned=True) == {}
