"""Clean stops for long-running commands: SIGINT (Ctrl-C) and SIGTERM (systemd, docker, the demo) set an
event the run loop watches, so a process finishes the work in hand (a committed batch, a retained
"offline", the requests in flight) instead of dying in the middle of it."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM; call it in the main thread (Python handles signals only there)."""
    stop = threading.Event()

    def _handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, _handler)
    return stop
