"""How simulated devices reach the broker: one connection each (per-device) or K shared ones (multiplexed).

Both fleets hand out `DeviceChannel`s (identity, persisted seq/session, QoS 1 publishing) and share the
clean-stop sequence: retained clean `offline` for every device, bounded wait for the acknowledgements,
then DISCONNECT. Only per-device mode has a last will per device: a will belongs to a connection, so a
crashed multiplexed simulator leaves its devices' retained state `online` until the gateway finds them stale.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Protocol

from devices.client import DeviceChannel, DeviceClient
from devices.link import Link
from devices.netloop import NetworkLoop
from devices.regionfile import DeviceSpec
from devices.state import DeviceState
from gateway.protocol import MqttTarget

log = logging.getLogger(__name__)
SIM_SEQ_BLOCK: Final = 1000  # simulated devices are not worth a state-file write per 100 messages


class Fleet(Protocol):
    """The connections of a simulator run."""

    channels: list[DeviceChannel]

    def start(self) -> None: ...

    def connected(self) -> int: ...

    def backlog(self) -> int: ...

    def last_error(self) -> str | None: ...

    def stop(self, timeout: float) -> None: ...


class _Base:
    """Shared bookkeeping of both modes."""

    channels: list[DeviceChannel]
    links: list[Link]

    def connected(self) -> int:
        """Devices whose connection is up."""
        return sum(1 for channel in self.channels if channel.connected)

    def backlog(self) -> int:
        """Unacknowledged messages on live connections (dead ones just queue until they return)."""
        return sum(link.pending for link in self.links if link.connected)

    def last_error(self) -> str | None:
        """Why connecting failed, for the error message when nothing connects."""
        return next((link.last_error for link in self.links if link.last_error), None)

    def _flush_all(self, deadline: float) -> None:
        for link in self.links:
            link.flush(max(0.0, deadline - time.monotonic()))
        unacked = sum(link.pending for link in self.links)
        if unacked:
            log.warning("%s messages unacknowledged at stop", unacked)


class PerDeviceFleet(_Base):
    """A DeviceClient (own connection, birth and will) per device, all driven by one network thread."""

    def __init__(self, target: MqttTarget, specs: Sequence[DeviceSpec], state_dir: Path) -> None:
        """Create the clients (loading and bumping each device's session); nothing connects yet."""
        self.loop = NetworkLoop(name="rhizome-devices-net")
        self.clients = [
            DeviceClient(
                target,
                spec.community,
                spec.site,
                spec.slug,
                state_dir=state_dir,
                loop=self.loop,
                seq_block=SIM_SEQ_BLOCK,
                durable=False,
            )
            for spec in specs
        ]
        self.channels = [client.channel for client in self.clients]
        self.links = [channel.link for channel in self.channels]
        for link in self.links:
            link.event_level = logging.DEBUG  # hundreds of identical lines; progress logs the counts

    def start(self) -> None:
        """Start connecting every device in the background."""
        self.loop.start()
        for client in self.clients:
            client.start(wait=None)

    def stop(self, timeout: float) -> None:
        """Clean stop of every device, all in parallel within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        announced = sum(1 for client in self.clients if client.announce_offline())
        self._flush_all(deadline)
        for client in self.clients:
            client.begin_close()
        unclean = sum(not c.finish_close(max(0.0, deadline - time.monotonic())) for c in self.clients)
        self.loop.stop(max(0.5, deadline - time.monotonic()))
        log.info("%s of %s devices announced a clean offline", announced, len(self.clients))
        if unclean:
            log.warning("%s devices did not disconnect cleanly within %.1f s", unclean, timeout)


class MultiplexedFleet(_Base):
    """K connections publish for all devices; every device still has its own session, seq and birth."""

    def __init__(
        self, target: MqttTarget, specs: Sequence[DeviceSpec], state_dir: Path, connections: int
    ) -> None:
        """Spread the devices round-robin over `connections` links (no will: a will names one device)."""
        if connections < 1:
            raise ValueError(f"--connections must be at least 1, got {connections}")
        self.loop = NetworkLoop(name="rhizome-devices-net")
        run_id = secrets.token_hex(3)  # two simulators must not take over each other's connections
        count = min(connections, len(specs)) or 1
        share = -(-len(specs) // count)
        self.links = [
            Link(
                target,
                f"rhizome-sim-{run_id}-{i}",
                self.loop,
                max_inflight=100,
                max_queued=max(10_000, 100 * share),
            )
            for i in range(count)
        ]
        self.channels = []
        for i, spec in enumerate(specs):
            state = DeviceState(
                state_dir / f"{spec.slug}.json", spec.slug, block=SIM_SEQ_BLOCK, durable=False
            )
            self.channels.append(
                DeviceChannel(spec.community, spec.site, spec.slug, state, self.links[i % count])
            )
        for i, link in enumerate(self.links):
            link.on_connected(_births(self.channels[i::count]))

    def start(self) -> None:
        """Open the K connections in the background (each publishes its devices' births on every connect)."""
        self.loop.start()
        for link in self.links:
            link.open()

    def stop(self, timeout: float) -> None:
        """Retained clean `offline` for every device, acknowledgements, then DISCONNECT."""
        deadline = time.monotonic() + timeout
        announced = sum(1 for channel in self.channels if channel.connected and channel.offline())
        self._flush_all(deadline)
        for link in self.links:
            link.begin_close()
        for link in self.links:
            link.wait_closed(max(0.1, deadline - time.monotonic()))
        for channel in self.channels:
            channel.state.close()
        self.loop.stop(max(0.5, deadline - time.monotonic()))
        log.info("%s of %s devices announced a clean offline", announced, len(self.channels))


def _births(channels: list[DeviceChannel]) -> Callable[[], None]:
    """A connect hook publishing the births of the devices that share one connection."""

    def hook() -> None:
        for channel in channels:
            channel.birth()

    return hook
