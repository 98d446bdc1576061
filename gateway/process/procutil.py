"""Small process and socket helpers shared by the embedded broker and the demo's child processes."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
PARENT_GONE_EXIT = 1  # a child that outlived its parent exits with this, having nobody to report to
# Resolved at import: a preexec_fn runs between fork and exec, where loading libraries is unsafe.
_prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so a killed demo leaves no orphans.

    Meant as a ``preexec_fn`` for ``subprocess.Popen``; a no-op where prctl is unavailable. Linux sends
    the signal when the *thread* that forked exits, so spawn long-lived children from a long-lived thread.
    A process that calls it after starting (a multiprocessing child) passes `parent_pid`: a parent that died
    before the request sends no signal, so the process exits at once if it has already been re-parented.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)  # best effort: result deliberately ignored
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(PARENT_GONE_EXIT)


def watch_parent(parent_pid: int, every_s: float = 0.5) -> threading.Thread:
    """Exit this process within `every_s` of `parent_pid` ceasing to be its parent (it died and the process
    was re-parented): die_with_parent's fallback where prctl is missing or refused."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        log.warning("parent process %s is gone; exiting", parent_pid)
        os._exit(PARENT_GONE_EXIT)

    thread = threading.Thread(target=watch, name="watch-parent", daemon=True)
    thread.start()
    return thread


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port the OS considers free now, so parallel runs never fight over a fixed port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether something accepts TCP connections on host:port, to probe readiness and shutdown."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until host:port accepts a TCP connection, because a spawned server is not ready at once."""
    deadline = time.monotonic() + timeout
    while True:
        if port_open(host, port, timeout=min(0.5, max(0.05, deadline - time.monotonic()))):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout:.1f} s")
        time.sleep(0.05)
