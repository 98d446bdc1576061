"""Link-aware silence, fed through ingestion with no broker: while a community bridge's link is down its
devices open no silent fault and are shown "link down"; when it returns, silence counts from the return."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dashboard.read import mapdata, queries
from dashboard.read.links import LINK_DOWN
from gateway.contract.topics import bridge_state_community, bridge_state_topic
from gateway.ingest.messages import Ingestor, RawMessage
from gateway.store.db import make_session_factory
from gateway.store.models import BridgeLink, DeadLetter, Device, Fault
from tests.test_incidents import OK, Pump

LINK = bridge_state_topic("utuado")
PUMP = "utuado-pump-1-pump"


def _link(engine: Engine, ingestor: Ingestor, payload: bytes, at: object, topic: str = LINK) -> int:
    with make_session_factory(engine).begin() as session:
        return ingestor.process(session, [RawMessage(topic, payload, at)]).state_changes  # type: ignore[arg-type]


def _sweep(engine: Engine, ingestor: Ingestor, at: object) -> int:
    with make_session_factory(engine).begin() as session:
        return ingestor.health.sweep(session, at)  # type: ignore[arg-type]


def _faults(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(Fault.kind)))


def test_the_state_topic_lies_in_the_communitys_namespace_outside_the_upstream_filter() -> None:
    assert LINK == "rhizome/v1/utuado/bridge/state"
    assert bridge_state_community(LINK) == "utuado"
    assert bridge_state_community("rhizome/v1/utuado/pump-1/x/state") is None
    assert bridge_state_community("rhizome/v1/Bad/bridge/state") is None


def test_no_silent_fault_behind_a_down_link_and_the_clock_restarts_when_it_returns(
    ingest_store: tuple[Engine, Ingestor],
) -> None:
    engine, ingestor = ingest_store
    pump = Pump(engine, ingestor)
    pump.run(30, OK)
    last = pump.clock
    assert _link(engine, ingestor, b"1", last) == 1
    assert _link(engine, ingestor, b"1", last + timedelta(seconds=5)) == 0  # a retained replay: no change
    assert _link(engine, ingestor, b"0", last + timedelta(seconds=10)) == 1  # the bridge's will
    assert _sweep(engine, ingestor, last + timedelta(seconds=600)) == 0  # ten silent minutes behind it
    assert _faults(engine) == []
    with Session(engine) as session:
        assert session.scalars(select(Device.state).where(Device.slug == PUMP)).one() == "online"
        shown = {d.slug: d.state for d in queries.device_rows(session, community="utuado")}
        assert shown[PUMP] == LINK_DOWN
        assert [d.slug for d in queries.device_rows(session, state=LINK_DOWN)] == sorted(shown)
        assert all(d.state != LINK_DOWN for d in queries.device_rows(session, community="jayuya"))
        states = mapdata.SITE_STATES
        points = mapdata.site_points(session)
        assert states.index(LINK_DOWN) in points[2::4]

    back = last + timedelta(seconds=600)
    assert _link(engine, ingestor, b"1", back) == 1
    assert _sweep(engine, ingestor, back + timedelta(seconds=89)) == 0  # 1.5 x 60 s from the return: not yet
    assert _faults(engine) == []
    assert _sweep(engine, ingestor, back + timedelta(seconds=91)) == 1  # really silent after the return
    assert _faults(engine) == ["pump_silent"]


def test_without_a_link_row_silence_is_judged_as_before(ingest_store: tuple[Engine, Ingestor]) -> None:
    engine, ingestor = ingest_store
    pump = Pump(engine, ingestor)
    pump.run(30, OK)
    assert _sweep(engine, ingestor, pump.clock + timedelta(seconds=91)) == 1
    assert _faults(engine) == ["pump_silent"]


def test_a_bad_link_state_or_unknown_community_is_dead_lettered(
    ingest_store: tuple[Engine, Ingestor],
) -> None:
    engine, ingestor = ingest_store
    pump = Pump(engine, ingestor)
    _link(engine, ingestor, b"up", pump.clock)
    _link(engine, ingestor, b"1", pump.clock, topic=bridge_state_topic("atlantis"))
    with Session(engine) as session:
        reasons = sorted(session.scalars(select(DeadLetter.reason)))
        assert reasons == ["unknown_community", "value_out_of_range"]
        assert session.scalars(select(BridgeLink)).all() == []
