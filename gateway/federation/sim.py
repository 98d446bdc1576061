"""Federations on one machine, for the tests and `bench/federation.py`: nodes with their own store and
real broker, linked through cables that can be cut (an uplink that fails)."""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho_client
from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session, sessionmaker

from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract.federation import node_account
from gateway.contract.target import MqttTarget
from gateway.federation.agent import Agent, AgentConfig
from gateway.federation.directory import Federation, Link, NodeEntry
from gateway.federation.keys import NodeKey
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import FedFact

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
READ = select.POLLIN


class Cable:
    """A TCP relay standing for the uplink between a node and a peer's broker: `cut()` drops every
    connection through it and refuses new ones until `mend()`, as a dead radio link would."""

    def __init__(self, target_port: int, host: str = HOST) -> None:
        self.host, self.target_port = host, target_port
        self._server = socket.create_server((host, 0))
        self.port = self._server.getsockname()[1]
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.bytes = 0
        threading.Thread(target=self._accept, name=f"cable-{self.port}", daemon=True).start()

    def cut(self) -> None:
        """Break the link now."""
        self._cut.set()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for sock in (a, b):
                _close(sock)

    def mend(self) -> None:
        """Let connections through again."""
        self._cut.clear()

    def close(self) -> None:
        """Stop relaying for good."""
        self._closed.set()
        self.cut()
        _close(self._server)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                inner, _ = self._server.accept()
            except OSError:
                return
            if self._cut.is_set():
                _close(inner)
                continue
            try:
                outer = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                _close(inner)
                continue
            outer.settimeout(None)
            with self._lock:
                self._pairs.append((inner, outer))
            for src, dst in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if self._cut.is_set():
                    break
                dst.sendall(data)
                self.bytes += len(data)
        except OSError:
            pass
        _close(src)
        _close(dst)


class _PollSelect:
    """What paho needs of the `select` module, on poll(): select() cannot watch a descriptor above 1023, and
    one process hosting some 45 nodes or more (three MQTT clients, cables and stores each) holds more."""

    error = select.error

    @staticmethod
    def select(
        rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any], timeout: float | None = None
    ) -> tuple[list[Any], list[Any], list[Any]]:
        if xlist:
            raise ValueError("only read and write lists are supported")
        poller = select.poll()
        wanted: list[dict[int, Any]] = [{}, {}]  # fd -> object, for reading and for writing
        for side, items in enumerate((rlist, wlist)):
            for obj in items:
                if obj is None:
                    raise TypeError("not a socket")
                fd = obj if isinstance(obj, int) else obj.fileno()
                if fd < 0:
                    raise ValueError("file descriptor cannot be a negative integer")
                wanted[side][fd] = obj
        for fd in wanted[0].keys() | wanted[1].keys():
            poller.register(
                fd, (select.POLLIN if fd in wanted[0] else 0) | (select.POLLOUT if fd in wanted[1] else 0)
            )
        events = poller.poll(None if timeout is None else max(0, int(timeout * 1000)))
        readable: list[Any] = []
        writable: list[Any] = []
        for fd, event in events:
            if fd in wanted[0] and event & (
                select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL
            ):
                readable.append(wanted[0][fd])
            if fd in wanted[1] and event & (select.POLLOUT | select.POLLHUP | select.POLLERR):
                writable.append(wanted[1][fd])
        return readable, writable, []


@contextlib.contextmanager
def many_sockets() -> Iterator[None]:
    """Let paho's clients in this process use any file descriptor (see _PollSelect), for large federations."""
    saved = paho_client.select
    paho_client.select = _PollSelect  # type: ignore[assignment]
    try:
        yield
    finally:
        paho_client.select = saved


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@dataclass
class SimNode:
    """One node of a simulated federation: its broker, store and agent."""

    name: str
    key: NodeKey
    broker: EmbeddedBroker
    account: BrokerAccount
    engine: Engine
    sessions: sessionmaker[Session]
    agent: Agent | None = None
    cables: dict[str, Cable] = field(default_factory=dict)  # peer dialled -> the cable to its broker

    def facts(self) -> set[tuple[str, int]]:
        """(origin, seq) of every signed fact this node holds."""
        with self.sessions() as session:
            rows = session.execute(sql_select(FedFact.origin, FedFact.seq).where(FedFact.sig.is_not(None)))
            return {(origin, seq) for origin, seq in rows}

    def count(self) -> int:
        """Rows in the fact table (duplicates would show here)."""
        with self.sessions() as session:
            return int(session.scalar(sql_select(func.count()).select_from(FedFact)) or 0)


class SimFederation:
    """Nodes on loopback, each with its own Mosquitto and SQLite store, linked as `links` says."""

    def __init__(
        self,
        workdir: Path,
        names: Iterable[str],
        links: Iterable[tuple[str, str]],
        *,
        beat_s: float = 1.0,
        resend_s: float = 2.0,
        lease_s: float = 5.0,
        tick_s: float = 0.2,
        database_url: str | None = None,
        on_tick: Callable[[str, Session], None] | None = None,
    ) -> None:
        """`on_tick(name, session)` runs in each agent's tick, in its transaction: a bench writes its facts
        there, as the agent's own store writes never wait for another writer's lock in one busy process."""
        self.workdir = workdir
        self.beat_s, self.resend_s, self.tick_s = beat_s, resend_s, tick_s
        self.on_tick = on_tick
        self.nodes: dict[str, SimNode] = {}
        names = list(names)
        for name in names:
            node_dir = workdir / name
            node_dir.mkdir(parents=True, exist_ok=True)
            account = BrokerAccount(f"home-{name}", secrets.token_urlsafe(12))
            peers = [
                BrokerAccount(node_account(other), _password(other, name)) for other in names if other != name
            ]
            broker = EmbeddedBroker(node_dir / "broker", [account, *peers], prefer="mosquitto")
            engine = make_engine(database_url or f"sqlite:///{node_dir / 'store.db'}")
            self.nodes[name] = SimNode(
                name, NodeKey.generate(), broker, account, engine, make_session_factory(engine)
            )
        self.links = tuple(Link(dial, to) for dial, to in links)
        self.lease_s = lease_s

    def start(self) -> None:
        """Start every broker, migrate every store, then start the agents."""
        for node in self.nodes.values():
            node.broker.start()
            upgrade(node.engine)
        for link in self.links:
            dialer, listener = self.nodes[link.dial], self.nodes[link.to]
            dialer.cables[link.to] = Cable(listener.broker.port)
        for node in self.nodes.values():
            self.start_agent(node.name)

    def federation_for(self, name: str) -> Federation:
        """The federation file as `name` reads it: brokers reached through `name`'s own cables."""
        node = self.nodes[name]
        entries = {}
        for other in self.nodes.values():
            cable = node.cables.get(other.name)
            broker = f"mqtt://{HOST}:{cable.port}" if cable else f"mqtt://{HOST}:{other.broker.port}"
            entries[other.name] = NodeEntry(other.name, other.key.public, broker)
        return Federation(entries, self.links, (), self.lease_s, min(self.beat_s, self.lease_s / 2))

    def start_agent(self, name: str) -> Agent:
        """(Re)start the agent of `name`."""
        node = self.nodes[name]
        home = MqttTarget(HOST, node.broker.port, node.account.username, node.account.password, False, "5")
        config = AgentConfig(
            name,
            home,
            beat_s=self.beat_s,
            resend_s=self.resend_s,
            tick_s=self.tick_s,
            password_for=functools.partial(_peer_password, name),
        )
        hook = None if self.on_tick is None else functools.partial(self.on_tick, name)
        node.agent = Agent(config, self.federation_for(name), node.key, node.sessions, on_tick=hook)
        node.agent.start()
        return node.agent

    def stop_agent(self, name: str) -> None:
        """Kill a node's agent (its store and broker stay)."""
        agent = self.nodes[name].agent
        if agent is not None:
            agent.stop()
            self.nodes[name].agent = None

    def isolate(self, name: str) -> None:
        """Cut every link of `name` (its uplinks and its neighbours' links to it)."""
        for cable in self._cables_of(name):
            cable.cut()

    def reconnect(self, name: str) -> None:
        """Mend every link of `name`."""
        for cable in self._cables_of(name):
            cable.mend()

    def _cables_of(self, name: str) -> list[Cable]:
        out = list(self.nodes[name].cables.values())
        out += [node.cables[name] for node in self.nodes.values() if name in node.cables]
        return out

    def converged(self, expected: int | None = None) -> bool:
        """Every node holds exactly the same signed facts (`expected` of them, when given)."""
        sets = [node.facts() for node in self.nodes.values()]
        same = all(s == sets[0] for s in sets)
        return same and (expected is None or len(sets[0]) == expected)

    def wait_converged(self, timeout: float, expected: int | None = None) -> float | None:
        """Seconds until every node holds the same facts (`expected` of them), or None after `timeout`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.converged(expected):
                return time.monotonic() - start
            time.sleep(0.2)
        return None

    def stop(self) -> None:
        """Stop agents, cables and brokers; dispose of the stores."""
        for node in self.nodes.values():
            if node.agent is not None:
                node.agent.stop()
                node.agent = None
        for node in self.nodes.values():
            for cable in node.cables.values():
                cable.close()
            node.broker.stop()
            node.engine.dispose()

    def __enter__(self) -> SimFederation:
        try:
            self.start()
        except BaseException:
            self.stop()  # what started must not outlive a failed start (brokers, log files, stores)
            raise
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


def _password(dialer: str, listener: str) -> str:
    """The simulated password of node-<dialer> on <listener>'s broker (a test secret, never a real one)."""
    return f"sim-{dialer}-{listener}"


def _peer_password(dialer: str, listener: str) -> str | None:
    return _password(dialer, listener)
