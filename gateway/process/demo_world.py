"""The demo's simulated world: its fault scenario, and what people record told to the simulated boxes.

A real stock box sees a driver load or unload goods; a simulated one only knows its own model, so its
next report would put back every pickup the ledger recorded (and take away every drop-off). The simulator
already takes such movements on its control topic (`rhizome devices simulate --control`, devices/control.py);
in the demo nobody sent them. `WorldBridge` is that somebody: it follows the stock ledger's delivery rows
and the repair tasks crews mark fixed, and tells the simulator, so the box's level continues from what the
ledger says and a repaired pump pumps again. It only reads the store and publishes on the control topic,
which the gateway never subscribes to.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.client import make_client
from gateway.contract.target import MqttTarget
from gateway.contract.topics import QOS, sim_control_topic
from gateway.store.models import Device, Fault, Good, RepairTask, Site, StockLedgerEntry
from gateway.store.models.vocab import LedgerSource, TaskStatus

log = logging.getLogger(__name__)
POLL_S = 0.25  # a stock report landing between a ledger move and its control message undoes it briefly


def demo_scenario(session: Session, community_id: int, first_fault: float = 600.0) -> dict[str, Any]:
    """The demo's fault scenario (rhizome-scenario/1): the community's first pump fails `first_fault`
    simulated seconds into the run and its first cold room stops cooling then too (either left out if the
    community has none). No scripted repair: a crew's "fixed" repairs them (WorldBridge).

    The fault rules count their `for_s` on the readings' own timestamps, which are real time even at a
    simulated speed: the pump's fault opens about a minute after it fails, the cold room's ten or so."""
    slugs = {
        kind: session.scalar(
            select(Device.slug)
            .join(Site, Site.id == Device.site_id)
            .where(Site.community_id == community_id, Device.kind == kind)
            .order_by(Device.slug)
            .limit(1)
        )
        for kind in ("pump", "cold_room")
    }
    events = []
    if slugs["pump"]:
        events.append({"at": first_fault, "device": slugs["pump"], "event": "pump_failure"})
    if slugs["cold_room"]:
        events.append({"at": first_fault, "device": slugs["cold_room"], "event": "cold_room_failure"})
    return {
        "format": "rhizome-scenario/1",
        "description": "rhizome demo: a pump fails and a cold room warms; the crew's 'fixed' repairs them",
        "events": events,
    }


def write_scenario(path: Path, scenario: dict[str, Any]) -> Path:
    """Write the scenario to `path` (re-written every run) and return it."""
    path.write_text(json.dumps(scenario, indent=1) + "\n", encoding="utf-8")
    return path


def stock_moves(session: Session, after_id: int) -> tuple[int, dict[str, dict[str, float]]]:
    """Delivery ledger rows after `after_id`, summed per stock device and good: (last id, moves).

    A move at a site without a stock box has no device to tell and is left out."""
    rows = session.execute(
        select(StockLedgerEntry.id, Device.slug, Good.slug, StockLedgerEntry.delta)
        .join(Good, Good.id == StockLedgerEntry.good_id)
        .join(Device, (Device.site_id == StockLedgerEntry.site_id) & (Device.kind == "stock"))
        .where(StockLedgerEntry.id > after_id, StockLedgerEntry.source == LedgerSource.DELIVERY.value)
        .order_by(StockLedgerEntry.id)
    ).all()
    last = rows[-1][0] if rows else after_id
    moves: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for _id, device, good, delta in rows:
        moves[device][good] += delta
    return last, {device: dict(goods) for device, goods in moves.items()}


def fixed_devices(session: Session, seen: set[int]) -> list[tuple[int, str]]:
    """(task id, device slug) of repair tasks a crew marked fixed that are not in `seen`."""
    rows = session.execute(
        select(RepairTask.id, Device.slug)
        .join(Fault, Fault.id == RepairTask.fault_id)
        .join(Device, Device.id == Fault.device_id)
        .where(RepairTask.status == TaskStatus.FIXED_PENDING.value)
    ).all()
    return [(task, device) for task, device in rows if task not in seen]


class WorldBridge:
    """Polls the store and publishes `receive` and `repair` control messages to the simulator."""

    def __init__(self, target: MqttTarget, sessions: sessionmaker[Session]) -> None:
        self.target, self.sessions = target, sessions
        self.client = make_client(target, "rhizome-demo-world", max_queued=0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-world", daemon=True)
        self._repaired: set[int] = set()
        with sessions() as session:  # only what happens from now on
            self._last_id = session.scalar(select(func.max(StockLedgerEntry.id))) or 0

    def start(self) -> None:
        """Connect (retrying in the background) and start polling."""
        self.client.connect_async(self.target.host, self.target.port, keepalive=30)
        self.client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and disconnect."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.tick()
            except Exception:  # a store hiccup must not end the demo; the next tick tries again
                log.exception("demo world: tick failed")

    def tick(self) -> int:
        """Publish what changed since the last tick; returns the number of messages sent."""
        with self.sessions() as session:
            last, moves = stock_moves(session, self._last_id)
            fixed = fixed_devices(session, self._repaired)
        sent = 0
        for device, goods in moves.items():
            body = {"action": "receive", "goods": goods}
            self.client.publish(sim_control_topic(device), json.dumps(body), qos=QOS)
            log.info("demo world: %s counts %s", device, goods)
            sent += 1
        for task, device in fixed:
            self.client.publish(sim_control_topic(device), json.dumps({"action": "repair"}), qos=QOS)
            log.info("demo world: task %s marked fixed, so %s is repaired", task, device)
            self._repaired.add(task)
            sent += 1
        self._last_id = last
        return sent
