"""From readings to repair work, fed through ingestion with no broker: a pump failure opens one critical
fault, one repair task and its alerts; normal readings close the task; a silent pump goes stale."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.contract.payloads import StateMessage, Telemetry, encode
from gateway.contract.topics import INTERNAL_EVENTS, member_alerts_topic
from gateway.ingest.messages import Ingestor, RawMessage
from gateway.store.db import make_session_factory
from gateway.store.models import Device, Fault, Member, OutboxMessage, RepairTask, TaskEvent

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
TOPIC = "rhizome/v1/utuado/pump-1/utuado-pump-1-pump/telemetry"
OK = {
    "running": True,
    "flow_lpm": 40.0,
    "pressure_kpa": 300.0,
    "tank_level_pct": 60.0,
    "motor_current_a": 8.0,
}
BROKEN = {**OK, "flow_lpm": 0.0, "pressure_kpa": 15.0}


class Pump:
    """Publishes readings of the tiny region's pump, one every 10 s of device time."""

    def __init__(self, engine: Engine, ingestor: Ingestor) -> None:
        self.engine, self.ingestor, self.seq, self.clock = engine, ingestor, 0, T0

    def run(self, seconds: int, metrics: dict[str, float | bool]) -> None:
        batch = []
        for _ in range(seconds // 10):
            self.seq += 1
            self.clock += timedelta(seconds=10)
            batch.append(RawMessage(TOPIC, encode(Telemetry(self.seq, self.clock, metrics)), self.clock))
        with make_session_factory(self.engine).begin() as session:
            self.ingestor.process(session, batch)
            self.ingestor.flush_activity(session)


def test_pump_failure_opens_one_fault_one_task_and_alerts_then_the_data_closes_it(
    ingest_store: tuple[Engine, Ingestor],
) -> None:
    engine, ingestor = ingest_store
    pump = Pump(engine, ingestor)
    pump.run(120, OK)
    pump.run(600, BROKEN)  # ten minutes of a broken pump: still ONE incident
    with Session(engine) as session:
        fault = session.scalars(select(Fault)).one()
        task = session.scalars(select(RepairTask)).one()
        device = session.scalars(select(Device).where(Device.slug == "utuado-pump-1-pump")).one()
        assert (fault.kind, fault.severity, fault.status) == ("pump_failure", "critical", "open")
        assert fault.first_abnormal_at == T0 + timedelta(seconds=130)
        assert (task.status, task.fault_id, task.required_skills) == ("open", fault.id, ["pump-mechanic"])
        assert task.urgency == 100 + 33  # critical, and the pump serves 2,000 people
        assert device.state == "fault"
        alerts = {m.topic: json.loads(m.payload) for m in session.scalars(select(OutboxMessage))}
        assert alerts["rhizome/v1/alerts/utuado"]["type"] == "fault"
        assert alerts["rhizome/v1/alerts/utuado"]["task_id"] == task.id
        created = {k: v for k, v in alerts[INTERNAL_EVENTS].items() if k != "ts"}
        assert created == {"v": 1, "type": "task_created", "task_id": task.id, "fault_id": fault.id}

    pump.run(200, OK)  # not yet five minutes of normal flow: the task stays open
    with Session(engine) as session:
        assert session.scalars(select(RepairTask.status)).one() == "open"
    pump.run(200, OK)
    with Session(engine) as session:
        task = session.scalars(select(RepairTask)).one()
        assert task.status == "closed"
        events = session.scalars(
            select(TaskEvent.event).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id)
        )
        assert list(events) == ["created", "confirmed", "closed"]
        assert session.scalars(select(Fault.status)).one() == "cleared"
        assert (
            session.scalars(select(Device.state).where(Device.slug == "utuado-pump-1-pump")).one() == "online"
        )


def test_alerts_about_a_fault_name_the_site_with_its_coordinates_and_a_link(
    ingest_store: tuple[Engine, Ingestor],
) -> None:
    """The incident: a crew phone got the site only as a slug or number, no name, coordinates or link."""
    engine, ingestor = ingest_store
    pump = Pump(engine, ingestor)
    pump.run(120, OK)
    pump.run(300, BROKEN)
    with make_session_factory(engine).begin() as session:
        task = session.scalars(select(RepairTask)).one()
        ana = session.scalars(select(Member).where(Member.name == "Ana")).one()
        task.status, task.assigned_member_id = "in_progress", ana.id
        task_id, ana_id = task.id, ana.id
    pump.run(400, OK)
    where = {"site_name": "Pump 1", "lat": 18.26, "lon": -66.71, "link": f"/crew#task-{task_id}"}
    with Session(engine) as session:
        sent = [(m.topic, json.loads(m.payload)) for m in session.scalars(select(OutboxMessage))]
    opened = [body for topic, body in sent if body.get("type") == "fault"]
    cleared = [body for topic, body in sent if topic == member_alerts_topic(ana_id)]
    assert len(opened) == 1 and opened[0].items() >= where.items() and opened[0]["site"] == "pump-1"
    assert len(cleared) == 1 and cleared[0]["type"] == "fault_cleared" and cleared[0].items() >= where.items()


def test_a_silent_pump_goes_stale_within_twice_its_interval_and_data_clears_it(
    ingest_store: tuple[Engine, Ingestor],
) -> None:
    engine, ingestor = ingest_store
    pump = Pump(engine, ingestor)
    pump.run(30, OK)
    last = pump.clock
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        assert ingestor.health.sweep(session, last + timedelta(seconds=89)) == 0  # interval 60 s: not yet
    with sessions.begin() as session:
        assert ingestor.health.sweep(session, last + timedelta(seconds=91)) == 1  # 1.5 x 60 s: stale
    with Session(engine) as session:
        assert (
            session.scalars(select(Device.state).where(Device.slug == "utuado-pump-1-pump")).one() == "stale"
        )
        fault = session.scalars(select(Fault)).one()
        assert (fault.kind, fault.severity) == ("pump_silent", "high")
        assert session.scalars(select(RepairTask.status)).one() == "open"
    pump.clock = last + timedelta(seconds=300)
    pump.run(10, OK)
    with Session(engine) as session:
        assert (
            session.scalars(select(Device.state).where(Device.slug == "utuado-pump-1-pump")).one() == "online"
        )
        assert session.scalars(select(RepairTask.status)).one() == "closed"


STATE_TOPIC = TOPIC.replace("/telemetry", "/state")


@pytest.mark.parametrize("restart", [False, True])
def test_a_pump_that_lost_power_is_offline_then_a_silent_fault_and_a_clean_stop_is_not(
    ingest_store: tuple[Engine, Ingestor], restart: bool
) -> None:
    """The broker's last will says `offline`; a pump that stays away as long as a silent one would is a
    repair task (it lost power or its link), while a clean stop is someone's decision and opens nothing."""
    engine, ingestor = ingest_store
    pump = Pump(engine, ingestor)
    sessions = make_session_factory(engine)

    def state(body: StateMessage, at: datetime) -> None:
        with sessions.begin() as session:
            ingestor.process(session, [RawMessage(STATE_TOPIC, encode(body), at)])

    def device_state() -> str:
        with Session(engine) as session:
            return session.scalars(select(Device.state).where(Device.slug == "utuado-pump-1-pump")).one()

    state(StateMessage("online", 1), T0)
    pump.run(30, OK)
    state(StateMessage("offline", 1, clean=True), pump.clock)
    with sessions.begin() as session:
        ingestor.health.sweep(session, pump.clock + timedelta(hours=1))
    with Session(engine) as session:
        assert session.scalars(select(Fault)).all() == [] and device_state() == "offline"

    state(StateMessage("online", 2), pump.clock + timedelta(minutes=61))
    pump.clock += timedelta(minutes=61)
    pump.run(30, OK)
    last = pump.clock
    state(StateMessage("offline", 2), last + timedelta(seconds=5))  # the will: no clean flag
    if restart:
        ingestor = Ingestor(engine)
        with sessions.begin() as session:
            ingestor.refresh(session)
        pump.ingestor = ingestor
    with sessions.begin() as session:
        ingestor.health.sweep(session, last + timedelta(seconds=89))  # interval 60 s: not yet
    with Session(engine) as session:
        assert session.scalars(select(Fault)).all() == []
    with sessions.begin() as session:
        ingestor.health.sweep(session, last + timedelta(seconds=91))
        ingestor.health.sweep(session, last + timedelta(seconds=200))  # still one fault
    with Session(engine) as session:
        fault = session.scalars(select(Fault)).one()
        assert (fault.kind, fault.status, fault.first_abnormal_at) == ("pump_silent", "open", last)
        assert fault.opened_at == last + timedelta(seconds=91)  # when the sweep judged it, not last seen
        assert session.scalars(select(RepairTask.status)).one() == "open"
        assert device_state() == "offline"  # what the broker said stays on the map
    state(StateMessage("online", 3), last + timedelta(minutes=30))
    pump.clock = last + timedelta(minutes=30)
    pump.run(10, OK)  # data from the repaired pump confirms it
    with Session(engine) as session:
        assert session.scalars(select(RepairTask.status)).one() == "closed"
        assert device_state() == "online"


def test_a_gateway_restart_keeps_the_open_incident(
    ingest_store: tuple[Engine, Ingestor], sqlite_engine: Engine
) -> None:
    engine, ingestor = ingest_store
    pump = Pump(engine, ingestor)
    pump.run(120, BROKEN)
    restarted = Ingestor(engine)
    with make_session_factory(engine).begin() as session:
        restarted.refresh(session)
    pump.ingestor = restarted
    pump.run(120, BROKEN)  # still broken after the restart: no second fault
    pump.run(400, OK)
    with Session(engine) as session:
        assert [f.status for f in session.scalars(select(Fault))] == ["cleared"]
        assert session.scalars(select(RepairTask.status)).one() == "closed"
