"""The demo's world bridge, sign-ins and scenario: a pickup or drop-off the ledger records reaches the
simulated stock box (so its next report keeps it), a crew's "fixed" repairs the device, every role gets a
sign-in, and the scenario names real devices of the demo community."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from devices.control import parse_command
from devices.models import StockModel
from devices.scenario import scenario_of
from gateway.contract.target import MqttTarget
from gateway.process.demo_accounts import demo_community, demo_logins, sign_in_block
from gateway.process.demo_world import WorldBridge, demo_scenario
from gateway.store import stock
from gateway.store.db import make_session_factory
from gateway.store.models import Device, Fault, Good, Member, RepairTask, Site, Stock
from gateway.store.models.vocab import LedgerSource
from gateway.store.region import load_region, read_region, sample_region_path

AT = datetime(2026, 12, 3, 12, tzinfo=UTC)


class Published:
    """Stands in for the paho client: keeps what was published."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: str, qos: int = 0) -> None:
        self.messages.append((topic, payload.encode()))


def bridge(engine: Engine) -> tuple[WorldBridge, Published]:
    world = WorldBridge(MqttTarget.from_url("mqtt://127.0.0.1:1"), make_session_factory(engine))
    client = Published()
    world.client = client  # type: ignore[assignment]
    return world, client


def hub_stock(session: Session) -> tuple[Device, Stock, str]:
    """The stock box of a storage hub and one of the goods it holds."""
    device = session.scalars(select(Device).where(Device.kind == "stock").order_by(Device.slug)).first()
    assert device is not None
    row = session.scalars(select(Stock).where(Stock.site_id == device.site_id, Stock.quantity > 50)).first()
    assert row is not None
    good = session.get(Good, row.good_id)
    assert good is not None
    return device, row, good.slug


def test_a_recorded_pickup_reaches_the_stock_box_and_its_next_report_keeps_it(
    ingest_store: tuple[Engine, Any],
) -> None:
    engine, _ = ingest_store
    sessions = make_session_factory(engine)
    with sessions() as session:
        device, row, good = hub_stock(session)
        slug, site_id, good_id, level = device.slug, row.site_id, row.good_id, row.quantity
    world, client = bridge(engine)
    with sessions.begin() as session:  # before the bridge looks: a stock report, which is not news to the box
        stock.report_level(session, site_id, good_id, level - 1, 1, 1, AT)
    assert world.tick() == 0
    with sessions.begin() as session:  # a driver loads 40 and brings 5 back: one message, the sum
        for delta in (-40.0, 5.0):
            row = session.get(Stock, (site_id, good_id))
            stock.record(
                session, row, site_id, good_id, row.quantity + delta, delta,
                source=LedgerSource.DELIVERY, reason="pickup", at=AT,
            )  # fmt: skip
    assert world.tick() == 1
    assert world.tick() == 0  # each move is told once
    topic, payload = client.messages[0]
    command = parse_command(topic, payload)
    assert (command.device, command.action, command.goods) == (slug, "receive", {good: -35.0})

    # The simulated box adopts it: its report is its own level minus the 35 taken, not the level before.
    model = StockModel(random.Random(1), None, {good: level}, "storage")
    untouched = StockModel(random.Random(1), None, {good: level}, "storage")
    assert model.receive(good, command.goods[good])
    assert model.step(AT, 60)[good] == untouched.step(AT, 60)[good] - 35


def test_a_task_marked_fixed_repairs_its_device_once(ingest_store: tuple[Engine, Any]) -> None:
    engine, _ = ingest_store
    sessions = make_session_factory(engine)
    world, client = bridge(engine)
    with sessions.begin() as session:
        pump = session.scalars(select(Device).where(Device.kind == "pump")).first()
        assert pump is not None
        fault = Fault(
            device_id=pump.id,
            site_id=pump.site_id,
            kind="pump_no_flow",
            severity="high",
            first_abnormal_at=AT,
        )
        session.add(fault)
        session.flush()
        task = RepairTask(fault_id=fault.id, site_id=pump.site_id, title="Pump", status="in_progress")
        session.add(task)
        slug = pump.slug
    assert world.tick() == 0  # not fixed yet
    with sessions.begin() as session:
        session.scalars(select(RepairTask)).one().status = "fixed_pending"
    assert world.tick() == 1
    assert world.tick() == 0
    assert parse_command(*client.messages[0]).device == slug
    assert json.loads(client.messages[0][1]) == {"action": "repair"}


def test_the_demo_signs_in_every_role_and_its_scenario_fails_real_devices(sqlite_engine: Engine) -> None:
    with make_session_factory(sqlite_engine).begin() as session:
        load_region(session, read_region(sample_region_path()))
        community = demo_community(session)
        logins = demo_logins(session, community)
        scenario = demo_scenario(session, community.id, 30.0)
        members = {login.role: session.get(Member, login.member_id) for login in logins if login.member_id}
        crew_skills = {skill.skill for skill in members["crew"].skills}  # type: ignore[union-attr]
        devices = {
            d.slug: d.kind
            for d in session.scalars(
                select(Device).join(Site, Site.id == Device.site_id).where(Site.community_id == community.id)
            )
        }
    assert [login.role for login in logins] == ["coordinator", "crew", "driver", "viewer"]
    assert members["crew"].is_crew and members["driver"].is_driver  # type: ignore[union-attr]
    assert {"pump-mechanic", "refrigeration"} <= crew_skills  # can take either demo fault's task
    assert {m.community_id for m in members.values() if m} == {community.id}
    assert len({login.password for login in logins}) == 4 and all(len(x.password) >= 10 for x in logins)
    block = sign_in_block("http://127.0.0.1:8000/", logins)
    assert block.startswith("Sign in at http://127.0.0.1:8000/login as:")
    for login in logins:
        assert re.search(rf"^ +{login.username} +/ {re.escape(login.password)} ", block, re.MULTILINE)
    assert f"({members['crew'].name}, {community.name})" in block  # type: ignore[union-attr]

    parsed = scenario_of(scenario)
    assert [(devices[e.device], e.name, e.at_s) for e in parsed.events] == [
        ("pump", "pump_failure", 30.0),
        ("cold_room", "cold_room_failure", 30.0),
    ]
