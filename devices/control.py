"""Simulation control over MQTT: what happens to simulated devices in the world while the simulator runs.

A crew repairing a box, or a driver unloading goods at a store, is not something a device reports by itself;
in a simulation someone has to tell the simulator when it happens. `rhizome devices simulate --control`
subscribes to `rhizome/v1/sim/<device>` (gateway.contract.topics.sim_control_topic) and applies:

- `{"action": "repair"}`: every fault of the device ends now (the device then reads normal by its physics);
- `{"action": "receive", "goods": {"rice": 40, "drinking-water": -500}}`: stock arrived or left (a stock box).

The topic is outside the gateway's upstream filter, so the store never sees these messages.
"""

from __future__ import annotations

import json
import logging
import queue
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from gateway.contract.client import make_client
from gateway.contract.target import MqttTarget
from gateway.contract.topics import QOS, ROOT, SIM_CONTROL_FILTER, is_slug

log = logging.getLogger(__name__)
ACTIONS = ("repair", "receive")


@dataclass(frozen=True)
class Command:
    """One control message for one device."""

    device: str
    action: str
    goods: dict[str, float] = field(default_factory=dict)


def parse_command(topic: str, payload: bytes) -> Command:
    """A Command from a control message; ValueError says what is wrong."""
    prefix = f"{ROOT}/sim/"
    device = topic[len(prefix) :] if topic.startswith(prefix) else ""
    if not is_slug(device):
        raise ValueError(f"control topic {topic[:80]!r} does not name a device")
    try:
        body: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"control message for {device} is not JSON") from exc
    if not isinstance(body, dict) or body.get("action") not in ACTIONS:
        raise ValueError(f"control message for {device} needs an action: one of {', '.join(ACTIONS)}")
    goods: dict[str, float] = {}
    if body["action"] == "receive":
        raw = body.get("goods")
        if not isinstance(raw, dict) or not raw:
            raise ValueError(f"receive for {device} needs goods: {{slug: quantity}}")
        for good, qty in raw.items():
            if not is_slug(good) or isinstance(qty, bool) or not isinstance(qty, int | float):
                raise ValueError(f"receive for {device}: {good!r} needs a numeric quantity")
            goods[good] = float(qty)
    return Command(device, body["action"], goods)


class ControlInbox:
    """A subscription to the control topics; commands wait in a queue for the simulator's loop to apply."""

    def __init__(self, target: MqttTarget, client_id: str = "rhizome-sim-control") -> None:
        self.target = target
        self.queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.rejected = 0
        self.client = make_client(target, client_id, max_inflight=20, max_queued=0, reconnect_delay=None)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def start(self) -> None:
        """Connect (retrying in the background) and subscribe."""
        self.client.connect_async(self.target.host, self.target.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def pending(self) -> list[Command]:
        """Every command received since the last call, in arrival order."""
        commands = []
        while True:
            try:
                commands.append(self.queue.get_nowait())
            except queue.Empty:
                return commands

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(SIM_CONTROL_FILTER, qos=QOS)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self.queue.put(parse_command(message.topic, bytes(message.payload)))
        except ValueError as exc:
            self.rejected += 1
            log.warning("control message ignored: %s", exc)
