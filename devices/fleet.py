"""How simulated devices reach the broker: one connection each (per-device) or K shared ones (multiplexed).

Both fleets hand out `DeviceChannel`s (identity, persisted seq/session, spooled QoS 1 publishing through
one shared Forwarder) and share the clean-stop sequence: retained clean `offline` for every device, bounded
wait for the acknowledgements, then DISCONNECT. Only per-device mode has a last will per device: a will
belongs to a connection, so a crashed multiplexed simulator leaves its devices' retained state `online`
until the gateway finds them stale.

Faults of the connection (scenario events, see devices/faults.py) act on the fleet:

* per-device: a lost power or link drops the device's socket without DISCONNECT, so the broker publishes
  the will; power back is a reboot (the next session, a new will, a birth); link back is a reconnect that
  replays the spool. A power loss with a hanging link keeps the socket open: no will, just silence.
* multiplexed: the shared connection stays up, so the fleet publishes what the broker would (a retained
  `offline` without `clean`) and holds the device's messages in the spool until its link is back.
"""

from __future__ import annotations

import logging
import secrets
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Protocol

from devices.client import DeviceChannel, DeviceClient
from devices.forwarder import Forwarder
from devices.link import Link
from devices.netloop import NetworkLoop
from devices.regionfile import DeviceSpec
from devices.spool import DEFAULT_MAX_MESSAGES, Spool
from devices.state import DeviceState
from gateway.contract.target import MqttTarget

log = logging.getLogger(__name__)
SIM_SEQ_BLOCK: Final = 1000  # simulated devices are not worth a state-file write per 100 messages
SPOOL_FILE: Final = "simulator.spool.sqlite"
SPOOL_PER_DEVICE: Final = 200  # bound of the shared spool per simulated device


class Fleet(Protocol):
    """The connections of a simulator run."""

    channels: list[DeviceChannel]

    def start(self) -> None: ...

    def connected(self) -> int: ...

    def backlog(self) -> int: ...

    def spooled(self) -> int: ...

    def last_error(self) -> str | None: ...

    def power_off(self, index: int, *, drop: bool) -> None: ...

    def power_on(self, index: int) -> None: ...

    def link_down(self, index: int) -> None: ...

    def link_up(self, index: int) -> None: ...

    def stop(self, timeout: float) -> None: ...


def open_spool(state_dir: Path, devices: int) -> Spool:
    """The fleet's shared store-and-forward spool (not fsynced: it is a simulation)."""
    size = max(DEFAULT_MAX_MESSAGES, SPOOL_PER_DEVICE * devices)
    return Spool(state_dir / SPOOL_FILE, max_messages=size, durable=False)


class _Base:
    """Shared bookkeeping of both modes."""

    channels: list[DeviceChannel]
    links: list[Link]
    loop: NetworkLoop
    forwarder: Forwarder

    def _init_faults(self) -> None:
        self._powered = [True] * len(self.channels)
        self._link_ok = [True] * len(self.channels)

    def present(self, index: int) -> bool:
        """True unless the device lost its power or its link (scenario events)."""
        return self._powered[index] and self._link_ok[index]

    def connected(self) -> int:
        """Devices whose connection is up."""
        return sum(1 for channel in self.channels if channel.connected)

    def backlog(self) -> int:
        """Unacknowledged messages on live connections (dead ones just queue until they return)."""
        return sum(link.pending for link in self.links if link.connected) + self.forwarder.backlog()

    def spooled(self) -> int:
        """Messages in the store-and-forward spool, sent or not, not yet acknowledged."""
        return self.forwarder.spool.count()

    def last_error(self) -> str | None:
        """Why connecting failed, for the error message when nothing connects."""
        return next((link.last_error for link in self.links if link.last_error), None)

    def _drain_spool(self, deadline: float) -> None:
        """Wait (bounded) until the spooled readings of every present device are acknowledged.

        Before the clean `offline`: a reading arriving after it would tell the gateway the device is back.
        """
        absent = [c.device for i, c in enumerate(self.channels) if not self.present(i)]
        spool = self.forwarder.spool

        def drained() -> bool:
            return spool.count() - sum(spool.count(device) for device in absent) <= 0

        if any(link.connected for link in self.links):
            self.forwarder.wait_for(drained, max(0.0, deadline - time.monotonic()))

    def _flush_links(self, deadline: float) -> None:
        """Wait (bounded) for the acknowledgement of everything handed to the connections (the offlines)."""
        for link in self.links:
            link.flush(max(0.0, deadline - time.monotonic()))
        unacked = sum(link.pending for link in self.links)
        if unacked:
            log.warning("%s messages unacknowledged at stop", unacked)
        spool = self.forwarder.spool
        if spool.count():
            log.info("%s messages stay in the spool %s for the next run", spool.count(), spool.path)

    def _close_spool(self) -> None:
        self.forwarder.spool.close()


class PerDeviceFleet(_Base):
    """A DeviceClient (own connection, birth and will) per device, all driven by one network thread."""

    def __init__(self, target: MqttTarget, specs: Sequence[DeviceSpec], state_dir: Path) -> None:
        """Create the clients (loading and bumping each device's session); nothing connects yet."""
        self.loop = NetworkLoop(name="rhizome-devices-net")
        self.forwarder = Forwarder(open_spool(state_dir, len(specs)), self.loop)
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
                forwarder=self.forwarder,
            )
            for spec in specs
        ]
        self.channels = [client.channel for client in self.clients]
        self.links = [channel.link for channel in self.channels]
        for link in self.links:
            link.event_level = logging.DEBUG  # hundreds of identical lines; progress logs the counts
        self._init_faults()

    def start(self) -> None:
        """Start connecting every device in the background."""
        self.loop.start()
        for client in self.clients:
            client.start(wait=None)

    def power_off(self, index: int, *, drop: bool) -> None:
        """The device goes silent; with `drop` its socket dies too and the broker publishes the will.

        Its unsent readings stay in the spool until it is back, as a real box's would.
        """
        self._powered[index] = False
        self.forwarder.hold(self.channels[index].device)
        if drop:
            self.links[index].drop()

    def power_on(self, index: int) -> None:
        """Reboot: the old connection (if it still hangs) dies, the next session connects with a new will."""
        self._powered[index] = True
        channel, link = self.channels[index], self.links[index]
        link.drop()
        channel.restart()
        link.set_will(*channel.will())
        self.forwarder.release(channel.device)  # sent once the link is up, after the birth
        if self._link_ok[index]:
            link.resume()

    def link_down(self, index: int) -> None:
        """The device's link is lost: socket closed without DISCONNECT; readings wait in the spool."""
        self._link_ok[index] = False
        self.links[index].drop()

    def link_up(self, index: int) -> None:
        """The link is back: reconnect, birth, replay of the spool."""
        self._link_ok[index] = True
        if self._powered[index]:
            self.links[index].resume()

    def stop(self, timeout: float) -> None:
        """Clean stop of every device, all in parallel within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self._drain_spool(deadline)
        announced = sum(
            1 for i, client in enumerate(self.clients) if self._powered[i] and client.announce_offline()
        )
        self._flush_links(deadline)
        for client in self.clients:
            client.begin_close()
        unclean = sum(not c.finish_close(max(0.0, deadline - time.monotonic())) for c in self.clients)
        self.loop.stop(max(0.5, deadline - time.monotonic()))
        self._close_spool()
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
        members: list[list[DeviceChannel]] = [[] for _ in self.links]
        for link, channels in zip(self.links, members, strict=True):
            link.on_connected(self._births(channels))  # before the forwarder's hook: births first
        self.forwarder = Forwarder(
            open_spool(state_dir, len(specs)),
            self.loop,
            fallback=lambda device: self.links[zlib.crc32(device.encode()) % count],
        )
        for link in self.links:
            self.forwarder.attach(link)
        self.channels = []
        for i, spec in enumerate(specs):
            state = DeviceState(
                state_dir / f"{spec.slug}.json", spec.slug, block=SIM_SEQ_BLOCK, durable=False
            )
            link = self.links[i % count]
            channel = DeviceChannel(spec.community, spec.site, spec.slug, state, link, self.forwarder)
            self.channels.append(channel)
            members[i % count].append(channel)
        self._absent: set[str] = set()
        self._init_faults()

    def start(self) -> None:
        """Open the K connections in the background (each publishes its devices' births on every connect)."""
        self.loop.start()
        for link in self.links:
            link.open()

    def power_off(self, index: int, *, drop: bool) -> None:
        """The device goes silent; with `drop`, publish the `offline` its own connection's will would."""
        channel = self.channels[index]
        self.forwarder.hold(channel.device)  # unsent readings wait for the reboot, as a real box's would
        if drop and self.present(index) and channel.connected:
            channel.offline(clean=False)
        self._powered[index] = False
        self._absent.add(channel.device)

    def power_on(self, index: int) -> None:
        """Reboot: the next session, and its birth once the device's link is up."""
        self._powered[index] = True
        channel = self.channels[index]
        channel.restart()
        self._arrive(index)
        if self._link_ok[index]:
            self.forwarder.release(channel.device)

    def link_down(self, index: int) -> None:
        """The device's link is lost: the broker's view (`offline`), its readings held in the spool."""
        channel = self.channels[index]
        if self.present(index) and channel.connected:
            channel.offline(clean=False)
        self._link_ok[index] = False
        self._absent.add(channel.device)
        self.forwarder.hold(channel.device)

    def link_up(self, index: int) -> None:
        """The link is back: birth, then the held readings in order."""
        self._link_ok[index] = True
        self._arrive(index)
        if self._powered[index]:
            self.forwarder.release(self.channels[index].device)

    def _arrive(self, index: int) -> None:
        channel = self.channels[index]
        if self.present(index):
            self._absent.discard(channel.device)
            if channel.connected:  # else the connection's hook publishes the birth when it is back
                channel.birth()

    def _births(self, channels: list[DeviceChannel]) -> Callable[[], None]:
        """A connect hook publishing the births of the present devices that share one connection."""

        def hook() -> None:
            for channel in channels:
                if channel.device not in self._absent:
                    channel.birth()

        return hook

    def stop(self, timeout: float) -> None:
        """Retained clean `offline` for every present device, acknowledgements, then DISCONNECT."""
        deadline = time.monotonic() + timeout
        self._drain_spool(deadline)
        announced = sum(
            1
            for i, channel in enumerate(self.channels)
            if self.present(i) and channel.connected and channel.offline()
        )
        self._flush_links(deadline)
        for link in self.links:
            link.begin_close()
        for link in self.links:
            link.wait_closed(max(0.1, deadline - time.monotonic()))
        for channel in self.channels:
            channel.state.close()
        self.loop.stop(max(0.5, deadline - time.monotonic()))
        self._close_spool()
        log.info("%s of %s devices announced a clean offline", announced, len(self.channels))
