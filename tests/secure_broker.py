"""A Mosquitto started by a test with the shipped config, the password and ACL files generated from the store,
a plain listener and a TLS listener (self-signed CA made with the openssl CLI), and a pid file to SIGHUP."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.broker.embedded import MOSQUITTO_CONF, find_mosquitto, render_mosquitto_conf
from gateway.broker.files import ACL_FILE, PASSWORD_FILE
from gateway.process.procutil import free_port, port_open

HOST = "127.0.0.1"


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""

    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> TlsFiles:
    """Generate the CA and the server certificate (EC P-256: fast) with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, csr = directory / "server.crt", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n", encoding="ascii")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2"]
    _openssl([*run, "-subj", "/CN=rhizome-test-ca"])
    _openssl(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    sign = ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"]
    _openssl([*sign, "-out", cert, "-days", "2", "-extfile", ext])
    return TlsFiles(ca, cert, key)


def _openssl(cmd: list[str | Path]) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=30)


class SecureMosquitto:
    """Mosquitto with `broker_dir`'s rhizome.passwd and rhizome.acl; `tls` adds a second, TLS listener."""

    def __init__(self, workdir: Path, broker_dir: Path, tls: TlsFiles | None = None) -> None:
        self.workdir, self.broker_dir, self.tls = workdir, broker_dir, tls
        self.port = free_port(HOST)
        self.tls_port = free_port(HOST) if tls else None
        self.pid_file = workdir / "mosquitto.pid"
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = find_mosquitto()
        assert binary is not None, "mosquitto is required"
        self.workdir.mkdir(parents=True, exist_ok=True)
        overrides = [
            ("password_file", str(self.broker_dir / PASSWORD_FILE)),
            ("acl_file", str(self.broker_dir / ACL_FILE)),
            ("persistence_location", f"{self.workdir}/"),
            ("log_dest", f"file {self.log}"),
            ("user", pwd.getpwuid(os.geteuid()).pw_name),
            ("pid_file", str(self.pid_file)),
            ("listener", f"{self.port} {HOST}"),
        ]
        conf = render_mosquitto_conf(MOSQUITTO_CONF.read_text(encoding="utf-8"), overrides)
        if self.tls is not None:  # listener options attach to the listener line above them
            conf += f"listener {self.tls_port} {HOST}\ncafile {self.tls.ca}\n"
            conf += f"certfile {self.tls.cert}\nkeyfile {self.tls.key}\n"
            conf += "use_username_as_clientid true\n"  # a listener option, as docs/security.md says
        path = self.workdir / "mosquitto.conf"
        path.write_text(conf, encoding="utf-8")
        self.process = subprocess.Popen(
            [binary, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        for port in (self.port, self.tls_port):
            while port is not None and not port_open(HOST, port, timeout=0.2):
                assert self.process.poll() is None, self.log_tail()
                assert time.monotonic() < deadline, "mosquitto not ready in 15 s"
                time.sleep(0.05)
        while not self.pid_file.exists():
            assert time.monotonic() < deadline, "no pid file"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"


class Probe:
    """A raw paho client that records what happens to it: CONNACK, disconnects, messages, PUBACK reasons."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        client_id: str,
        *,
        tls: bool = False,
        ca: Path | None = None,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        if tls:
            self.client.tls_set(ca_certs=str(ca) if ca else None)  # no CA: the system's, which refuse ours
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(*will, qos=1)
        self.client.reconnect_delay_set(0.2, 0.5)
        self.connack: list[str] = []
        self.disconnects: list[str] = []
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, str] = {}
        self.granted: list[str] = []
        self.connect_failures = 0  # the TCP or TLS handshake failed (no CONNACK at all)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.append(str(rc))
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.append(str(rc))
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, str(rc))
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.granted.extend(str(r) for r in rcs)
        self.client.on_connect_fail = lambda _c, _u: setattr(
            self, "connect_failures", self.connect_failures + 1
        )
        self.client.connect_async(HOST, port)
        self.client.loop_start()

    def wait(self, condition: object, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def connected(self, timeout: float = 15.0) -> bool:
        return self.wait(lambda: self.client.is_connected(), timeout)

    def refused(self, timeout: float = 15.0) -> bool:
        """True once the broker answered a CONNECT with a failure (bad credentials, not authorised)."""
        return self.wait(lambda: any(r != "Success" for r in self.connack), timeout)

    def subscribe(self, topic: str) -> None:
        before = len(self.granted)
        self.client.subscribe(topic, qos=1)
        assert self.wait(lambda: len(self.granted) > before), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> str:
        """Publish at QoS 1: 'accepted' (a PUBACK success, subscribers or not) or the refusal reason."""
        info = self.client.publish(topic, payload, qos=1)
        assert self.wait(lambda: info.mid in self.acks), f"no PUBACK for {topic}"
        reason = self.acks[info.mid]
        return "accepted" if reason in ("Success", "No matching subscribers") else reason

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def conf_options(text: str) -> list[tuple[str, str]]:
    """The (option, value) lines of a Mosquitto config, in order, comments and blank lines left out."""
    found = []
    for line in text.splitlines():
        words = line.split(None, 1)
        if words and not words[0].startswith("#"):
            found.append((words[0], words[1].strip() if len(words) > 1 else ""))
    return found


def adapt_conf(text: str, values: dict[str, str]) -> str:
    """A shipped config with the values of `values`' options replaced in place (order kept: a TLS option
    stays under its listener line); every option named must be in the config, so none is added silently."""
    seen: set[str] = set()
    out = []
    for line in text.splitlines():
        words = line.split(None, 1)
        if words and words[0] in values:
            seen.add(words[0])
            line = f"{words[0]} {values[words[0]]}"
        out.append(line)
    assert seen == set(values), f"not in the config: {sorted(set(values) - seen)}"
    return "\n".join(out) + "\n"


def run_mosquitto(conf: Path, ports: list[int], log: Path) -> subprocess.Popen[bytes]:
    """Start Mosquitto on `conf` and wait until every port listens; fails with the log if it exits."""
    binary = find_mosquitto()
    assert binary is not None, "mosquitto is required"
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    for port in ports:
        while not port_open(HOST, port, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
                raise AssertionError(f"mosquitto exited with {process.returncode} or was not ready:\n{tail}")
            time.sleep(0.05)
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
