"""`rhizome node run`: one community node on one small box: broker, gateway, planner, dashboard and the
federation agent, each its own process with its own broker account, on the node's own store.

This supervisor stays resident as long as the node runs, so it loads no store and no broker client: the
store's work (migrations, the region, accounts and broker files) runs first in a child of its own
(`rhizome node prepare`, gateway.federation.prepare), which hands back the processes' broker URLs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.broker.embedded import EmbeddedBroker
from gateway.contract import clock
from gateway.contract.target import MqttTarget
from gateway.federation.directory import read_federation
from gateway.federation.identity import node_name
from gateway.process.procutil import wait_for_port
from gateway.process.settings import Settings, to_env
from gateway.process.signals import stop_on_signals
from gateway.process.supervisor import Supervisor

log = logging.getLogger(__name__)
PREPARE_TIMEOUT_S = 600.0  # a first start loads the region and hashes a password per device


def prepare(settings: Settings, region: Path | None) -> dict[str, str]:
    """Run `rhizome node prepare` in a child and return the processes' broker URLs it printed."""
    command = [sys.executable, "-m", "gateway.process.cli", "node", "prepare"]
    if region is not None:
        command += ["--region", str(region)]
    env = {**os.environ, **to_env(settings)}
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, timeout=PREPARE_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise OSError(f"preparing the node's store failed (exit {done.returncode}); see the messages above")
    lines = done.stdout.decode().strip().splitlines()
    return dict(json.loads(lines[-1])["urls"]) if lines else {}


def run_node(settings: Settings, region: Path | None, port: int | None, exit_after: float | None) -> int:
    """Bring the node up and run until a signal (or `exit_after` seconds)."""
    started = time.monotonic()
    if settings.federation_file is None:
        raise ValueError("a node needs the federation file: --federation FILE or RHIZOME_FEDERATION_FILE")
    federation = read_federation(settings.federation_file)
    settings = settings.with_overrides(data_dir=settings.data_dir.resolve())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    name = node_name(settings)
    if name not in federation.nodes:
        raise ValueError(f"node {name!r} is not in {settings.federation_file}: `node init` prints its entry")
    listen = MqttTarget.from_url(federation.nodes[name].broker or "mqtt://127.0.0.1:1883")
    urls = prepare(settings, region)
    stop = stop_on_signals()
    broker_dir = settings.effective_broker_dir
    broker = EmbeddedBroker(
        settings.data_dir / "mosquitto",
        [],
        port=listen.port,
        store_files=(broker_dir / "rhizome.passwd", broker_dir / "rhizome.acl"),
        bind=os.environ.get("RHIZOME_NODE_LISTEN", listen.host),
    )
    supervisor: Supervisor | None = None
    try:
        broker.start()
        chosen = port or settings.dashboard_port
        base = to_env(settings.with_overrides(dashboard_port=chosen, broker_pid_file=broker.pid_file))
        base = {k: v for k, v in base.items() if k not in ("RHIZOME_MQTT_URL", "RHIZOME_MQTT_PASSWORD_FILE")}
        env = {**os.environ, **base, "PYTHONUNBUFFERED": "1", "RHIZOME_MQTT_PROTOCOL": "5"}
        env.setdefault(clock.ENV, clock.simulated(datetime.now(UTC), 1.0).encode())
        supervisor = Supervisor(env, settings.data_dir / "logs")
        ready = settings.data_dir / "gateway.ready"
        ready.unlink(missing_ok=True)
        gateway = ("gateway", "--client-id", f"gateway-{name}", "--ready-file", str(ready))
        _start(supervisor, "gateway", urls, *gateway)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if supervisor.dead() or time.monotonic() > deadline:
                raise OSError(f"the node's gateway did not start; see {settings.data_dir / 'logs'}")
            time.sleep(0.1)
        # The planner's process also runs the federation agent, on the agent's own account: an interpreter
        # with the store loaded is tens of MB, and a node runs on a small box.
        supervisor.env["RHIZOME_FED_MQTT_URL"] = urls["federation"]
        _start(supervisor, "planner", urls, "plan", "--loop")
        del supervisor.env["RHIZOME_FED_MQTT_URL"]
        dashboard = ("dashboard", "--host", settings.dashboard_host, "--port", str(chosen))
        _start(supervisor, "dashboard", urls, *dashboard)
        wait_for_port(settings.dashboard_host, chosen, 30)
        print(
            f"node {name} ready in {time.monotonic() - started:.1f} s: broker {listen.host}:{listen.port}, "
            f"dashboard http://{settings.dashboard_host}:{chosen}/",
            flush=True,
        )
        return _watch(supervisor, stop, exit_after)
    finally:
        if supervisor is not None:
            supervisor.stop_all()
        broker.stop()


def _watch(supervisor: Supervisor, stop: threading.Event, exit_after: float | None) -> int:
    deadline = time.monotonic() + exit_after if exit_after else None
    while not stop.wait(1.0):
        dead = supervisor.dead()
        if dead:
            child = dead[0]
            log.error("%s exited (code %s); see %s", child.name, child.process.returncode, child.log_path)
            return 1
        if deadline is not None and time.monotonic() >= deadline:
            break
    return 0


def _start(supervisor: Supervisor, process: str, urls: dict[str, str], *args: str) -> None:
    supervisor.env["RHIZOME_MQTT_URL"] = urls[process]
    supervisor.start(process, *args)
