"""Broker accounts in the store and the files made from them, without a broker: states, refusals, the
ACL each kind of account gets, and that no password is kept anywhere but in the operator's hands."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from gateway.broker.accounts import ProvisionError, provision, revoke, unprovisioned_devices
from gateway.broker.files import (
    ACL_FILE,
    PASSWORD_FILE,
    BrokerReloadError,
    accounts,
    community_files,
    reload_broker,
    render_acl_file,
    write_broker_files,
)
from gateway.process.cli import main, parse
from gateway.store.db import make_session_factory
from gateway.store.models import BrokerCredential, Device, Member
from gateway.store.region import load_region
from tests.conftest import tiny_region_data

PUMP = "utuado-pump-1-pump"


@pytest.fixture
def session(sqlite_engine: Engine) -> Iterator[Session]:
    with make_session_factory(sqlite_engine).begin() as session:
        load_region(session, tiny_region_data())
    with make_session_factory(sqlite_engine)() as session:
        yield session


def verifies(stored: str, password: str) -> bool:
    """Check a password against a Mosquitto $7$ line the way the broker does."""
    _, version, iterations, salt, digest = stored.split("$")
    assert version == "7"
    computed = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    return base64.b64encode(computed).decode() == digest


def test_provision_rotate_revoke_and_provision_again(session: Session) -> None:
    first = provision(session, "device", PUMP)
    assert first is not None and first.username == PUMP
    row = session.scalars(select(BrokerCredential)).one()
    assert row.kind == "device" and row.password_hash and verifies(row.password_hash, first.password)
    assert session.scalars(select(Device.credential_ref).where(Device.slug == PUMP)).one() == PUMP
    assert provision(session, "device", PUMP) is None  # already provisioned: unchanged
    rotated = provision(session, "device", PUMP, rotate=True)
    assert rotated is not None and rotated.password != first.password
    assert verifies(row.password_hash, rotated.password) and not verifies(row.password_hash, first.password)
    assert revoke(session, "device", PUMP) and row.password_hash is None and row.revoked_at is not None
    assert session.scalars(select(Device.credential_ref).where(Device.slug == PUMP)).one() is None
    assert not revoke(session, "device", PUMP)  # nothing left to revoke
    with pytest.raises(ProvisionError, match="provision it"):
        provision(session, "device", PUMP, rotate=True)
    again = provision(session, "device", PUMP)
    assert again is not None and row.revoked_at is None and verifies(row.password_hash, again.password)


@pytest.mark.parametrize(
    ("kind", "key", "message"),
    [
        ("device", "no-such-device", "no device"),
        ("member", 9999, "no member"),
        ("member", "abc", "must be a number"),
        ("gateway", "Main Gateway", "must be a slug"),
        ("gateway", "a:b", "must be a slug"),
    ],
)
def test_unknown_or_malformed_accounts_are_refused(
    session: Session, kind: str, key: str, message: str
) -> None:
    with pytest.raises(ProvisionError, match=message):
        provision(session, kind, key)  # type: ignore[arg-type]


def test_the_store_and_the_files_never_hold_a_password(session: Session, tmp_path: Path) -> None:
    ana = session.scalars(select(Member.id)).first()
    assert ana is not None
    issued = [provision(session, "device", PUMP), provision(session, "gateway", "main")]
    issued.append(provision(session, "member", ana))
    session.flush()
    files = write_broker_files(session, tmp_path)
    dumped = "\n".join(
        repr(tuple(row)) for row in session.execute(text("SELECT * FROM broker_credentials"))
    ) + "\n".join(repr(tuple(row)) for row in session.execute(text("SELECT * FROM devices")))
    written = files.password_file.read_text() + files.acl_file.read_text()
    for item in issued:
        assert item is not None
        assert item.password not in dumped and item.password not in written
        assert item.password not in repr(item)  # an Issued in a log or traceback shows no password
    assert files.accounts == 3


def test_acl_gives_each_account_only_its_own_topics(session: Session) -> None:
    ana = session.scalars(select(Member.id)).one()
    for kind, key in (
        ("device", PUMP),
        ("device", "jayuya-hub-stock"),
        ("gateway", "main"),
        ("member", ana),
        ("bridge", "utuado"),
    ):
        provision(session, kind, key)  # type: ignore[arg-type]
    assert revoke(session, "device", "jayuya-hub-stock")
    acl = render_acl_file(accounts(session))
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n")[1:]}
    assert blocks == {
        f"user {PUMP}": [
            f"topic read rhizome/v1/utuado/pump-1/{PUMP}/command",
            f"topic write rhizome/v1/utuado/pump-1/{PUMP}/telemetry",
            f"topic write rhizome/v1/utuado/pump-1/{PUMP}/stock",
            f"topic write rhizome/v1/utuado/pump-1/{PUMP}/state",
        ],
        # exactly what the generated bridge forwards, and its link state (its will: a refused will drops it)
        "user bridge.utuado": [
            "topic read rhizome/v1/utuado/+/+/command",
            "topic read rhizome/v1/alerts/utuado",
            f"topic read rhizome/v1/members/{ana}/alerts",
            f"topic read rhizome/v1/members/{ana}/routes",
            "topic write rhizome/v1/utuado/+/+/telemetry",
            "topic write rhizome/v1/utuado/+/+/stock",
            "topic write rhizome/v1/utuado/+/+/state",
            "topic write rhizome/v1/utuado/bridge/state",
        ],
        "user gateway.main": [
            "topic read rhizome/v1/+/+/+/+",
            "topic read rhizome/v1/internal/events",  # the planner and dashboard use system accounts too
            "topic read rhizome/v1/+/bridge/state",
            "topic write rhizome/v1/alerts/+",
            "topic write rhizome/v1/members/+/alerts",
            "topic write rhizome/v1/members/+/routes",
            "topic write rhizome/v1/internal/events",
            "topic write rhizome/v1/+/+/+/command",
        ],
        f"user member.{ana}": [
            f"topic read rhizome/v1/members/{ana}/alerts",
            f"topic read rhizome/v1/members/{ana}/routes",
            "topic read rhizome/v1/alerts/utuado",
        ],
    }  # the revoked device has no block (and no password line): nothing is granted outside a block
    assert not any(line.startswith("topic") for line in acl.split("\n\n")[0].splitlines())
    assert unprovisioned_devices(session) == ["jayuya-hub-stock", "utuado-hub-stock"]


def test_a_community_brokers_files_hold_only_its_own_devices_each_confined_to_itself(
    session: Session, tmp_path: Path
) -> None:
    for kind, key in (("device", PUMP), ("device", "utuado-hub-stock"), ("device", "jayuya-hub-stock")):
        provision(session, kind, key)  # type: ignore[arg-type]
    provision(session, "gateway", "main")
    files = community_files(session, "utuado", tmp_path)
    acl = files.acl_file.read_text()
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n")[1:]}
    assert set(blocks) == {f"user {PUMP}", "user utuado-hub-stock"}  # no other community, no gateway
    assert all(t.split()[2].startswith(f"rhizome/v1/utuado/pump-1/{PUMP}/") for t in blocks[f"user {PUMP}"])
    names = [line.split(":")[0] for line in files.password_file.read_text().splitlines()]
    assert names == ["utuado-hub-stock", PUMP]
    assert files.acl_file.stat().st_mode & 0o777 == 0o600


def test_a_bridge_account_needs_a_known_community(session: Session) -> None:
    with pytest.raises(ProvisionError, match="no community 'atlantis'"):
        provision(session, "bridge", "atlantis")
    issued = provision(session, "bridge", "utuado")
    assert issued is not None and issued.username == "bridge.utuado"


def test_files_are_private_and_keep_the_mode_and_group_the_operator_gave_them(
    session: Session, tmp_path: Path
) -> None:
    provision(session, "device", PUMP)
    files = write_broker_files(session, tmp_path / "broker")
    assert {p.stat().st_mode & 0o777 for p in (files.password_file, files.acl_file)} == {0o600}
    os.chmod(files.password_file, 0o640)  # e.g. group mosquitto may read
    os.chmod(files.acl_file, 0o644)
    write_broker_files(session, tmp_path / "broker")
    assert files.password_file.stat().st_mode & 0o777 == 0o640
    assert files.acl_file.stat().st_mode & 0o777 == 0o640  # never readable by others
    assert sorted(p.name for p in (tmp_path / "broker").iterdir()) == [
        ACL_FILE,
        PASSWORD_FILE,
    ]  # no temp files left


def test_reload_refuses_a_missing_or_bogus_pid_file(tmp_path: Path) -> None:
    with pytest.raises(BrokerReloadError, match="cannot read"):
        reload_broker(tmp_path / "absent.pid")
    (tmp_path / "bogus.pid").write_text("not a pid")
    with pytest.raises(BrokerReloadError, match="cannot read"):
        reload_broker(tmp_path / "bogus.pid")
    (tmp_path / "init.pid").write_text("1\n")
    with pytest.raises(BrokerReloadError, match="not a broker"):
        reload_broker(tmp_path / "init.pid")


@pytest.mark.slow
def test_reload_sends_sighup(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [
            "python3",
            "-c",
            "import signal,sys,time; signal.signal(signal.SIGHUP, lambda *a: sys.exit(7)); "
            "print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        (tmp_path / "child.pid").write_text(f"{child.pid}\n")
        assert reload_broker(tmp_path / "child.pid") == child.pid
        assert child.wait(10) == 7
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_the_cli_sits_under_devices_and_refuses_an_empty_rotate(tmp_path: Path) -> None:
    ctx = parse(["devices", "revoke", PUMP, "--member", "3", "--gateway", "main"])
    assert ctx.command.name == "revoke" and ctx.parent is not None and ctx.parent.info_name == "devices"
    assert (ctx.params["slugs"], ctx.params["member"], ctx.params["gateway"]) == ((PUMP,), (3,), ("main",))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["--db", db, "--data-dir", str(tmp_path), "db", "upgrade"]) == 0
    assert main(["--db", db, "--data-dir", str(tmp_path), "devices", "rotate"]) == 1
    assert main(["--db", db, "--data-dir", str(tmp_path), "devices", "revoke", "nope"]) == 1
    assert not (tmp_path / "broker").exists()  # a refused command writes nothing
