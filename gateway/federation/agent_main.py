"""`rhizome node federate`: the node's federation agent as a process of its own."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.target import MqttTarget
from gateway.federation.directory import read_federation
from gateway.federation.identity import check_key, node_name, peer_password_reader
from gateway.process.settings import Settings
from gateway.process.signals import stop_on_signals
from gateway.store.db import make_engine, make_session_factory

if TYPE_CHECKING:
    from gateway.federation.agent import Agent

log = logging.getLogger(__name__)


def build_agent(settings: Settings, home: MqttTarget, sessions: sessionmaker[Session]) -> Agent:
    """This node's agent on its own store and home broker account, not yet started."""
    from gateway.federation.agent import Agent, AgentConfig
    from gateway.federation.node_facts import NodeDuties, NodeRules

    if settings.federation_file is None:
        raise ValueError("the agent needs the federation file: RHIZOME_FEDERATION_FILE")
    federation = read_federation(settings.federation_file)
    key = check_key(settings, federation)
    name = node_name(settings)
    rules = NodeRules(
        auto_accept_kg=settings.node_auto_accept_kg, help_after_s=settings.node_help_after_min * 60
    )
    duties = NodeDuties(name, settings.communities, rules, every_s=min(10.0, settings.fed_interval_s))
    config = AgentConfig(
        name,
        home,
        beat_s=federation.beat_s,
        resend_s=max(1.0, 2 * federation.beat_s),
        password_for=peer_password_reader(settings.data_dir),
    )
    return Agent(config, federation, key, sessions, on_tick=duties)


def log_stats(agent: Agent) -> None:
    """One line of what the agent did so far."""
    s = agent.stats
    log.info(
        "federation %s: %s facts stored, %s duplicates, %s refused, %s sent; holder %s",
        agent.name,
        s.stored,
        s.duplicates,
        s.rejected,
        s.sent_facts,
        agent.holder(),
    )


def federate(settings: Settings) -> int:
    """Run this node's federation agent until a signal."""
    engine = make_engine(settings.effective_database_url)
    agent = build_agent(settings, settings.mqtt(), make_session_factory(engine))
    stop = stop_on_signals()
    agent.start()
    try:
        while not stop.wait(30.0):
            log_stats(agent)
    finally:
        agent.stop()
        engine.dispose()
    return 0
