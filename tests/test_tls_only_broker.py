"""The TLS-only broker config (docs/deploy/mosquitto-tls.conf) on the real Mosquitto, its paths moved into the
test's directory: a client that reads its password from a file, with a URL naming only the user, connects over
TLS; the same account in plain MQTT gets no answer, since no listener takes a password in clear."""

from __future__ import annotations

import os
import pwd
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.contract.client import connect, make_client
from gateway.process.cli import main
from gateway.process.procutil import free_port
from gateway.process.settings import Settings
from tests.conftest import require_mosquitto
from tests.secure_broker import (
    HOST,
    Probe,
    TlsFiles,
    adapt_conf,
    conf_options,
    make_tls,
    run_mosquitto,
    stop_process,
)

pytestmark = pytest.mark.network
TLS_CONF = Path(__file__).resolve().parents[1] / "docs" / "deploy" / "mosquitto-tls.conf"
USER = "gateway.main"


@dataclass
class TlsOnly:
    port: int
    tls: TlsFiles
    password_file: Path
    process: subprocess.Popen[bytes]


@pytest.fixture
def tls_only(sqlite_engine: Engine, tmp_path: Path) -> Iterator[TlsOnly]:
    require_mosquitto()
    broker_dir, secrets = tmp_path / "broker", tmp_path / "secrets"
    db = sqlite_engine.url.render_as_string(hide_password=False)
    argv = ["--db", db, "devices", "provision", "--gateway", "main", "--broker-dir", str(broker_dir)]
    assert main([*argv, "--secrets-dir", str(secrets)]) == 0  # the documented command writes all three
    tls, port, log = make_tls(tmp_path / "tls"), free_port(HOST), tmp_path / "mosquitto.log"
    values = {
        "password_file": str(broker_dir / "rhizome.passwd"),
        "acl_file": str(broker_dir / "rhizome.acl"),
        "persistence_location": f"{tmp_path}/",
        "log_dest": f"file {log}",
        "user": pwd.getpwuid(os.geteuid()).pw_name,
        "listener": f"{port} {HOST}",
        "cafile": str(tls.ca),
        "certfile": str(tls.cert),
        "keyfile": str(tls.key),
    }
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(adapt_conf(TLS_CONF.read_text(encoding="utf-8"), values), encoding="utf-8")
    process = run_mosquitto(conf, [port], log)
    try:
        yield TlsOnly(port, tls, secrets / f"{USER}.password", process)
    finally:
        stop_process(process)


def test_the_tls_only_config_has_one_listener_and_it_is_tls() -> None:
    options = [key for key, _ in conf_options(TLS_CONF.read_text(encoding="utf-8"))]
    listener = options.index("listener")
    assert options.count("listener") == 1 and "port" not in options and "bind_address" not in options
    assert {"cafile", "certfile", "keyfile"} <= set(options[listener:])  # they attach to that listener


def connects(settings: Settings) -> str:
    """Connect as the settings say, as every Rhizome process does; the CONNACK reason."""
    target = settings.mqtt()
    client = make_client(target, "tls-only-test", reconnect_delay=None)
    answered, reasons = threading.Event(), []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        reasons.append(str(reason))
        answered.set()

    client.on_connect = on_connect
    connect(client, target)
    client.loop_start()
    try:
        assert answered.wait(15), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


def test_a_url_without_password_and_a_password_file_connect_over_tls(tls_only: TlsOnly) -> None:
    url = f"mqtts://{USER}@{HOST}:{tls_only.port}"
    settings = Settings(mqtt_url=url, mqtt_ca_file=str(tls_only.tls.ca))
    assert connects(settings.with_overrides(mqtt_password_file=tls_only.password_file)) == "Success"
    password = tls_only.password_file.read_text(encoding="utf-8").strip()
    assert connects(settings.with_overrides(mqtt_password=password)) == "Success"  # RHIZOME_MQTT_PASSWORD
    assert connects(settings) == "Not authorized"  # the password is what the file added


def test_the_tls_only_broker_refuses_plain_mqtt(tls_only: TlsOnly) -> None:
    password = tls_only.password_file.read_text(encoding="utf-8").strip()
    plain = Probe(tls_only.port, USER, password, "plain-probe")
    secure = Probe(tls_only.port, USER, password, "tls-probe", tls=True, ca=tls_only.tls.ca)
    try:
        assert secure.connected(), secure.connack  # the listener and the account work
        assert not plain.connected(timeout=3) and plain.connack == []  # no CONNACK, accepted or not
    finally:
        plain.close()
        secure.close()
