"""The one paho-mqtt 2.x client factory: protocol version, credentials, TLS, sessions, flow control.

Gateway, devices and benchmarks all build their clients here, so a broker URL means the same thing to each.
It depends only on the contract's `MqttTarget` and paho (devices may import it).
"""

from __future__ import annotations

import ssl
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.contract.errors import Unavailable
from gateway.contract.target import MqttTarget

# (min, max) seconds between paho's own reconnect attempts (loop_start/loop_forever), doubling from min;
# paho's default max is 120 s. Clients that reconnect with their own backoff (devices.link) pass None.
RECONNECT_DELAY_S: Final = (1, 30)


class MqttError(Unavailable):
    """The broker could not be reached or refused us."""


def make_client(
    target: MqttTarget,
    client_id: str,
    *,
    persistent: bool = False,
    manual_ack: bool = False,
    max_inflight: int | None = None,
    max_queued: int | None = None,
    reconnect_delay: tuple[int, int] | None = RECONNECT_DELAY_S,
) -> mqtt.Client:
    """A client for `target`; `persistent` keeps the session (and queued QoS 1) across reconnects.

    `max_inflight`/`max_queued` bound paho's unacknowledged and waiting QoS 1 messages (paho's defaults
    when None); `reconnect_delay` is (min, max) seconds for paho's own reconnects, None keeps paho's.
    """
    v5 = target.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(ca_certs=target.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    if reconnect_delay is not None:
        client.reconnect_delay_set(min_delay=reconnect_delay[0], max_delay=reconnect_delay[1])
    if max_inflight is not None:
        client.max_inflight_messages_set(max_inflight)
    if max_queued is not None:
        client.max_queued_messages_set(max_queued)
    return client


def connect_properties(
    target: MqttTarget, session_expiry_s: int, receive_maximum: int | None = None
) -> Properties | None:
    """MQTT v5 CONNECT properties keeping the session for `session_expiry_s` (None on 3.1.1); with
    `receive_maximum`, the broker sends at most that many unacknowledged QoS 1 messages."""
    if target.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


def connect(
    client: mqtt.Client,
    target: MqttTarget,
    *,
    session_expiry_s: int = 0,
    keepalive: int = 30,
    receive_maximum: int | None = None,
) -> None:
    """Start connecting (the network loop must run); clean_start is False when a session is kept."""
    kwargs: dict[str, Any] = {}
    if target.protocol == "5":
        kwargs["clean_start"] = session_expiry_s == 0
        kwargs["properties"] = connect_properties(target, session_expiry_s, receive_maximum)
    try:
        client.connect_async(target.host, target.port, keepalive=keepalive, **kwargs)
    except (OSError, ValueError) as exc:
        raise MqttError(f"cannot connect to {target.host}:{target.port}: {exc}") from exc
