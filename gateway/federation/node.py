"""`rhizome node run`: one community node on one small box: broker, gateway, planner, dashboard and the
federation agent, each its own process with its own broker account, on the node's own store.

A node's store holds the whole region's places (so a shipment to a neighbour has somewhere to go) but only
its own communities' devices, members, stock and needs: it plans, assigns and alerts for them alone, and
learns about the rest of the region from facts. Nothing here needs any other node to be reachable.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.broker.accounts import ProvisionError, provision, service_topics, unprovisioned_devices
from gateway.broker.embedded import EmbeddedBroker
from gateway.broker.files import write_broker_files
from gateway.contract import clock
from gateway.contract.federation import inbound_topic, outbound_topic
from gateway.contract.target import MqttTarget
from gateway.federation.directory import Federation, read_federation
from gateway.federation.keys import KEY_FILE, NodeKey
from gateway.process.demo import Supervisor
from gateway.process.procutil import wait_for_port
from gateway.process.settings import Settings, to_env
from gateway.process.signals import stop_on_signals
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Community, utcnow
from gateway.store.region import load_region, read_region

log = logging.getLogger(__name__)
PROCESSES = ("gateway", "planner", "dashboard", "federation")  # each with its own broker account
PEER_PASSWORDS = "federation"  # <data_dir>/federation/<peer>.password: node.<us> on that peer's broker


def node_region(data: dict[str, Any], communities: Sequence[str]) -> dict[str, Any]:
    """The region file as one node loads it: every community and site (places to ship to), but devices,
    members, stock and needs only for the node's own communities."""
    mine = set(communities)
    known = {c["slug"] for c in data.get("communities", [])}
    missing = mine - known
    if missing:
        raise ValueError(f"communities not in the region file: {sorted(missing)}")
    out = copy.deepcopy(data)
    for community in out["communities"]:
        if community["slug"] in mine:
            continue
        community["needs"] = {}
        for site in community.get("sites", []):
            site["devices"] = []
            site["stock"] = {}
    out["members"] = [m for m in out.get("members", []) if m.get("community") in mine]
    return out


@dataclass(frozen=True)
class NodeAccounts:
    """The broker URL each of the node's processes connects with (password in the URL: only on loopback)."""

    urls: dict[str, str]


def peer_password_reader(data_dir: Path) -> Any:
    """password_for(peer): node.<us>'s password on that peer's broker, read from the node's data dir (or
    RHIZOME_FED_PASSWORD for every peer), each time the agent connects."""

    def password_for(peer: str) -> str | None:
        path = data_dir / PEER_PASSWORDS / f"{peer}.password"
        try:
            return path.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError):
            return os.environ.get("RHIZOME_FED_PASSWORD")

    return password_for


def prepare_node(settings: Settings, federation: Federation, region: Path | None) -> None:
    """Migrate the store, load the region for this node on first start, and provision the broker accounts
    the node needs (its processes, its devices, and each peer that dials it). Idempotent."""
    name = _name(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        upgrade(engine)
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            if not session.scalar(select(func.count()).select_from(Community)):
                if region is None:
                    raise ValueError("the node's store is empty: give --region FILE on the first start")
                load_region(session, node_region(read_region_data(region), settings.communities))
            for device in unprovisioned_devices(session):
                issued = provision(session, "device", device)
                if issued is not None:
                    _keep_secret(settings.data_dir, issued.username, issued.password)
            for peer, dials in federation.peers_of(name):
                if not dials:
                    issued = _provision_quietly(session, "node", peer, local_node=name)
                    if issued is not None:
                        _keep_secret(settings.data_dir, issued.username, issued.password)
                        log.warning(
                            "peer %s dials this node: hand it secrets/%s.password", peer, issued.username
                        )
    finally:
        engine.dispose()


def read_region_data(path: Path) -> dict[str, Any]:
    """The region file as plain data (checked by the same reader `rhizome region load` uses)."""
    return dict(read_region(path))


def _provision_quietly(session: Any, kind: Any, key: str, **kwargs: Any) -> Any:
    try:
        return provision(session, kind, key, **kwargs)
    except ProvisionError as exc:
        raise ValueError(str(exc)) from exc


def _keep_secret(data_dir: Path, username: str, password: str) -> None:
    """Keep a new account's password in <data_dir>/secrets/<username>.password (owner-only) for the operator
    to hand over: to the device, or to the peer node that dials this one."""
    directory = data_dir / "secrets"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    fd = os.open(directory / f"{username}.password", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")


def _name(settings: Settings) -> str:
    if not settings.node_name:
        raise ValueError("a node needs its name: --name or RHIZOME_NODE_NAME")
    return settings.node_name


def issue_process_accounts(settings: Settings, host: str, port: int) -> NodeAccounts:
    """Fresh passwords for the node's own processes at every start (they live in this supervisor's memory
    and its children's environment only), then the broker's files from the store."""
    name = _name(settings)
    engine = make_engine(settings.effective_database_url)
    urls: dict[str, str] = {}
    try:
        with make_session_factory(engine).begin() as session:
            for process in PROCESSES:
                if process == "federation":
                    topics = service_topics([inbound_topic(name, "+")], [outbound_topic(name, "+")])
                    issued = _rotate(session, "service", f"federation-{name}", topics=topics)
                else:
                    issued = _rotate(session, "gateway", f"{process}-{name}")
                urls[process] = f"mqtt://{issued.username}:{issued.password}@{host}:{port}"
            write_broker_files(session, settings.effective_broker_dir)
    finally:
        engine.dispose()
    return NodeAccounts(urls)


def _rotate(session: Any, kind: Any, key: str, **kwargs: Any) -> Any:
    issued = provision(session, kind, key, **kwargs)
    if issued is None:
        issued = provision(session, kind, key, rotate=True, **kwargs)
    assert issued is not None
    return issued


def check_key(settings: Settings, federation: Federation) -> NodeKey:
    """The node's key, created on first use; it must be the one the federation file lists for the node."""
    name = _name(settings)
    key = NodeKey.load_or_create(settings.data_dir / KEY_FILE)
    entry = federation.nodes.get(name)
    if entry is None:
        raise ValueError(f"node {name!r} is not in the federation file; add:\n{node_entry(name, key, None)}")
    if entry.public_key != key.public:
        raise ValueError(
            f"the federation file lists another key for {name!r} than {settings.data_dir / KEY_FILE}; "
            f"its entry should read:\n{node_entry(name, key, entry.broker)}"
        )
    return key


def node_entry(name: str, key: NodeKey, broker: str | None) -> str:
    """The node's table for the federation file."""
    broker_line = f'broker = "{broker}"' if broker else 'broker = "mqtt://<address peers reach>:1883"'
    return f'[nodes.{name}]\npublic_key = "{key.public}"\n{broker_line}\n'


def run_node(settings: Settings, region: Path | None, port: int | None, exit_after: float | None) -> int:
    """Bring the node up and run until a signal (or `exit_after` seconds)."""
    started = time.monotonic()
    if settings.federation_file is None:
        raise ValueError("a node needs the federation file: --federation FILE or RHIZOME_FEDERATION_FILE")
    federation = read_federation(settings.federation_file)
    settings = settings.with_overrides(data_dir=settings.data_dir.resolve())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    check_key(settings, federation)
    name = _name(settings)
    listen = MqttTarget.from_url(federation.nodes[name].broker or "mqtt://127.0.0.1:1883")
    prepare_node(settings, federation, region)
    accounts = issue_process_accounts(settings, "127.0.0.1", listen.port)
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
        env.setdefault(clock.ENV, clock.simulated(utcnow(), 1.0).encode())
        supervisor = Supervisor(env, settings.data_dir / "logs")
        ready = settings.data_dir / "gateway.ready"
        ready.unlink(missing_ok=True)
        _start(
            supervisor,
            "gateway",
            accounts,
            "gateway",
            "--client-id",
            f"gateway-{name}",
            "--ready-file",
            str(ready),
        )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if supervisor.dead() or time.monotonic() > deadline:
                raise OSError(f"the node's gateway did not start; see {settings.data_dir / 'logs'}")
            time.sleep(0.1)
        _start(supervisor, "planner", accounts, "plan", "--loop")
        _start(supervisor, "federation", accounts, "node", "federate")
        _start(
            supervisor,
            "dashboard",
            accounts,
            "dashboard",
            "--host",
            settings.dashboard_host,
            "--port",
            str(chosen),
        )
        wait_for_port(settings.dashboard_host, chosen, 30)
        print(
            f"node {name} ready in {time.monotonic() - started:.1f} s: broker {listen.host}:{listen.port}, "
            f"dashboard http://{settings.dashboard_host}:{chosen}/",
            flush=True,
        )
        deadline_at = time.monotonic() + exit_after if exit_after else None
        while not stop.wait(1.0):
            dead = supervisor.dead()
            if dead:
                log.error(
                    "%s exited (code %s); see %s", dead[0].name, dead[0].process.returncode, dead[0].log_path
                )
                return 1
            if deadline_at is not None and time.monotonic() >= deadline_at:
                break
        return 0
    finally:
        if supervisor is not None:
            supervisor.stop_all()
        broker.stop()


def _start(supervisor: Supervisor, process: str, accounts: NodeAccounts, *args: str) -> None:
    supervisor.env["RHIZOME_MQTT_URL"] = accounts.urls[process]
    supervisor.start(process, *args)


def federate(settings: Settings, beat_s: float | None = None) -> int:
    """Run this node's federation agent until a signal."""
    from gateway.federation.agent import Agent, AgentConfig
    from gateway.federation.node_facts import NodeDuties, NodeRules

    if settings.federation_file is None:
        raise ValueError("the agent needs the federation file: RHIZOME_FEDERATION_FILE")
    federation = read_federation(settings.federation_file)
    key = check_key(settings, federation)
    name = _name(settings)
    engine = make_engine(settings.effective_database_url)
    sessions = make_session_factory(engine)
    rules = NodeRules(
        auto_accept_kg=settings.node_auto_accept_kg, help_after_s=settings.node_help_after_min * 60
    )
    duties = NodeDuties(name, settings.communities, rules, every_s=min(10.0, settings.fed_interval_s))
    config = AgentConfig(
        name,
        settings.mqtt(),
        beat_s=beat_s or federation.beat_s,
        resend_s=max(1.0, 2 * (beat_s or federation.beat_s)),
        password_for=peer_password_reader(settings.data_dir),
    )
    agent = Agent(config, federation, key, sessions, on_tick=duties)
    stop = stop_on_signals()
    agent.start()
    try:
        while not stop.wait(30.0):
            s = agent.stats
            log.info(
                "federation %s: %s facts stored, %s duplicates, %s refused, %s sent; holder %s",
                name,
                s.stored,
                s.duplicates,
                s.rejected,
                s.sent_facts,
                agent.holder(),
            )
    finally:
        agent.stop()
        engine.dispose()
    return 0
