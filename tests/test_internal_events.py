"""Processes learn of changes from the internal events, never by polling the store: the gateway's outbox
relay publishes what any process committed, an event wakes the planner's repair assignment at once, a task
nobody announced waits for the timer, and after a broker restart one catch-up run finds what was missed."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

import logistics.service
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract.client import make_client
from gateway.contract.events import InternalEvent, RouteChanged, TaskCreated, decode_event, encode_event
from gateway.contract.target import MqttTarget
from gateway.contract.topics import INTERNAL_EVENTS, QOS
from gateway.ingest.publisher import OutboxPublisher
from gateway.process.procutil import free_port
from gateway.store.db import make_session_factory
from gateway.store.models import Member, OutboxMessage, RepairTask, Site
from gateway.store.region import load_region
from logistics.service import run_loop
from tests.conftest import Broker, tiny_region_data
from tests.test_gateway_service import wait_until

pytestmark = pytest.mark.network
ROOT = Path(__file__).resolve().parents[1]
# What another process (the planner, the dashboard) does: commit a change's event in its own transaction.
OTHER_PROCESS = """
import sys
from datetime import UTC, datetime
from gateway.contract.events import RouteChanged
from gateway.store.db import make_engine, make_session_factory
from gateway.store.outbox import enqueue_event
with make_session_factory(make_engine(sys.argv[1])).begin() as session:
    enqueue_event(session, RouteChanged(route_id=42, status="declined", at=datetime.now(UTC)))
"""


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    with factory.begin() as session:
        load_region(session, tiny_region_data())
        # Ana both drives and repairs: with the tiny region's 4 h a week, the loop's first route would fill
        # her week and leave no room for the task these tests follow.
        session.execute(update(Member).values(hours_per_week=40))
    return factory


class Listener:
    """A raw client subscribed to the internal events, recording each payload."""

    def __init__(self, target: MqttTarget) -> None:
        self.payloads: list[bytes] = []
        self.subscribed = threading.Event()
        self.client = make_client(target, f"events-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda _c, _u, message: self.payloads.append(bytes(message.payload))
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect(target.host, target.port)
        self.client.subscribe(INTERNAL_EVENTS, qos=QOS)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.slow  # another process writes the row
def test_the_relay_publishes_what_another_process_committed(
    engine: Engine, database_url: str, broker: Broker
) -> None:
    listener = Listener(broker.target)
    relay = OutboxPublisher(
        broker.target, f"relay-{uuid.uuid4().hex[:8]}", make_session_factory(engine), 0.25
    )
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert relay.connected.wait(10)
        subprocess.run([sys.executable, "-c", OTHER_PROCESS, database_url], cwd=ROOT, check=True, timeout=60)
        committed = time.monotonic()
        wait_until(lambda: bool(listener.payloads), timeout=10)
        elapsed = time.monotonic() - committed
    finally:
        stop.set()
        thread.join(15)
        listener.close()
    event = decode_event(listener.payloads[0])
    assert isinstance(event, RouteChanged) and (event.route_id, event.status) == (42, "declined")
    assert elapsed < 2.0, elapsed  # the relay's poll is a quarter second; nobody woke it in-process
    with Session(engine) as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == INTERNAL_EVENTS)).one()
        assert row.published_at is not None and row.payload == listener.payloads[0]


class Recorded:
    """Records when the loop's assigner and planning runs start (wrapping the module's run functions)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.assigns: list[float] = []
        self.plans: list[float] = []
        self._wrap(monkeypatch, "assign_once", self.assigns)
        self._wrap(monkeypatch, "plan_once", self.plans)

    @staticmethod
    def _wrap(monkeypatch: pytest.MonkeyPatch, name: str, starts: list[float]) -> None:
        real = getattr(logistics.service, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            starts.append(time.monotonic())
            return real(*args, **kwargs)

        monkeypatch.setattr(logistics.service, name, recorded)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    return Recorded(monkeypatch)


class Loop:
    """The planner loop in a thread, an hour between its timed runs: whatever happens sooner was woken."""

    def __init__(self, sessions: sessionmaker[Session], target: MqttTarget) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run_loop,
            args=(sessions, 3600.0, 10.0, self.stop),
            kwargs={"target": target, "client_id": f"planner-{uuid.uuid4().hex[:8]}"},
            daemon=True,
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def loop_factory() -> Iterator[Any]:
    loops: list[Loop] = []

    def start(sessions: sessionmaker[Session], target: MqttTarget) -> Loop:
        loops.append(Loop(sessions, target))
        return loops[-1]

    yield start
    for loop in loops:
        loop.close()


def add_task(sessions: sessionmaker[Session]) -> int:
    """A new open pump task committed with no event (as if its event were lost): only a poll could see it."""
    with sessions.begin() as session:
        site = session.scalars(select(Site).where(Site.slug == "pump-1")).one()
        task = RepairTask(site_id=site.id, title="Pump 1 dry", urgency=50, required_skills=["pump-mechanic"])
        session.add(task)
        session.flush()
        return task.id


def status(sessions: sessionmaker[Session], task_id: int) -> str:
    with sessions() as session:
        return session.get_one(RepairTask, task_id).status


def publish(target: MqttTarget, event: InternalEvent) -> float:
    """Publish one event as the relay would; returns when it was sent (monotonic)."""
    client = make_client(target, f"relay-{uuid.uuid4().hex[:8]}")
    client.connect(target.host, target.port)
    client.loop_start()
    try:
        sent = time.monotonic()
        client.publish(INTERNAL_EVENTS, encode_event(event), qos=QOS).wait_for_publish(10)
        return sent
    finally:
        client.disconnect()
        client.loop_stop()


def test_an_event_wakes_the_assigner_at_once_and_nothing_polls_the_store(
    sessions: sessionmaker[Session], broker: Broker, recorded: Recorded, loop_factory: Any
) -> None:
    loop_factory(sessions, broker.target)
    wait_until(lambda: len(recorded.assigns) >= 1, timeout=30)  # the start's run, once subscribed
    task = add_task(sessions)
    time.sleep(1.5)  # six of the old 0.25 s polls
    assert len(recorded.assigns) == 1 and status(sessions, task) == "open"
    sent = publish(broker.target, TaskCreated(task_id=task, fault_id=1, at=datetime.now(UTC)))
    wait_until(lambda: len(recorded.assigns) == 2, timeout=10)
    woke = recorded.assigns[1] - sent
    assert woke < 0.5, f"the assigner woke {woke:.3f} s after the event"
    wait_until(lambda: status(sessions, task) == "assigned", timeout=20)
    with sessions() as session:  # the assignment's own event, for the dashboard and other nodes
        payloads = session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.topic == INTERNAL_EVENTS)
        )
        assert {"type": "task_changed", "task_id": task, "status": "assigned"} in [
            {k: json.loads(p)[k] for k in ("type", "task_id", "status")} for p in payloads
        ]


@pytest.mark.slow  # its own broker, stopped and started again
def test_after_a_broker_restart_one_catch_up_run_finds_what_was_missed(
    sessions: sessionmaker[Session], tmp_path: Path, recorded: Recorded, loop_factory: Any
) -> None:
    account = BrokerAccount("planner-test", secrets.token_urlsafe(12))
    own = EmbeddedBroker(tmp_path / "broker", [account], port=free_port())
    own.start()
    try:
        target = MqttTarget.from_url(own.url(account), own.protocol)
        loop_factory(sessions, target)
        wait_until(lambda: len(recorded.assigns) >= 1 and len(recorded.plans) >= 1, timeout=30)
        own.stop()
        task = add_task(sessions)  # while the broker is away: its event could not have arrived
        time.sleep(1.0)
        assert status(sessions, task) == "open"
        restarted = time.monotonic()
        own.start()
        wait_until(lambda: status(sessions, task) == "assigned", timeout=60)  # paho retries at 1, 2, 4 s...
        wait_until(lambda: any(t >= restarted for t in recorded.plans), timeout=60)  # planning caught up too
        assert len([t for t in recorded.assigns if t >= restarted]) == 1  # one catch-up, not a poll
    finally:
        own.stop()
