"""docs/deploy/docker-compose.yml run for real, as its header says: TLS files as docs/security.md#tls makes
them, the schema, the sample region, one account per process, `up -d`; then the broker runs, the gateways
and the planner are connected under their own usernames, /api/health answers 200, and a provisioned device
publishing over TLS on the published port gets its reading stored.

Opt-in (RHIZOME_TEST_COMPOSE=1; never in CI): it needs a Docker daemon, docker compose (v2) or docker-compose
(v1.29), and the three images the compose file names, official or the stand-ins of
tests/compose/build-standins.sh; it pulls nothing, and builds only the Rhizome image (pip reaches PyPI). With
RHIZOME_TEST_REQUIRE_SERVICES=1 a missing daemon or image fails the test instead of skipping it. It runs the
setup on a copy of docs/deploy/ under its own project name, so a deployment beside it is untouched, but it
publishes the compose file's ports (8883, 127.0.0.1:8000): they must be free. About 90 s.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from devices.client import DeviceClient
from gateway.contract.target import MqttTarget
from tests.conftest import services_required

pytestmark = [pytest.mark.slow, pytest.mark.network]

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
OPT_IN = "RHIZOME_TEST_COMPOSE"
IMAGES = ("python:3.11-slim", "eclipse-mosquitto:2.0", "postgres:16")
DEVICE = ("adjuntas", "farm-1", "adjuntas-farm-1-soil")  # a device of the sample region
GATEWAYS = ("gw-1", "gw-2", "planner", "dashboard")
HEALTH = "http://127.0.0.1:8000/api/health"


def run(*argv: str, stdin: str | None = None, timeout: float = 300) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def compose_command() -> list[str] | None:
    """`docker compose` if the plugin is there, else `docker-compose`, else None."""
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def missing() -> str | None:
    """What this machine lacks to run the compose file, or None."""
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker daemon"
    if compose_command() is None:
        return "neither docker compose nor docker-compose"
    absent = [
        i for i in IMAGES if subprocess.run(["docker", "image", "inspect", i], capture_output=True).returncode
    ]
    if absent:
        return f"images {absent} (official, or tests/compose/build-standins.sh)"
    return None


def require_compose() -> None:
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"opt-in: {OPT_IN}=1 runs the compose file for real")
    lacking = missing()
    if lacking is not None:
        if services_required():
            pytest.fail(f"{OPT_IN}=1 with RHIZOME_TEST_REQUIRE_SERVICES=1, but {lacking}")
        pytest.skip(lacking)
    busy = [p for p in (8883, 8000) if not port_is_free(p)]
    if busy:
        pytest.fail(f"the compose file publishes ports {busy}, which are taken")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_tls(broker: Path, ca_dir: Path) -> None:
    """docs/security.md#tls, with the service name (and localhost, for the published port) in the SAN."""
    certs = broker / "certs"
    certs.mkdir(parents=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req",
        "-x509",
        *ec,
        "-days",
        "3650",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=rhizome-ca",
        cwd=ca_dir,
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=mosquitto", cwd=ca_dir)
    (ca_dir / "server.ext").write_text("subjectAltName=DNS:mosquitto,DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "825", "-out", "server.crt", "-extfile", "server.ext", cwd=ca_dir,
    )  # fmt: skip
    for name in ("ca.crt", "server.crt", "server.key"):  # never ca.key: the broker reads this directory
        shutil.copy(ca_dir / name, certs / name)


def make_env(deploy: Path) -> None:
    """rhizome.env from the example, its placeholders filled in as the header says."""
    password, key = secrets.token_hex(16), secrets.token_hex(32)
    lines = []
    for line in (deploy / "rhizome.env.example").read_text(encoding="utf-8").splitlines():
        if line.startswith("RHIZOME_DATABASE_URL="):
            line = f"RHIZOME_DATABASE_URL=postgresql://rhizome:{password}@postgres:5432/rhizome"
        elif line.startswith("POSTGRES_PASSWORD="):
            line = f"POSTGRES_PASSWORD={password}"
        elif line.startswith("RHIZOME_SECRET_KEY="):
            line = f"RHIZOME_SECRET_KEY={key}"
        lines.append(line)
    env = deploy / "rhizome.env"
    env.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env.chmod(0o600)


class Compose:
    """The compose file of a copy of docs/deploy/, under its own project name."""

    def __init__(self, deploy: Path, project: str) -> None:
        self.deploy, self.project = deploy, project
        self.base = [*(compose_command() or []), "-p", project, "-f", str(deploy / "docker-compose.yml")]

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        return run(*self.base, *args, stdin=stdin)

    def provision(self, *args: str) -> str:
        # The header's command: as root in the migrate service, the deploy directory on /out.
        volume = f"{self.deploy}:/out"
        return self(
            "run", "--rm", "--user", "root", "-v", volume, "migrate", "rhizome", "devices", "provision", *args
        )

    def chown(self, uid: int, *paths: str) -> None:
        """The header's `sudo chown`, done in a container so the test needs no root of its own."""
        mounted = [f"/out/{p}" for p in paths]
        run("docker", "run", "--rm", "--user", "root", "-v", f"{self.deploy}:/out", "--entrypoint", "chown",
            IMAGES[0], "-R", str(uid), *mounted)  # fmt: skip


def prepare(tmp: Path) -> Path:
    """docs/deploy/ copied, building the image from this repository (its own tag, nothing pulled)."""
    deploy = tmp / "deploy"
    shutil.copytree(
        DEPLOY, deploy, ignore=shutil.ignore_patterns("rhizome.env", "broker", "secrets", "device-secrets")
    )
    spec = yaml.safe_load((deploy / "docker-compose.yml").read_text(encoding="utf-8"))
    spec["x-rhizome"]["build"]["context"] = str(ROOT)
    for service in spec["services"].values():
        if service.get("image") == "rhizome":
            service["image"] = "rhizome:compose-test"
            service["build"] = dict(service["build"], context=str(ROOT))
    (deploy / "docker-compose.yml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return deploy


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Compose]:
    require_compose()
    deploy = prepare(tmp_path)
    compose = Compose(deploy, f"rhizometest{os.getpid()}")
    try:
        yield compose
    finally:
        subprocess.run([*compose.base, "down", "-v", "--remove-orphans"], capture_output=True, timeout=120)
        # Give back what the containers made root's or the broker's, so tmp_path can be removed.
        subprocess.run(
            ["docker", "run", "--rm", "--user", "root", "-v", f"{deploy}:/out", "--entrypoint", "chown",
             IMAGES[0], "-R", f"{os.getuid()}:{os.getgid()}", "/out"],
            capture_output=True, timeout=60,
        )  # fmt: skip


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(1)


def health() -> int:
    with urllib.request.urlopen(HEALTH, timeout=5) as response:
        return int(response.status)


def test_the_compose_file_runs_as_its_header_says(stack: Compose, tmp_path: Path) -> None:
    deploy = stack.deploy
    make_env(deploy)
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    make_tls(deploy / "broker", ca_dir)
    stack.chown(1883, "broker/certs/server.key")
    stack("build")
    stack("run", "--rm", "migrate")  # waits for a healthy PostgreSQL, no rerun
    stack("run", "--rm", "migrate", "rhizome", "region", "load", "sample")
    stack.provision(*(a for g in GATEWAYS for a in ("--gateway", g)), "--broker-dir", "/out/broker",
                    "--secrets-dir", "/out/secrets")  # fmt: skip
    stack.chown(1883, "broker/rhizome.passwd", "broker/rhizome.acl")
    stack.chown(10001, "secrets")
    stack("up", "-d")

    assert wait_for(health, 90, HEALTH) == 200
    status = json.loads(urllib.request.urlopen(HEALTH, timeout=5).read())
    assert status["status"] == "ok" and status["counts"]["devices"] == 329

    def broker_log() -> str:
        return stack("exec", "-T", "mosquitto", "cat", "/var/log/mosquitto/mosquitto.log")

    # Connected under their usernames, whatever --client-id the gateways send: the binding works.
    for account in ("gateway.gw-1", "gateway.gw-2", "gateway.planner"):
        wait_for(lambda name=account: f"as {name} " in broker_log(), 60, f"{account} connected")
    assert "rhizome-gateway-1" not in broker_log() and "Error" not in broker_log()
    running = stack("ps", "--services", "--filter", "status=running").split()
    assert {"mosquitto", "postgres", "gateway-1", "gateway-2", "planner", "dashboard"} <= set(running)

    # A device provisioned after `up`: the files are rewritten, the broker reloads them (broker/ is mounted
    # whole), and the device publishes over TLS to the published port with its own account.
    community, site, device = DEVICE
    stack.provision(device, "--broker-dir", "/out/broker", "--secrets-dir", "/out/device-secrets")
    stack("kill", "-s", "HUP", "mosquitto")
    stack.chown(os.getuid(), "device-secrets")
    password = (deploy / "device-secrets" / f"{device}.password").read_text().splitlines()[0]
    target = MqttTarget("localhost", 8883, device, password, tls=True, protocol="5",
                        ca_file=str(deploy / "broker" / "certs" / "ca.crt"))  # fmt: skip
    wait_for(lambda: "Reloading config" in broker_log(), 30, "the broker's reload")
    with DeviceClient(target, community, site, device, state_dir=tmp_path / "device") as client:
        assert client.connected
        assert client.send_telemetry({"soil_moisture_pct": 37.5})
        assert client.flush(15)

    def stored() -> str:
        sql = (
            f"SELECT r.payload FROM readings r JOIN devices d ON d.id = r.device_id WHERE d.slug = '{device}'"
        )
        return stack("exec", "-T", "postgres", "psql", "-U", "rhizome", "-d", "rhizome", "-tAc", sql).strip()

    assert json.loads(str(wait_for(stored, 30, "the reading stored")))["metrics"] == {
        "soil_moisture_pct": 37.5
    }
