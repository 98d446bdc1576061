"""Broker access control against a real Mosquitto started with the files `rhizome devices provision` writes:
each device publishes only under its own topic, a member's app reads only its own topics, wrong, unknown,
revoked and anonymous clients are refused, rotation and revocation apply on SIGHUP without a restart, and
devices and the gateway connect over TLS with the test's own CA (a client without it is refused)."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from devices.client import DeviceClient
from gateway.broker.accounts import Issued, provision, revoke
from gateway.broker.files import reload_broker, write_broker_files
from gateway.contract.events import TaskCreated, encode_event
from gateway.contract.payloads import Telemetry, encode
from gateway.contract.target import MqttTarget
from gateway.contract.topics import (
    INTERNAL_EVENTS,
    UPSTREAM_FILTER,
    Topic,
    command_topic,
    community_alerts_topic,
    member_alerts_topic,
    member_routes_topic,
)
from gateway.ingest.service import GatewayService
from gateway.process.cli import main
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import DeadLetter, Member, Reading
from gateway.store.region import load_region
from tests.conftest import require_mosquitto, tiny_region_data
from tests.secure_broker import HOST, Probe, SecureMosquitto, TlsFiles, make_tls

pytestmark = pytest.mark.network
PUMP = ("utuado", "pump-1", "utuado-pump-1-pump")
JAYUYA = ("jayuya", "hub", "jayuya-hub-stock")
SPARE = "utuado-hub-stock"  # left unprovisioned for the CLI test


@dataclass
class Secured:
    broker: SecureMosquitto
    engine: Engine
    broker_dir: Path
    passwords: dict[str, str]
    ana: int
    probes: list[Probe]

    def probe(self, username: str | None, password: str | None = None, **kwargs: object) -> Probe:
        port = self.broker.tls_port if kwargs.get("tls") else self.broker.port
        assert port is not None
        secret = password if password is not None else self.passwords.get(username or "")
        probe = Probe(port, username, secret, f"probe-{len(self.probes)}", **kwargs)  # type: ignore[arg-type]
        self.probes.append(probe)
        return probe

    def change(self, edit: Callable[[Session], list[Issued]]) -> list[Issued]:
        """Edit accounts in the store, regenerate the files, SIGHUP the broker (as the CLI does)."""
        with make_session_factory(self.engine).begin() as session:
            issued = edit(session)
            write_broker_files(session, self.broker_dir)
        reload_broker(self.broker.pid_file)
        return issued


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def secured(engine: Engine, tmp_path: Path, tls: TlsFiles) -> Iterator[Secured]:
    require_mosquitto()
    broker_dir = tmp_path / "broker-files"
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data())
        ana = session.scalars(select(Member.id).where(Member.name == "Ana")).one()
        issued = [provision(session, "device", PUMP[2]), provision(session, "device", JAYUYA[2])]
        issued += [provision(session, "gateway", "main"), provision(session, "member", ana)]
        issued += [provision(session, "gateway", "planner")]
        write_broker_files(session, broker_dir)
    passwords = {i.username: i.password for i in issued if i is not None}
    broker = SecureMosquitto(tmp_path / "mosquitto", broker_dir, tls)
    broker.start()
    secured = Secured(broker, engine, broker_dir, passwords, ana, [])
    try:
        yield secured
    finally:
        for probe in secured.probes:
            probe.close()
        broker.stop()


def topic(device: tuple[str, str, str], kind: str = "telemetry") -> str:
    return str(Topic(*device, kind))


def reading(seq: int = 1, **extra: object) -> bytes:
    body = json.loads(encode(Telemetry(seq, datetime.now(UTC), {"flow_lpm": 12.0})))
    return json.dumps({**body, **extra}).encode()


def test_a_device_publishes_only_its_own_topics_and_reads_only_its_commands(secured: Secured) -> None:
    gateway = secured.probe("gateway.main")
    pump, jayuya = secured.probe(PUMP[2]), secured.probe(JAYUYA[2])
    assert gateway.connected() and pump.connected() and jayuya.connected()
    gateway.subscribe(UPSTREAM_FILTER)
    jayuya.subscribe("rhizome/v1/#")  # asks for everything: the broker delivers only what it may read
    assert pump.publish(topic(PUMP), reading(1)) == "accepted"
    assert pump.publish(topic(JAYUYA), reading(1)) == "Not authorized"  # another device's topic
    assert pump.publish(topic(JAYUYA, "state"), b'{"v":1,"state":"offline","session":9}') == "Not authorized"
    assert pump.publish(command_topic(*PUMP), b"{}") == "Not authorized"  # commands come from the gateway
    assert gateway.publish(command_topic(*PUMP), b'{"to":"pump"}') == "accepted"
    assert gateway.publish(command_topic(*JAYUYA), b'{"to":"jayuya"}') == "accepted"
    assert pump.publish(topic(PUMP), reading(2)) == "accepted"  # after the forgery: arrives after it would
    assert gateway.wait(lambda: len(gateway.messages) >= 4)
    assert jayuya.wait(lambda: len(jayuya.messages) >= 1)
    time.sleep(0.3)
    upstream = [t for t, _ in gateway.messages if not t.endswith("/command")]  # its filter matches commands
    assert upstream == [topic(PUMP), topic(PUMP)]  # the forgery never reached it
    assert jayuya.messages == [(command_topic(*JAYUYA), b'{"to":"jayuya"}')]  # not the pump's readings


def test_a_member_app_reads_only_its_own_alerts_routes_and_community(secured: Secured) -> None:
    gateway, app = secured.probe("gateway.main"), secured.probe(f"member.{secured.ana}")
    assert gateway.connected() and app.connected()
    app.subscribe("rhizome/v1/#")
    others = [member_alerts_topic(secured.ana + 1), member_routes_topic(secured.ana + 1)]
    others += [community_alerts_topic("jayuya"), command_topic(*PUMP)]
    own = [
        member_alerts_topic(secured.ana),
        member_routes_topic(secured.ana),
        community_alerts_topic("utuado"),
    ]
    for name in others + own:  # the app's own topics last: once they arrived, the others would have too
        assert gateway.publish(name, name.encode()) == "accepted"
    assert app.wait(lambda: len(app.messages) >= len(own))
    time.sleep(0.3)
    assert [t for t, _ in app.messages] == own
    assert app.publish(member_alerts_topic(secured.ana), b"{}") == "Not authorized"


def test_only_the_gateway_publishes_internal_events_and_only_system_accounts_read_them(
    secured: Secured,
) -> None:
    # The planner and the dashboard connect with a system account, as the gateway does (their own in
    # production, `gateway.<name>`: the same kind, so the same topics). One connection per account: the
    # broker makes the username the client id, so the forgers go first, on the accounts the readers use next.
    forger_app, forger_pump = secured.probe(f"member.{secured.ana}"), secured.probe(PUMP[2])
    assert forger_app.connected() and forger_pump.connected()
    assert forger_pump.publish(INTERNAL_EVENTS, b"{}") == "Not authorized"
    assert forger_app.publish(INTERNAL_EVENTS, b"{}") == "Not authorized"
    forger_app.close()
    forger_pump.close()
    planner, gateway = secured.probe("gateway.planner"), secured.probe("gateway.main")
    app, pump = secured.probe(f"member.{secured.ana}"), secured.probe(PUMP[2])
    assert all(p.connected() for p in (planner, gateway, app, pump))
    event = encode_event(TaskCreated(task_id=7, fault_id=3, at=datetime.now(UTC)))
    for probe in (planner, app, pump):
        probe.subscribe("rhizome/v1/#")  # the broker delivers only what each may read
    assert gateway.publish(INTERNAL_EVENTS, event) == "accepted"  # the outbox relay's account
    # Each probe's own topic last: once it arrived, the event would have too.
    assert gateway.publish(member_alerts_topic(secured.ana), b"own") == "accepted"
    assert gateway.publish(command_topic(*PUMP), b"{}") == "accepted"
    assert planner.wait(lambda: any(t == INTERNAL_EVENTS for t, _ in planner.messages))
    assert app.wait(lambda: len(app.messages) >= 1) and pump.wait(lambda: len(pump.messages) >= 1)
    time.sleep(0.3)
    assert [m for m in planner.messages if m[0] == INTERNAL_EVENTS] == [(INTERNAL_EVENTS, event)]
    assert [t for t, _ in app.messages] == [member_alerts_topic(secured.ana)]
    assert [t for t, _ in pump.messages] == [command_topic(*PUMP)]


def test_bad_credentials_are_refused(secured: Secured) -> None:
    cases = {
        "wrong password": secured.probe(PUMP[2], "wrong password"),
        "unknown user": secured.probe("nobody", "whatever"),
        "anonymous": secured.probe(None, None),
        "device never provisioned": secured.probe(SPARE, "a guess"),
    }
    for case, probe in cases.items():
        assert probe.refused(), case
        assert not probe.client.is_connected(), case


def test_rotation_and_revocation_apply_on_reload_without_a_restart(secured: Secured) -> None:
    pump, jayuya, bystander = secured.probe(PUMP[2]), secured.probe(JAYUYA[2]), secured.probe("gateway.main")
    assert pump.connected() and jayuya.connected() and bystander.connected()
    pid = secured.broker.process.pid  # type: ignore[union-attr]

    def edit(session: Session) -> list[Issued]:
        assert revoke(session, "device", PUMP[2])
        rotated = provision(session, "device", JAYUYA[2], rotate=True)
        assert rotated is not None
        return [rotated]

    [rotated] = secured.change(edit)
    # Mosquitto 2.0 re-checks connected clients on SIGHUP: the revoked and the rotated one are cut off...
    assert pump.wait(lambda: pump.disconnects) and jayuya.wait(lambda: jayuya.disconnects)
    # ...and their automatic reconnects are refused.
    assert pump.refused() and jayuya.refused()
    assert secured.probe(PUMP[2]).refused()
    assert secured.probe(JAYUYA[2]).refused()  # the old password
    fresh = secured.probe(JAYUYA[2], rotated.password)
    assert fresh.connected() and fresh.publish(topic(JAYUYA), reading()) == "accepted"
    # Nobody else noticed: the broker never restarted and other clients stayed connected.
    assert secured.broker.process.poll() is None and secured.broker.process.pid == pid  # type: ignore[union-attr]
    assert bystander.client.is_connected() and bystander.disconnects == []


def test_cli_provisions_rotates_and_reloads(
    secured: Secured, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--db", database_url, "--data-dir", str(tmp_path / "var"), "--log-level", "WARNING", "devices"]
    where = ["--broker-dir", str(secured.broker_dir), "--reload-pid", str(secured.broker.pid_file)]
    secrets = tmp_path / "secrets"
    assert main([*common, "provision", "--all", "--secrets-dir", str(secrets), *where]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "wrote 1 password files" in out.err and "reloaded" in out.err
    secret = secrets / f"{SPARE}.password"
    assert secret.stat().st_mode & 0o777 == 0o600 and sorted(p.name for p in secrets.iterdir()) == [
        secret.name
    ]
    first = secret.read_text().strip()
    spare = ("utuado", "hub", SPARE)
    probe = secured.probe(SPARE, first)
    assert probe.connected() and probe.publish(topic(spare, "stock"), b"{}") == "accepted"
    assert probe.publish(topic(PUMP), reading()) == "Not authorized"

    assert main([*common, "rotate", SPARE, *where]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert [name for name, _ in lines] == [SPARE]
    second = lines[0][1]
    assert second != first
    assert probe.wait(lambda: probe.disconnects) and probe.refused()
    assert secured.probe(SPARE, second).connected()


class Running:
    """A gateway service in a thread."""

    def __init__(self, service: GatewayService) -> None:
        self.service, self.stop = service, threading.Event()
        self.thread = threading.Thread(target=service.run, args=(self.stop,), daemon=True)
        self.thread.start()
        assert service.connected.wait(20), "gateway did not connect"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive()


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_over_tls_the_gateway_stores_readings_and_dead_letters_a_payload_naming_another_device(
    secured: Secured, tls: TlsFiles, tmp_path: Path
) -> None:
    port = secured.broker.tls_port
    url = f"mqtts://gateway.main:{secured.passwords['gateway.main']}@{HOST}:{port}"
    settings = Settings(mqtt_url=url, mqtt_ca_file=str(tls.ca), gateway_client_id="gw-tls")
    running = Running(GatewayService(settings, secured.engine, session_expiry_s=60))
    try:
        device_url = f"mqtts://{PUMP[2]}:{secured.passwords[PUMP[2]]}@{HOST}:{port}"
        with DeviceClient(
            MqttTarget.from_url(device_url, "5", str(tls.ca)), *PUMP, state_dir=tmp_path
        ) as dev:
            assert dev.connected
            assert dev.send_telemetry({"flow_lpm": 20.0, "running": True})
            assert dev.flush(15)
        # Its own topic, so the broker lets it through; the payload claims another device.
        liar = secured.probe(PUMP[2], tls=True, ca=tls.ca)
        assert liar.connected()
        assert liar.publish(topic(PUMP), reading(99, device=JAYUYA[2])) == "accepted"
        deadline = time.monotonic() + 30
        while count(secured.engine, DeadLetter) < 1 or count(secured.engine, Reading) < 1:
            assert time.monotonic() < deadline, "timed out waiting for the gateway"
            time.sleep(0.05)
    finally:
        running.close()
    with Session(secured.engine) as session:
        [letter] = session.scalars(select(DeadLetter)).all()
        assert (letter.topic, letter.reason) == (topic(PUMP), "device_mismatch")
        assert session.scalars(select(Reading.seq)).all() != [99]


# paho 2.x leaves the socket of a failed TLS handshake to the garbage collector (Client._ssl_wrap_socket).
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
def test_over_tls_a_client_without_the_ca_is_refused(secured: Secured, tls: TlsFiles, tmp_path: Path) -> None:
    port = secured.broker.tls_port
    url = f"mqtts://{PUMP[2]}:{secured.passwords[PUMP[2]]}@{HOST}:{port}"
    client = DeviceClient(MqttTarget.from_url(url, "5"), *PUMP, state_dir=tmp_path)  # system CAs only
    try:
        client.start(wait=None)
        link = client.channel.link
        deadline = time.monotonic() + 15
        while link.last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "certificate verify failed" in (link.last_error or "") and not client.connected
    finally:
        client.stop(1)
    probe = secured.probe(PUMP[2], tls=True)
    assert probe.wait(lambda: probe.connect_failures > 0) and probe.connack == []
    with_ca = secured.probe(PUMP[2], tls=True, ca=tls.ca)
    assert with_ca.connected()
    probe.close()
    gc.collect()  # the leaked sockets are closed here, under this test's warning filter
