"""Small process and socket helpers shared by the embedded broker and the demo's child processes."""

from __future__ import annotations

import ctypes
import signal
import socket
import sys
import time

_PR_SET_PDEATHSIG = 1
# Resolved at import: a preexec_fn runs between fork and exec, where loading libraries is unsafe.
_prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so a killed demo leaves no orphans.

    Meant as a ``preexec_fn`` for ``subprocess.Popen``; a no-op where prctl is unavailable. Linux sends
    the signal when the *thread* that forked exits, so spawn long-lived children from a long-lived thread.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)  # best effort: result deliberately ignored


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
