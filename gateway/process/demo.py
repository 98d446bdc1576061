"""`rhizome demo`: the whole system on one machine (broker, gateway, devices, planner, dashboard).

Each part runs as its own `rhizome` subprocess, exactly as in production; this module only supervises them,
so the gateway still imports neither the planner nor the dashboard.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select

from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract import clock
from gateway.process.demo_accounts import (
    demo_community,
    demo_logins,
    finish_saving,
    sign_in_block,
    start_saving,
)
from gateway.process.demo_world import WorldBridge, demo_scenario, write_scenario
from gateway.process.procutil import free_port, port_open, wait_for_port
from gateway.process.settings import Settings, to_env
from gateway.process.signals import stop_on_signals
from gateway.process.supervisor import Supervisor
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Community, Device, Reading, utcnow
from gateway.store.region import load_region, read_region, sample_region_path
from gateway.store.sample_board import post_sample_tasks, set_sample_goals

log = logging.getLogger(__name__)


def run_demo(
    settings: Settings,
    *,
    region: Path | None = None,
    port: int | None = None,
    speed: float = 60.0,
    embedded_broker: Literal["auto", "mosquitto", "amqtt"] = "auto",
    exit_after: float | None = None,
    first_fault: float = 600.0,
) -> int:
    """Bring the system up, print the dashboard URL and a sign-in per role, and run until Ctrl-C (or for
    `exit_after` seconds). The demo scenario's first fault comes `first_fault` simulated seconds in."""
    started = time.monotonic()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = stop_on_signals()
    broker: EmbeddedBroker | None = None
    supervisor: Supervisor | None = None
    engine = None
    world: WorldBridge | None = None
    try:
        if settings.mqtt_url is None:
            account = BrokerAccount("rhizome-demo", secrets.token_urlsafe(16))
            broker = EmbeddedBroker(data_dir / "broker", [account], prefer=embedded_broker)
            broker.start()
            settings = settings.with_overrides(mqtt_url=broker.url(account), mqtt_protocol=broker.protocol)
            settings = replace(settings, mqtt_password=None, mqtt_password_file=None)  # the URL has it
            log.info(
                "embedded %s broker (MQTT %s) on 127.0.0.1:%s", broker.kind, broker.protocol, broker.port
            )
        region_path = region or sample_region_path()
        engine = make_engine(settings.effective_database_url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            load_region(session, read_region(region_path))
            posted = post_sample_tasks(session, utcnow())
            goals = set_sample_goals(session, utcnow())
            community = demo_community(session)
            logins = demo_logins(session, community)
            scenario = write_scenario(
                data_dir / "demo-scenario.json", demo_scenario(session, community.id, first_fault)
            )
        log.info("the board has %s sample tasks in every sector, %s sector goals this month", posted, goals)
        chosen = port or settings.dashboard_port
        if port is None and port_open(settings.dashboard_host, chosen):
            chosen = free_port(settings.dashboard_host)
        settings = settings.with_overrides(dashboard_port=chosen, data_dir=data_dir)
        env = {**os.environ, **to_env(settings), "PYTHONUNBUFFERED": "1"}
        # People live in the simulated region too: routes, pledges per week and declines for 7 days run on
        # the devices' clock (1 real minute = 1 simulated hour at speed 60), the same in every process.
        env.setdefault(clock.ENV, clock.simulated(utcnow(), speed).encode())
        world = WorldBridge(settings.mqtt(), sessions)
        world.start()
        supervisor = Supervisor(env, data_dir / "logs")
        ready_file = data_dir / "gateway.ready"
        ready_file.unlink(missing_ok=True)
        supervisor.start("gateway", "gateway", "--ready-file", str(ready_file))
        _wait_for(lambda: ready_file.exists(), 30, "gateway subscription", supervisor)
        simulate = ["devices", "simulate", "--region", str(region_path), "--speed", str(speed)]
        simulate += ["--scenario", str(scenario), "--control"]  # faults to repair; goods drivers move
        if broker is not None and broker.kind == "amqtt":
            # amqtt verifies an Argon2 hash per CONNECT: hundreds of device connections take it minutes.
            simulate += ["--mode", "multiplexed", "--connections", "4"]
        supervisor.start("devices", *simulate)
        supervisor.start("planner", "plan", "--loop")
        supervisor.start("dashboard", "dashboard", "--host", settings.dashboard_host, "--port", str(chosen))
        wait_for_port(settings.dashboard_host, chosen, 60)
        url = f"http://{settings.dashboard_host}:{chosen}/"
        print(f"\nRhizome demo ready in {time.monotonic() - started:.1f} s: open {url}  (Ctrl-C to stop)\n")
        sys.stdout.flush()
        # Saved once the rest is up, so hashing four passwords never slows the start on a small machine.
        finish_saving(start_saving(logins, env))
        print(sign_in_block(url, logins) + "\n")
        sys.stdout.flush()
        return _watch(supervisor, engine, stop, exit_after)
    finally:
        if world is not None:
            world.stop()
        if supervisor is not None:
            supervisor.stop_all()
        if broker is not None:
            broker.stop()
        if engine is not None:
            engine.dispose()
        log.info("demo stopped")


def _wait_for(condition: Any, timeout: float, what: str, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        dead = supervisor.dead()
        if dead:
            raise OSError(f"{dead[0].name} exited while waiting for {what}; see {dead[0].log_path}")
        if time.monotonic() > deadline:
            raise OSError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _watch(supervisor: Supervisor, engine: Any, stop: threading.Event, exit_after: float | None) -> int:
    """Print a status line every 10 s; stop on a signal, on `exit_after`, or when a child dies."""
    sessions = make_session_factory(engine)
    deadline = time.monotonic() + exit_after if exit_after else None
    while not stop.wait(10.0 if deadline is None else min(10.0, max(0.1, deadline - time.monotonic()))):
        dead = supervisor.dead()
        if dead:
            log.error(
                "%s exited unexpectedly (code %s); see %s",
                dead[0].name,
                dead[0].process.returncode,
                dead[0].log_path,
            )
            return 1
        with sessions() as session:
            readings = session.scalar(select(func.count()).select_from(Reading))
            by_state = session.execute(select(Device.state, func.count()).group_by(Device.state))
            states = {state: n for state, n in by_state}
            communities = session.scalar(select(func.count()).select_from(Community))
        log.info("status: %s communities, %s readings stored, devices %s", communities, readings, states)
        if deadline is not None and time.monotonic() >= deadline:
            break
    return 0
