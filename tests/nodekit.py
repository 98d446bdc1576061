"""Community nodes as real `rhizome node run` processes on loopback, for the federation's integration tests:
each its own broker, gateway, store, planner, dashboard and agent, the links through cuttable cables."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.federation.keys import KEY_FILE, NodeKey
from gateway.federation.sim import Cable
from gateway.process.procutil import free_port, port_open
from gateway.store.db import make_engine
from gateway.store.models import FedFact, FedNode

HOST = "127.0.0.1"


@dataclass
class NodeProc:
    """One node: its data dir, ports, key and (while it runs) its supervisor process."""

    name: str
    data_dir: Path
    broker_port: int
    dashboard_port: int
    key: NodeKey
    process: subprocess.Popen[bytes] | None = None
    engine: Engine | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "node.log"

    def store(self) -> Engine:
        if self.engine is None:
            self.engine = make_engine(f"sqlite:///{self.data_dir / 'rhizome.db'}")
        return self.engine

    def facts(self) -> set[tuple[str, int]]:
        with Session(self.store()) as session:
            rows = session.execute(select(FedFact.origin, FedFact.seq).where(FedFact.sig.is_not(None)))
            return {(o, s) for o, s in rows}

    def duplicated(self) -> int:
        """Rows beyond one per (origin, seq): what a bridge or a resend would add without idempotence."""
        with Session(self.store()) as session:
            keys = list(session.execute(select(FedFact.origin, FedFact.seq)))
            return len(keys) - len(set(keys))

    def links_up(self) -> dict[str, bool]:
        with Session(self.store()) as session:
            return {row.name: row.link_up for row in session.scalars(select(FedNode).where(FedNode.direct))}

    def log(self) -> str:
        out = self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
        logs = self.data_dir / "logs"
        for path in sorted(logs.glob("*.log")) if logs.exists() else []:
            out += f"\n--- {path.name}\n" + path.read_text(errors="replace")[-2500:]
        return out

    def secret(self, username: str) -> str:
        return (
            (self.data_dir / "secrets" / f"{username}.password").read_text(encoding="utf-8").splitlines()[0]
        )


class Federation:
    """Nodes named after communities of the bundled region, linked as given (dialer, listener)."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        links: Sequence[tuple[str, str]],
        *,
        lease_s: float = 6.0,
        beat_s: float = 1.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root, self.links, self.lease_s, self.beat_s = root, tuple(links), lease_s, beat_s
        self.env = env or {}
        self.nodes: dict[str, NodeProc] = {}
        for name in names:
            data_dir = root / name
            data_dir.mkdir(parents=True)
            key = NodeKey.load_or_create(data_dir / KEY_FILE)
            self.nodes[name] = NodeProc(name, data_dir, free_port(HOST), free_port(HOST), key)
        self.cables = {(d, t): Cable(self.nodes[t].broker_port) for d, t in self.links}
        for name in names:
            self._write_file(name)

    def _write_file(self, name: str) -> None:
        lines = [f"lease_s = {self.lease_s}", f"beat_s = {self.beat_s}", ""]
        for other in self.nodes.values():
            cable = self.cables.get((name, other.name))
            port = cable.port if cable else other.broker_port
            lines += [
                f"[nodes.{other.name}]",
                f'public_key = "{other.key.public}"',
                f'broker = "mqtt://{HOST}:{port}"',
                "",
            ]
        for dial, to in self.links:
            lines += ["[[links]]", f'dial = "{dial}"', f'to = "{to}"', ""]
        (self.nodes[name].data_dir / "federation.toml").write_text("\n".join(lines), encoding="utf-8")

    def start(self, name: str) -> None:
        node = self.nodes[name]
        env = {
            **os.environ,
            "RHIZOME_DATA_DIR": str(node.data_dir),
            "RHIZOME_SECRET_KEY": secrets.token_hex(32),
            "RHIZOME_PLAN_INTERVAL_S": "5",
            "RHIZOME_FED_INTERVAL_S": "2",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        for key in ("RHIZOME_MQTT_URL", "RHIZOME_DATABASE_URL", "RHIZOME_MQTT_PASSWORD_FILE"):
            env.pop(key, None)
        from gateway.store.region import sample_region_path

        cmd = [
            sys.executable, "-m", "gateway.process.cli", "node", "run", "--name", name,
            "--federation", str(node.data_dir / "federation.toml"), "--region", str(sample_region_path()),
            "--port", str(node.dashboard_port),
        ]  # fmt: skip
        log = node.log_path.open("ab")
        node.process = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        node = self.nodes[name]
        deadline = time.monotonic() + timeout
        while not port_open(HOST, node.dashboard_port, timeout=0.2):
            assert node.process is not None and node.process.poll() is None, node.log()
            assert time.monotonic() < deadline, node.log()
            time.sleep(0.2)

    def hand_over_passwords(self) -> None:
        """What the operators do once: each listener gives its dialers their account's password."""
        for dial, to in self.links:
            target = self.nodes[dial].data_dir / "federation" / f"{to}.password"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(self.nodes[to].data_dir / "secrets" / f"node.{dial}.password", target)

    def kill(self, name: str) -> None:
        process = self.nodes[name].process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self, name: str) -> None:
        process = self.nodes[name].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def isolate(self, name: str) -> None:
        for (dial, to), cable in self.cables.items():
            if name in (dial, to):
                cable.cut()

    def reconnect(self, name: str) -> None:
        for (dial, to), cable in self.cables.items():
            if name in (dial, to):
                cable.mend()

    def close(self) -> None:
        for name in self.nodes:
            self.stop(name)
        for cable in self.cables.values():
            cable.close()
        for node in self.nodes.values():
            if node.engine is not None:
                node.engine.dispose()


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, why: Callable[[], str] = lambda: ""
) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{why()}")


def started(fed: Federation) -> Iterator[Federation]:
    """Start every node, hand the passwords over and wait until every link is up."""
    try:
        for name in fed.nodes:
            fed.start(name)
        for name in fed.nodes:
            fed.wait_ready(name)
        fed.hand_over_passwords()
        for name, node in fed.nodes.items():
            wait_until(
                lambda node=node: (ups := node.links_up()) and all(ups.values()),
                60,
                f"{name}'s links up",
                node.log,
            )
        yield fed
    finally:
        fed.close()
