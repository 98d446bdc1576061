"""The forwarding side of store and forward: sends spooled messages in order over live connections.

One Forwarder serves one Spool and any number of Links (a DeviceClient has one; a simulated fleet shares
one spool among all its connections). It runs on the NetworkLoop thread: it walks the spool in id order
and hands each message to the connection of its device while that connection is up and not too far
ahead of the broker's acknowledgements; an acknowledged message is deleted from the spool. Messages of a
device whose connection is down, or which is held (a simulated link outage), are skipped and picked up by
a rescan when the connection returns or the hold ends, so every device's messages leave in their order.
A message already handed to paho stays with paho across a reconnect (paho resends it), so it is never
handed twice. On every connect the drops the spool counted for the connection's devices are reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from devices.link import Link
from devices.netloop import NetworkLoop
from devices.spool import DropReport, Spool
from gateway.contract.payloads import MAX_PAYLOAD_BYTES

log = logging.getLogger(__name__)
DEFAULT_WINDOW: Final = 1000  # messages handed to one connection and not yet acknowledged
BATCH: Final = 256
# New messages wait this long for company before the loop thread drains: at thousands of messages a second,
# one wake-up (and one SELECT) per message would cost more than the messages themselves.
COALESCE_S: Final = 0.005


class Forwarder:
    """Moves messages from a Spool to their devices' Links, in order, as the links allow."""

    def __init__(
        self,
        spool: Spool,
        loop: NetworkLoop,
        *,
        window: int = DEFAULT_WINDOW,
        fallback: Callable[[str], Link | None] | None = None,
    ) -> None:
        """`fallback` maps devices without a route (left by an earlier run) to one of the attached links."""
        self.spool = spool
        self.loop = loop
        self.window = window
        self._fallback = fallback
        self._routes: dict[str, Link] = {}
        self._links: dict[Link, dict[int, tuple[int, str]]] = {}  # link -> mid -> (row id, device)
        self._held: set[str] = set()
        self._acked: list[tuple[int, str]] = []
        self._cursor = 0
        self._rescan = False
        self._scheduled = False
        self._stalled_at: int | None = None  # cursor where a full window stopped the last drain
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._report_hooks: list[Callable[[DropReport], object]] = []
        self.rejected = 0

    def route(self, device: str, link: Link) -> None:
        """Send `device`'s messages over `link` (register the link's hooks after any birth hook)."""
        self._routes[device] = link
        self.attach(link)

    def attach(self, link: Link) -> None:
        """Follow `link`'s connects and acknowledgements (once per link)."""
        if link not in self._links:
            self._links[link] = {}
            link.on_connected(lambda: self._link_up(link))
            link.on_acked(lambda mid, rejected: self._on_acked(link, mid, rejected))

    def on_drops(self, hook: Callable[[DropReport], object]) -> None:
        """Call `hook` with each drop report (on the loop thread, when the device's connection is up)."""
        self._report_hooks.append(hook)

    def put(self, device: str, kind: str, seq: int, topic: str, payload: bytes) -> bool:
        """Spool a message and get it on its way; False if the full spool dropped it at once.

        A payload over the contract's MAX_PAYLOAD_BYTES is refused here (ValueError), before it is spooled:
        the broker would drop the connection without a PUBACK and the message would be sent again for ever."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"{device} {kind} seq {seq}: payload of {len(payload)} bytes exceeds the contract's "
                f"{MAX_PAYLOAD_BYTES}; it would never be acknowledged, so it is not sent"
            )
        stored = self.spool.put(device, kind, seq, topic, payload) is not None
        self.kick()
        return stored

    def hold(self, device: str) -> None:
        """Keep `device`'s messages in the spool (its simulated link is down) until release()."""
        with self._lock:
            self._held.add(device)

    def release(self, device: str) -> None:
        """Send `device`'s held messages, oldest first."""
        with self._lock:
            self._held.discard(device)
            self._rescan = True
        self.kick()

    def kick(self) -> None:
        """Schedule a drain on the loop thread (thread-safe, coalesced)."""
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_later(0.0 if self.loop.in_loop() else COALESCE_S, self._drain)

    def backlog(self) -> int:
        """Messages waiting for a live connection that is slower than the device (0 when keeping up)."""
        stalled_at = self._stalled_at
        return 0 if stalled_at is None else self.spool.count_after(stalled_at)

    def in_flight(self, link: Link) -> int:
        """Spooled messages handed to `link` and not acknowledged yet."""
        return len(self._links.get(link, ()))

    def wait_empty(self, timeout: float, device: str | None = None) -> bool:
        """Block until the broker acknowledged every spooled message (of `device`); False on timeout."""
        return self.wait_for(lambda: self.spool.count(device) == 0, timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` holds, re-checked after every batch of acknowledgements."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _link_up(self, link: Link) -> None:
        with self._lock:
            self._rescan = True
        devices = [device for device, routed in self._routes.items() if routed is link]
        for report in self.spool.take_reports(devices if self._fallback is None else None):
            self._report(report)
        self.kick()

    def _report(self, report: DropReport) -> None:
        log.warning(
            "%s: %s messages (seq %s..%s) were dropped from the full store-and-forward queue "
            "while offline; %s in total",
            report.device,
            report.count,
            report.first_seq,
            report.last_seq,
            report.total,
        )
        for hook in self._report_hooks:
            hook(report)

    def _on_acked(self, link: Link, mid: int, rejected: bool) -> None:
        row = self._links[link].pop(mid, None)
        if row is None:
            return  # a state message (birth, offline): not spooled
        if rejected:
            self.rejected += 1  # the broker refused it for good (e.g. not authorised): resending cannot help
        self._acked.append(row)
        self.kick()

    def _drain(self) -> None:
        """Delete what was acknowledged, then hand out what the live connections can take (loop thread)."""
        with self._lock:
            self._scheduled = False
            if self._rescan:
                self._rescan, self._cursor = False, 0
            held = set(self._held)
        if self._acked:
            acked, self._acked = self._acked, []
            self.spool.ack(acked)
            with self._changed:
                self._changed.notify_all()
        self._stalled_at = None
        while True:
            rows = self.spool.after(self._cursor, BATCH)
            for row in rows:
                if row.id in self.spool.in_flight:
                    self._cursor = row.id
                    continue
                if len(row.payload) > MAX_PAYLOAD_BYTES:  # spooled by an older client: never sendable
                    log.error(
                        "%s seq %s: %s bytes over the %s-byte limit; dropped from the spool",
                        row.device,
                        row.seq,
                        len(row.payload),
                        MAX_PAYLOAD_BYTES,
                    )
                    self.spool.ack([(row.id, row.device)])
                    self._cursor = row.id
                    continue
                link = self._routes.get(row.device) or (self._fallback and self._fallback(row.device))
                if link is None or not link.connected or row.device in held:
                    self._cursor = row.id  # picked up again by the rescan of the next connect or release
                    continue
                pending = self._links[link]
                if len(pending) >= self.window:
                    self._stalled_at = self._cursor
                    return  # the next acknowledgement drains again
                mid = link.send(row.topic, row.payload)
                if mid is None:  # paho's own queue is full: try again shortly
                    self.loop.call_later(0.05, self.kick)
                    return
                pending[mid] = (row.id, row.device)
                self.spool.in_flight.add(row.id)
                self._cursor = row.id
            if len(rows) < BATCH:
                return
