"""One thread that drives the sockets of many paho clients (paho's external-loop API), plus timers.

`loop_start()` costs a thread per client; a simulator with hundreds of devices would spend its time switching
between them. Here one selector serves every client: readable sockets get `loop_read`, sockets with queued
packets get `loop_write`, and every client gets `loop_misc` (keepalive) once a second. Only this thread
touches the selector; other threads publish through paho (which queues the packet and calls our
register-write hook) and the loop picks the packet up after a wake-up byte.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)
MISC_INTERVAL_S = 1.0  # paho's own loop also checks keepalive about once a second
# Connects awaiting CONNACK at once: a slow broker (amqtt verifies an Argon2 hash per CONNECT) then never
# fills its listen backlog, so our blocking TCP connect returns at once instead of stalling every device.
MAX_CONNECTING = 32
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class NetworkLoop:
    """Runs the network side of any number of paho clients in one thread; start(), then attach() clients."""

    def __init__(self, name: str = "rhizome-net") -> None:
        """Set up bookkeeping only; the selector and wake-up pipe exist from start() to stop()."""
        self._selector = selectors.DefaultSelector()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._lock = threading.Lock()
        self._clients: set[mqtt.Client] = set()  # loop thread only
        self._dirty: set[mqtt.Client] = set()  # clients that may have packets to write (any thread)
        self._again: set[mqtt.Client] = set()  # TLS sockets with decrypted bytes still buffered
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._connecting = 0  # loop thread only, like the admission queue
        self._admission: deque[Callable[[], None]] = deque()
        self._order = itertools.count()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Open the wake-up pipe and start the loop thread."""
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._selector.register(self._wake_r, READ, None)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the selector; attached clients should be closed first."""
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("network loop %s did not stop within %.1f s", self._thread.name, timeout)
            return
        for key in list(self._selector.get_map().values()):
            if key.data is not None:  # a client socket whose detach did not run before the stop
                key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()
        for end in (self._wake_r, self._wake_w):
            if end is not None:
                end.close()

    def in_loop(self) -> bool:
        """True when called from the loop thread (callbacks and timers run there)."""
        return threading.current_thread() is self._thread

    def attach(self, client: mqtt.Client) -> None:
        """Let this loop drive `client`; its sockets are registered as paho opens them."""
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = _ignore  # interest is recomputed from want_write() instead
        self.call_soon(lambda: self._clients.add(client))

    def detach(self, client: mqtt.Client) -> None:
        """Stop driving `client` and close a socket it may still hold (after a disconnect that timed out)."""

        def _detach() -> None:
            self._clients.discard(client)
            self._dirty.discard(client)
            self._again.discard(client)
            sock = client.socket()
            if sock is not None:
                self._unregister(sock)
                sock.close()

        self.call_soon(_detach)

    def admit(self, connect: Callable[[], None]) -> None:
        """Run a connect attempt now, or once fewer than MAX_CONNECTING are in flight (loop thread only)."""
        if self._connecting < MAX_CONNECTING:
            self._connecting += 1
            connect()
        else:
            self._admission.append(connect)

    def release(self) -> None:
        """A connect attempt ended (CONNACK, refusal or failure): admit the next one (loop thread only)."""
        self._connecting -= 1
        if self._admission:
            self._connecting += 1
            self.call_soon(self._admission.popleft())

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the loop thread as soon as possible (thread-safe)."""
        self.call_later(0.0, fn)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` on the loop thread after `delay` seconds (thread-safe)."""
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._order), fn))
        if not self.in_loop():
            self._wake()

    def _wake(self) -> None:
        # A full pipe already guarantees a wake-up; a closed one means we are stopping.
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    def _on_socket_open(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._selector.register(sock, READ, client)

    def _on_socket_close(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._again.discard(client)
        self._unregister(sock)

    def _on_register_write(self, client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        with self._lock:
            self._dirty.add(client)
        if not self.in_loop():
            self._wake()

    def _unregister(self, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):  # never registered, or already gone
            self._selector.unregister(sock)

    def _run(self) -> None:
        next_misc = time.monotonic() + MISC_INTERVAL_S
        while not self._stopping.is_set():
            ready = self._selector.select(self._timeout(next_misc))
            serviced = set(self._again)
            self._again.clear()
            for client in serviced:
                self._guard(client.loop_read)
            for key, mask in ready:
                if key.data is None:
                    self._drain_wake()
                    continue
                client = key.data
                serviced.add(client)
                if mask & READ:
                    self._guard(client.loop_read)
                if mask & WRITE:
                    self._guard(client.loop_write)
            self._run_timers()
            self._update_interest(serviced)
            if time.monotonic() >= next_misc:
                next_misc = time.monotonic() + MISC_INTERVAL_S
                for client in list(self._clients):
                    self._guard(client.loop_misc)

    def _timeout(self, next_misc: float) -> float:
        if self._again:
            return 0.0
        with self._lock:
            due = self._timers[0][0] if self._timers else next_misc
        return max(0.0, min(due, next_misc) - time.monotonic())

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r is not None and self._wake_r.recv(4096):
                pass

    def _run_timers(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > now:
                    return
                _, _, fn = heapq.heappop(self._timers)
            self._guard(fn)

    def _update_interest(self, serviced: set[mqtt.Client]) -> None:
        """Ask for WRITE events exactly while a client has packets queued."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for client in dirty | serviced:
            sock = client.socket()
            if sock is None:
                continue
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                self._again.add(client)
            events = READ | (WRITE if client.want_write() else 0)
            try:
                if self._selector.get_key(sock).events != events:
                    self._selector.modify(sock, events, client)
            except (KeyError, ValueError):
                continue  # closed meanwhile: paho's close hook unregistered it

    @staticmethod
    def _guard(fn: Callable[[], object]) -> None:
        """One client's bug must not stop the loop that serves all the others."""
        try:
            fn()
        except Exception:
            log.exception("network loop: %r failed", fn)


def _ignore(*_args: Any) -> None:
    """Placeholder for a paho hook we do not need (paho only calls loop_write itself when none is set)."""
