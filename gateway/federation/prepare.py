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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.broker.accounts import ProvisionError, provision, service_topics, unprovisioned_devices
from gateway.broker.files import write_broker_files
from gateway.contract.federation import inbound_topic, outbound_topic
from gateway.contract.target import MqttTarget
from gateway.federation.directory import Federation, read_federation
from gateway.federation.identity import check_key, node_name
from gateway.process.settings import Settings
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Community
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
    return node_name(settings)


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


def prepare_for_run(settings: Settings, region: Path | None) -> dict[str, Any]:
    """Everything `node run` needs done in the store before the broker starts, in a process of its own so
    that the node's resident supervisor never loads the store: the key checked, the store migrated and
    loaded, the accounts provisioned and the broker files written. Returns the processes' broker URLs."""
    if settings.federation_file is None:
        raise ValueError("a node needs the federation file: --federation FILE or RHIZOME_FEDERATION_FILE")
    federation = read_federation(settings.federation_file)
    check_key(settings, federation)
    name = _name(settings)
    listen = MqttTarget.from_url(federation.nodes[name].broker or "mqtt://127.0.0.1:1883")
    prepare_node(settings, federation, region)
    accounts = issue_process_accounts(settings, "127.0.0.1", listen.port)
    return {"urls": accounts.urls}
