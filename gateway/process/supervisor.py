"""Children of one supervisor: each part of Rhizome as its own `rhizome` subprocess, started in order and
stopped in reverse, none left behind. Light on purpose (no store, no broker client): a community node's
supervisor stays resident for as long as the node runs."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gateway.process.procutil import die_with_parent

log = logging.getLogger(__name__)
STOP_ORDER = ("devices", "planner", "dashboard", "gateway")  # devices first: their "offline" gets stored


@dataclass
class Child:
    """One supervised `rhizome` subprocess."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)


class Supervisor:
    """Starts children in order and stops them in reverse, leaving no process behind."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.children: dict[str, Child] = {}

    def start(self, name: str, *args: str) -> Child:
        """Start `rhizome <args>` with its output in <log_dir>/<name>.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.process.cli", *args],
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the demo, which stops children in order
            preexec_fn=die_with_parent,  # and a killed demo still takes them down
        )
        child = Child(name, process, log_path, log_file)
        self.children[name] = child
        log.info("started %s (pid %s), log in %s", name, process.pid, log_path)
        return child

    def dead(self) -> list[Child]:
        """Children that exited on their own."""
        return [c for c in self.children.values() if c.process.poll() is not None]

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGINT (a clean stop), then SIGKILL after `timeout`."""
        child = self.children.pop(name, None)
        if child is None:
            return
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGINT)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", name, timeout)
                child.process.kill()
                child.process.wait()
        child.log_file.close()
        log.info("stopped %s (exit %s)", name, child.process.returncode)

    def stop_all(self) -> None:
        """Stop children in STOP_ORDER, then any others."""
        for name in [*STOP_ORDER, *self.children]:
            self.stop(name)
