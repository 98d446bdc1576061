"""Bridge, service and node broker accounts: provisioning keeps them (and every other stored account), each
gets exactly its ACL, bad topic patterns are refused, `mosquitto_passwd` can still edit the generated password
file, and a real Mosquitto started with the generated files lets each account touch only its own topics (a
real community bridge included)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.broker.accounts import ProvisionError, provision, revoke, service_topics
from gateway.broker.bridge_cli import community_from_store
from gateway.broker.embedded import mosquitto_hash
from gateway.broker.files import (
    PASSWORD_FILE,
    accounts,
    render_acl_file,
    write_broker_files,
)
from gateway.contract.target import MqttTarget
from gateway.process.cli import main
from gateway.store.db import make_session_factory
from gateway.store.models import BrokerCredential, Community, Member
from gateway.store.region import load_region
from tests.conftest import require_mosquitto, tiny_region_data
from tests.secure_broker import HOST, Probe, SecureMosquitto
from tests.test_federation import CommunityBroker

PUMP = "utuado-pump-1-pump"
METRICS_READS = ["$SYS/broker/#", "rhizome/v1/internal/events"]


@pytest.fixture
def db(sqlite_engine: Engine) -> Iterator[tuple[Engine, list[str]]]:
    """The tiny region in a migrated SQLite file, and the CLI's --db/--data-dir arguments for it."""
    with make_session_factory(sqlite_engine).begin() as session:
        load_region(session, tiny_region_data())
    url = sqlite_engine.url.render_as_string(hide_password=False)
    yield sqlite_engine, ["--db", url, "--data-dir", str(Path(str(sqlite_engine.url.database)).parent)]


def password_lines(path: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in path.read_text().splitlines())


def acl_blocks(acl: str) -> dict[str, list[str]]:
    return {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n")[1:]}


def test_bridge_service_and_node_accounts_survive_every_later_provisioning(
    db: tuple[Engine, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, base = db
    broker = ["--broker-dir", str(tmp_path / "broker")]
    provision_ = [*base, "devices", "provision", *broker]
    assert main([*provision_, PUMP, "--gateway", "main"]) == 0
    assert main([*provision_, "--bridge", "utuado"]) == 0
    assert main([*provision_, "--service", "metrics", *(f"--read={t}" for t in METRICS_READS)]) == 0
    assert main([*provision_, "--node", "north", "--this-node", "south"]) == 0
    printed = [line.split() for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    issued = dict(printed)
    assert sorted(issued) == ["bridge.utuado", "gateway.main", "node.north", "service.metrics", PUMP]
    before = password_lines(tmp_path / "broker" / PASSWORD_FILE)
    assert sorted(before) == sorted(issued)

    assert main(provision_) == 0  # no account named: only rewrites the files
    assert main([*provision_, "--all", "--all-members"]) == 0  # the remaining devices and members
    after = password_lines(tmp_path / "broker" / PASSWORD_FILE)
    assert {name: after[name] for name in before} == before  # every earlier account kept, hash unchanged
    assert len(after) == len(before) + 3  # jayuya-hub-stock, utuado-hub-stock and Ana's app
    out = capsys.readouterr()
    assert "already provisioned" not in out.err and "dropped" not in out.err


def test_each_new_kind_gets_exactly_its_own_acl(session: Session) -> None:
    ana = session.scalars(select(Member.id).where(Member.name == "Ana")).one()
    provision(session, "bridge", "utuado")
    provision(session, "bridge", "jayuya")
    topics = service_topics(METRICS_READS, ["rhizome/v1/internal/events"])
    provision(session, "service", "metrics", topics=topics)
    provision(session, "node", "north", local_node="south")
    blocks = acl_blocks(render_acl_file(accounts(session)))
    assert blocks["user bridge.utuado"] == [
        "topic read rhizome/v1/utuado/+/+/command",
        "topic read rhizome/v1/alerts/utuado",
        f"topic read rhizome/v1/members/{ana}/alerts",  # Ana lives in Utuado: her phone may be there
        f"topic read rhizome/v1/members/{ana}/routes",
        "topic write rhizome/v1/utuado/+/+/telemetry",
        "topic write rhizome/v1/utuado/+/+/stock",
        "topic write rhizome/v1/utuado/+/+/state",
        "topic write rhizome/v1/utuado/bridge/state",  # its will: else the broker drops the bridge
    ]
    assert blocks["user bridge.jayuya"] == [
        "topic read rhizome/v1/jayuya/+/+/command",
        "topic read rhizome/v1/alerts/jayuya",
        "topic write rhizome/v1/jayuya/+/+/telemetry",
        "topic write rhizome/v1/jayuya/+/+/stock",
        "topic write rhizome/v1/jayuya/+/+/state",
        "topic write rhizome/v1/jayuya/bridge/state",
    ]
    assert blocks["user service.metrics"] == [
        "topic read $SYS/broker/#",
        "topic read rhizome/v1/internal/events",
        "topic write rhizome/v1/internal/events",
    ]
    assert blocks["user node.north"] == [
        "topic read rhizome/fed/v1/south/out/north/#",
        "topic write rhizome/fed/v1/south/in/north/#",
    ]
    assert revoke(session, "bridge", "jayuya") and revoke(session, "node", "north")
    left = acl_blocks(render_acl_file(accounts(session)))
    assert sorted(left) == ["user bridge.utuado", "user service.metrics"]


@pytest.fixture
def session(sqlite_engine: Engine) -> Iterator[Session]:
    with make_session_factory(sqlite_engine).begin() as session:
        load_region(session, tiny_region_data())
    with make_session_factory(sqlite_engine)() as session:
        yield session


@pytest.mark.parametrize(
    ("reads", "writes", "message"),
    [
        ([], [], "at least one"),
        (["#"], [], "must start with"),
        (["+/v1/#"], [], "must start with"),
        ([], ["$SYS/broker/x"], "must start with rhizome/"),
        (["rhizome/v1/#/x"], [], "# must be the last level"),
        (["rhizome/v1/a+"], [], "whole levels"),
        (["rhizome/v1/x\ntopic write #"], [], "printable ASCII"),  # no line smuggled into the ACL
        (["rhizome/v1/a b"], [], "no spaces"),
        (["rhizome/" + "x" * 200], [], "printable ASCII"),
        ([f"rhizome/v1/{i}" for i in range(33)], [], "at most 32"),
    ],
)
def test_bad_service_topic_patterns_are_refused(reads: list[str], writes: list[str], message: str) -> None:
    with pytest.raises(ProvisionError, match=message):
        service_topics(reads, writes)


@pytest.mark.parametrize(
    ("kind", "key", "options", "message"),
    [
        ("bridge", "atlantis", {}, "no community 'atlantis'"),
        ("service", "metrics", {}, "needs its topic patterns"),
        ("service", "Metrics Exporter", {}, "must be a slug"),
        ("node", "north", {}, "needs this node's name"),
        ("node", "north", {"local_node": "north"}, "cannot have this node's own name"),
        ("node", "north", {"local_node": "South Node"}, "must be a slug"),
        ("gateway", "main", {"local_node": "south"}, "only a node account"),
        ("bridge", "utuado", {"topics": service_topics(["rhizome/v1/#"], [])}, "only a service account"),
    ],
)
def test_unbound_or_misbound_accounts_are_refused(
    session: Session, kind: str, key: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ProvisionError, match=message):
        provision(session, kind, key, **options)  # type: ignore[arg-type]


def test_the_database_refuses_an_account_bound_to_the_wrong_thing(session: Session) -> None:
    utuado = session.scalars(select(Community.id).where(Community.slug == "utuado")).one()
    hashed = mosquitto_hash("x")
    for row in (
        BrokerCredential(username="bridge.x", kind="bridge", password_hash=hashed),  # no community
        BrokerCredential(username="node.x", kind="node", name="x", password_hash=hashed),  # no local node
        BrokerCredential(username="service.x", kind="service", name="x", password_hash=hashed),  # no topics
        BrokerCredential(
            username="gateway.x", kind="gateway", community_id=utuado, password_hash=hashed
        ),  # a gateway bound to a community
    ):
        with session.begin_nested():
            session.add(row)
            with pytest.raises(IntegrityError, match="ck_broker_credentials_owner"):
                session.flush()


def test_rotate_revoke_and_re_provision_the_new_kinds(db: tuple[Engine, list[str]], tmp_path: Path) -> None:
    engine, base = db
    cli = [*base, "devices"]
    broker = ["--broker-dir", str(tmp_path / "broker")]
    secrets_dir = tmp_path / "secrets"
    names = ["--bridge", "utuado", "--node", "north"]
    assert main([*cli, "provision", *broker, *names, "--this-node", "south"]) == 0
    assert (
        main([*cli, "provision", *broker, "--service", "planner", "--read", "rhizome/v1/internal/events"])
        == 0
    )
    first = password_lines(tmp_path / "broker" / PASSWORD_FILE)
    every = [*names, "--service", "planner"]
    assert main([*cli, "rotate", *broker, *every, "--secrets-dir", str(secrets_dir)]) == 0
    rotated = password_lines(tmp_path / "broker" / PASSWORD_FILE)
    assert sorted(rotated) == sorted(first) and all(rotated[n] != first[n] for n in first)
    for name in first:
        assert (secrets_dir / f"{name}.password").stat().st_mode & 0o777 == 0o600
    # a new topic list for the service: its ACL changes, its password does not
    assert main([*cli, "provision", *broker, "--service", "planner", "--read", "rhizome/v1/alerts/+"]) == 0
    assert password_lines(tmp_path / "broker" / PASSWORD_FILE) == rotated
    acl = (tmp_path / "broker" / "rhizome.acl").read_text()
    assert "user service.planner\ntopic read rhizome/v1/alerts/+\n" in acl
    assert main([*cli, "revoke", *broker, *every]) == 0
    assert password_lines(tmp_path / "broker" / PASSWORD_FILE) == {}
    with Session(engine) as session:
        rows = session.scalars(select(BrokerCredential).order_by(BrokerCredential.username)).all()
        assert [(r.username, r.active) for r in rows] == [
            ("bridge.utuado", False),
            ("node.north", False),
            ("service.planner", False),
        ]  # the rows stay, for the record
    assert main([*cli, "provision", *broker, "--node", "north"]) == 0  # keeps its binding to `south`
    assert main([*cli, "rotate", *broker, "--node", "west"]) == 1  # never provisioned
    assert main([*cli, "provision", *broker, "--read", "rhizome/v1/#"]) == 1  # topics of no service
    assert sorted(password_lines(tmp_path / "broker" / PASSWORD_FILE)) == ["node.north"]


def test_files_written_over_a_hand_added_account_say_it_was_dropped(
    session: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provision(session, "device", PUMP)
    write_broker_files(session, tmp_path)
    with (tmp_path / PASSWORD_FILE).open("a") as fh:
        fh.write(f"bridge-by-hand:{mosquitto_hash('pw')}\n")
    files = write_broker_files(session, tmp_path)
    assert files.dropped == ("bridge-by-hand",)
    assert "dropped bridge-by-hand" in caplog.text
    assert sorted(password_lines(files.password_file)) == [PUMP]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
def test_mosquitto_passwd_can_edit_the_generated_file_without_wiping_it(
    session: Session, tmp_path: Path
) -> None:
    """Mosquitto 2.0.11's mosquitto_passwd, on a file whose first line is a comment, printed
    'Corrupt password file at line 1', exited 0 and left only the account it was asked to add."""
    provision(session, "device", PUMP)
    provision(session, "bridge", "utuado")
    files = write_broker_files(session, tmp_path)
    generated = password_lines(files.password_file)
    done = subprocess.run(
        ["mosquitto_passwd", "-b", str(files.password_file), "someone", "pw"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "Corrupt" not in done.stdout + done.stderr
    edited = password_lines(files.password_file)
    assert {name: edited[name] for name in generated} == generated and "someone" in edited


# --- A real Mosquitto with the generated files ------------------------------------------------------


@pytest.mark.network
def test_the_broker_lets_each_new_account_touch_only_its_own_topics(engine: Engine, tmp_path: Path) -> None:
    require_mosquitto()

    broker_dir = tmp_path / "files"
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data())
        issued = [provision(session, "gateway", "main"), provision(session, "bridge", "utuado")]
        issued.append(provision(session, "node", "north", local_node="south"))
        reads = service_topics(["rhizome/v1/internal/events"], [])
        issued.append(provision(session, "service", "dashboard", topics=reads))
        fed = service_topics(["rhizome/fed/v1/#"], [])  # stands for this node's federation process
        issued.append(provision(session, "service", "fed-watch", topics=fed))
        write_broker_files(session, broker_dir)
        utuado = community_from_store(session, "utuado")
    passwords = {i.username: i.password for i in issued if i is not None}
    regional = SecureMosquitto(tmp_path / "regional", broker_dir)
    probes: list[Probe] = []

    def probe(username: str) -> Probe:
        probes.append(Probe(regional.port, username, passwords[username], f"probe-{len(probes)}"))
        assert probes[-1].connected(), regional.log_tail()
        return probes[-1]

    uplink = MqttTarget(HOST, regional.port, "bridge.utuado", passwords["bridge.utuado"], False, "3.1.1")
    community = CommunityBroker(tmp_path / "community", utuado, uplink)
    try:
        regional.start()
        gateway, bridge = probe("gateway.main"), probe("bridge.utuado")
        node, dashboard = probe("node.north"), probe("service.dashboard")
        watch = probe("service.fed-watch")
        gateway.subscribe("rhizome/#")
        watch.subscribe("rhizome/#")
        own = f"rhizome/v1/utuado/pump-1/{PUMP}/telemetry"
        assert bridge.publish(own, b"{}") == "accepted"
        assert bridge.publish("rhizome/v1/jayuya/hub/jayuya-hub-stock/stock", b"{}") == "Not authorized"
        assert bridge.publish("rhizome/v1/alerts/utuado", b"{}") == "Not authorized"  # downstream: read only
        assert node.publish("rhizome/fed/v1/south/in/north/offer", b"{}") == "accepted"
        assert node.publish("rhizome/fed/v1/south/in/west/offer", b"{}") == "Not authorized"  # another peer
        assert node.publish("rhizome/fed/v1/south/out/north/offer", b"{}") == "Not authorized"  # its inbox
        assert node.publish(own, b"{}") == "Not authorized"
        assert dashboard.publish("rhizome/v1/internal/events", b"{}") == "Not authorized"  # reads only
        assert gateway.wait(lambda: gateway.messages) and watch.wait(lambda: watch.messages)
        time.sleep(0.3)  # a refused publish would have arrived by now
        assert [t for t, _ in gateway.messages] == [own]
        assert [t for t, _ in watch.messages] == ["rhizome/fed/v1/south/in/north/offer"]

        # The real bridge, with the config `rhizome bridge config` writes, logs in with its account: a
        # device's reading reaches the region, and a command for that device comes back down.
        community.start()
        device = Probe(community.port, community.device.username, community.device.password, "device")
        probes.append(device)
        assert device.connected()
        device.subscribe(f"rhizome/v1/utuado/pump-1/{PUMP}/command")
        deadline = time.monotonic() + 15
        while not any(b"bridged" in body for _, body in gateway.messages):
            assert time.monotonic() < deadline, f"nothing bridged:\n{regional.log_tail()}\n{community.log()}"
            device.publish(own, b"bridged")
            time.sleep(0.2)
        command = f"rhizome/v1/utuado/pump-1/{PUMP}/command"
        deadline = time.monotonic() + 15
        while not device.messages:
            assert time.monotonic() < deadline, f"no command came down:\n{community.log()}"
            gateway.publish(command, b"stop")
            time.sleep(0.2)
        assert device.messages[0] == (command, b"stop")
        assert "not authorised" not in regional.log_tail().lower()
    finally:
        for p in probes:
            p.close()
        community.stop()
        regional.stop()
