"""The repair chain end to end: a scripted pump failure in the simulator gives one critical fault, one
repair task, and one alert on the chosen crew member's own topic; after the scripted repair the readings close
the task by themselves. Real broker and database in CI; rules with short durations so it runs in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.contract.client import connect, make_client
from gateway.contract.topics import member_alerts_topic
from gateway.ingest.service import GatewayService
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import Fault, Member, RepairTask, TaskEvent
from gateway.store.region import load_region
from logistics.service import assign_once
from tests.conftest import Broker, tiny_region_data
from tests.test_gateway_service import Running, wait_until

pytestmark = [pytest.mark.network, pytest.mark.slow]

# The bundled pump_failure rule with its durations shortened (60 s -> 1 s, clear after 300 s -> 2 s).
FAST_RULES = """
[[rule]]
name = "pump_failure"
title = "Pump running without flow"
device_kind = "pump"
kind = "threshold"
when = [["running", "==", true], ["flow_lpm", "<", 1.0]]
for_s = 1
clear_after_s = 2
severity = "critical"
skills = ["pump-mechanic"]
"""


def test_scripted_pump_failure_to_crew_alert_to_confirmed_repair(
    engine: Engine, database_url: str, broker: Broker, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    region = tiny_region_data(tag)
    pump = f"utuado{tag}-pump-1-pump"
    (tmp_path / "region.json").write_text(json.dumps(region))
    (tmp_path / "rules.toml").write_text(FAST_RULES)
    scenario = {
        "format": "rhizome-scenario/1",
        "events": [
            {"at": "20m", "device": pump, "event": "pump_failure"},
            {"at": "24h", "device": pump, "event": "repair"},
        ],
    }
    (tmp_path / "scenario.json").write_text(json.dumps(scenario))
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        load_region(session, region)
        member_id = session.scalars(select(Member.id).where(Member.name == "Ana")).one()

    alerts: list[dict[str, object]] = []
    listener = make_client(broker.target, f"crew-{tag}")
    listener.on_message = lambda _c, _u, message: alerts.append(json.loads(message.payload))
    listener.on_connect = lambda client, *_: client.subscribe(member_alerts_topic(member_id), qos=1)
    connect(listener, broker.target)
    listener.loop_start()

    settings = Settings(mqtt_url=broker.url, mqtt_protocol=broker.protocol, gateway_client_id=f"chain-{tag}")
    gateway = Running(
        GatewayService(settings, engine, session_expiry_s=0, rules_file=tmp_path / "rules.toml")
    )
    env = {**os.environ, "RHIZOME_MQTT_URL": broker.url, "RHIZOME_MQTT_PROTOCOL": broker.protocol}
    command = [
        sys.executable,
        "-m",
        "gateway.process.cli",
        "--data-dir",
        str(tmp_path),
        "devices",
        "simulate",
        "--region",
        str(tmp_path / "region.json"),
        "--scenario",
        str(tmp_path / "scenario.json"),
        "--community",
        f"utuado{tag}",
        "--speed",
        "3600",
        "--duration",
        "32",
        "--seed",
        "5",
    ]
    simulator = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:

        def task_open() -> bool:
            with Session(engine) as session:
                return session.scalar(select(RepairTask.id)) is not None

        # One simulated hour per second: the failure begins at 20 min, and shows once the controller runs the
        # pump (its tank has drained to the low mark, within hours), so well before the repair at 24 h.
        wait_until(task_open, timeout=24)
        run = assign_once(sessions, time_limit_s=10)  # what the planner loop does on the task event
        assert run.assigned == 1
        wait_until(lambda: len(alerts) >= 1, timeout=10)

        def task_closed() -> bool:
            with Session(engine) as session:
                return session.scalars(select(RepairTask.status)).one() == "closed"

        wait_until(task_closed, timeout=30)  # repaired at 24 s real; 2 s of normal flow confirm it
        output, _ = simulator.communicate(timeout=30)
        assert simulator.returncode == 0, output[-2000:]
    finally:
        if simulator.poll() is None:
            simulator.kill()
            simulator.communicate()
        gateway.close()
        listener.disconnect()
        listener.loop_stop()

    with Session(engine) as session:
        faults = session.scalars(select(Fault)).all()
        assert [(f.kind, f.severity, f.status) for f in faults] == [("pump_failure", "critical", "cleared")]
        task = session.scalars(select(RepairTask)).one()
        assert task.assigned_member_id == member_id and task.explanation
        events = list(
            session.scalars(
                select(TaskEvent.event).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id)
            )
        )
        assert events[0] == "created" and "assigned" in events and events[-2:] == ["confirmed", "closed"]
    kinds = [a.get("type") for a in alerts]
    assert kinds.count("fault_cleared") == 1 and len(alerts) == 2, alerts  # the assignment, then the fix
