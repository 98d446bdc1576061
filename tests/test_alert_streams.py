"""The crew page's alert streams share one change notifier per dashboard process: without a broker it is fed
by one poll of the outbox for the whole process, with a broker by the internal events; a stream reads the
store only when the notifier moves, never on a timer of its own."""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, select

from dashboard.web.accounts import Account, MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig
from dashboard.web.notifier import ChangeNotifier, get_notifier
from dashboard.web.store import get_store
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract.client import make_client
from gateway.contract.events import TaskChanged, encode_event
from gateway.contract.topics import INTERNAL_EVENTS, QOS, member_alerts_topic
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import Member, OutboxMessage
from gateway.store.region import load_region
from tests.conftest import Broker, tiny_region_data
from tests.test_gateway_service import wait_until

PASSWORD = "a long enough secret"


def test_the_feed_runs_once_for_all_listeners_and_only_while_one_listens() -> None:
    running = threading.Event()

    def feed(notifier: ChangeNotifier, stop: threading.Event) -> None:
        running.set()
        stop.wait()
        running.clear()

    notifier = ChangeNotifier(feed)
    with notifier.listening() as first, notifier.listening() as second:
        assert running.wait(5) and notifier.feeds_started == 1 and notifier.listeners == 2
        assert first == second == notifier.count == 0
        woken: list[int] = []
        waiter = threading.Thread(target=lambda: woken.append(notifier.wait(0, 10.0)))
        waiter.start()
        time.sleep(0.1)
        notifier.notify()
        waiter.join(5)
        assert woken == [1]
        started = time.monotonic()
        assert notifier.wait(1, 0.2) == 1 and time.monotonic() - started >= 0.19  # no change: the timeout
    wait_until(lambda: not running.is_set(), timeout=5)  # nobody listens: the feed stopped
    with notifier.listening():
        assert running.wait(5) and notifier.feeds_started == 2


@pytest.fixture(scope="module")
def password_hash() -> str:
    return make_account("someone", PASSWORD, "viewer").password_hash


@pytest.fixture
def ana(engine: Engine) -> int:
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data())
        return session.scalars(select(Member.id).where(Member.name == "Ana")).one()


def dashboard(database_url: str, ana: int, password_hash: str, max_s: float, **settings: Any) -> Flask:
    accounts = MemoryAccountStore([Account("ana", password_hash, "crew", ana)])
    return create_app(
        Settings(database_url=database_url, **settings),
        DashboardConfig(sse_poll_s=0.05, sse_max_s=max_s),
        accounts,
        test_config={"TESTING": True},
    )


def signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    form = {"username": "ana", "password": PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/login", data=form).status_code == 302
    return client


class Stream:
    """One open /crew/events response, read in a thread as the server sends it."""

    def __init__(self, client: FlaskClient) -> None:
        self.response = client.get("/crew/events?after=0&tasks_after=1000000", buffered=False)
        assert self.response.status_code == 200
        self.text = ""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for chunk in self.response.response:
            self.text += chunk.decode() if isinstance(chunk, bytes) else chunk

    def alerts(self) -> list[str]:
        return re.findall(
            r'id: \d+\nevent: alert\ndata: \{"id": \d+, "at": "[^"]+", "text": "([^"]*)"[,}][^\n]*\n\n',
            self.text,
        )

    def join(self) -> None:
        self.thread.join(15)
        assert not self.thread.is_alive()


def add_alert(engine: Engine, member: int, text: str) -> None:
    """An alert committed by another process (another engine), as the planner writes one."""
    with make_session_factory(engine).begin() as session:
        payload = f'{{"text": "{text}"}}'.encode()
        session.add(OutboxMessage(topic=member_alerts_topic(member), payload=payload))


class Statements:
    """Counts the SQL statements an engine runs that contain a fragment."""

    def __init__(self, app: Flask) -> None:
        self.seen: list[str] = []
        event.listen(get_store(app).engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(statement)

    def count(self, fragment: str) -> int:
        return sum(fragment in s for s in self.seen)


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    made: list[Flask] = []
    yield made
    for app in made:
        get_store(app).engine.dispose()


def test_without_a_broker_two_streams_share_one_poll_and_read_only_on_a_change(
    engine: Engine, database_url: str, ana: int, password_hash: str, apps: list[Flask]
) -> None:
    app = dashboard(database_url, ana, password_hash, max_s=1.5)
    apps.append(app)
    statements = Statements(app)
    streams = [Stream(signed_in(app)) for _ in range(2)]
    notifier = get_notifier(app)
    wait_until(lambda: notifier.listeners == 2, timeout=10)
    add_alert(engine, ana, "Pump 1 dry")
    wait_until(lambda: all(s.alerts() == ["Pump 1 dry"] for s in streams), timeout=5)
    for stream in streams:
        stream.join()
    assert notifier.feeds_started == 1 and notifier.listeners == 0
    polls, reads = statements.count("max(outbox.id)"), statements.count("FROM repair_tasks")
    # One poll every 0.05 s for 1.5 s, for both streams; each stream read its member's tasks when it opened
    # and on each change (the poll's first read, the alert): a stream polling the store would read ~30 times.
    assert 5 <= polls <= 45, polls  # two polls would make ~60
    assert reads <= 2 * 4, reads
    wait_until(lambda: not any(t.name == "dashboard-notifier" for t in threading.enumerate()), timeout=5)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own: on the shared one, other tests' internal events (the suite's lanes run
    side by side) would wake the stream that this test shows stays quiet until its own event."""
    account = BrokerAccount("streams-test", secrets.token_urlsafe(12))
    with EmbeddedBroker(tmp_path / "broker", [account]) as embedded:
        yield Broker(embedded.url(account), embedded.protocol, embedded.kind)


@pytest.mark.network
def test_with_a_broker_an_internal_event_wakes_the_streams_and_nothing_polls(
    engine: Engine, database_url: str, ana: int, password_hash: str, own_broker: Broker, apps: list[Flask]
) -> None:
    broker = own_broker
    app = dashboard(
        database_url, ana, password_hash, max_s=4.0, mqtt_url=broker.url, mqtt_protocol=broker.protocol
    )
    apps.append(app)
    statements = Statements(app)
    stream = Stream(signed_in(app))
    notifier = get_notifier(app)
    wait_until(lambda: notifier.count >= 1, timeout=10)  # subscribed (a subscription counts as a change)
    add_alert(engine, ana, "Pump 1 dry")  # committed, but announced by no event yet
    time.sleep(0.6)
    assert stream.alerts() == []
    client = make_client(broker.target, f"relay-{uuid.uuid4().hex[:8]}")
    client.connect(broker.target.host, broker.target.port)
    client.loop_start()
    try:
        event_ = TaskChanged(task_id=1, status="assigned", member_id=ana, at=datetime.now(UTC))
        sent = time.monotonic()
        client.publish(INTERNAL_EVENTS, encode_event(event_), qos=QOS).wait_for_publish(10)
        wait_until(lambda: stream.alerts() == ["Pump 1 dry"], timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        client.disconnect()
        client.loop_stop()
    stream.join()
    assert elapsed < 1.0, elapsed
    # The feed disconnects once the last stream ended; its broker stops with the test, so wait for it.
    wait_until(lambda: not any(t.name == "dashboard-notifier" for t in threading.enumerate()), timeout=5)
    assert statements.count("max(outbox.id)") == 0  # the broker feeds it: no poll at all
