"""The store writer child, seen from both sides: the gateway starts it and learns of its death at once, with
what died and how; the child dies with the gateway, even while it is still starting.

This module is what the child imports first (the spawn target), so it stays light: the writer and SQLAlchemy
are imported only once the child has asked to die with its parent.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gateway.contract.errors import RhizomeError
from gateway.process.procutil import die_with_parent, watch_parent

log = logging.getLogger(__name__)
NAME = "store writer"


class WriterDied(RhizomeError):
    """The writer child is gone: the gateway cannot store, so it stops (the broker keeps what it did not
    acknowledge) and a supervisor restarts it."""


def writer_entry(
    conn: Connection, parent_pid: int, database_url: str, log_level: str, rules_file: Path | None
) -> None:
    """Body of the child: tie its life to the gateway's first, then import and run the writer."""
    die_with_parent(parent_pid)  # Linux: SIGTERM when the gateway dies; exits now if it already has
    watch_parent(parent_pid)  # elsewhere, or if prctl is refused: notice within half a second
    from gateway.ingest.writer import writer_main  # SQLAlchemy and the rest: after the ties above

    writer_main(conn, database_url, log_level, rules_file)


def describe_exit(exitcode: int | None) -> str:
    """How a process ended, in words: "exited with code 3", "was killed by SIGKILL"."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class WriterProcess:
    """The writer child and the pipe to it; every failure of either is raised as one `WriterDied`."""

    def __init__(self, database_url: str, log_level: str, rules_file: Path | None) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=writer_entry,
            args=(child, os.getpid(), database_url, log_level, rules_file),
            name="rhizome-writer",
            daemon=True,
        )
        self.process.start()
        child.close()

    def died(self) -> WriterDied:
        """The error for a dead writer (or a broken pipe to it): which process, its pid, how it ended."""
        self.process.join(1)  # a broken pipe may come a moment before the exit status
        return WriterDied(
            f"the {NAME} process (pid {self.process.pid}) {describe_exit(self.process.exitcode)}; "
            "the gateway stops, the broker keeps what was not acknowledged"
        )

    def check(self) -> None:
        """Raise `WriterDied` if the child has exited (cheap: a non-blocking wait)."""
        if not self.process.is_alive():
            raise self.died()

    def send(self, request: tuple[Any, ...]) -> None:
        try:
            self._conn.send(request)
        except OSError as exc:  # BrokenPipeError, ConnectionResetError: the child is gone
            raise self.died() from exc

    def poll(self, timeout: float) -> bool:
        """Whether an answer (or the end of the pipe) is ready within `timeout`; raises if the child died."""
        try:
            ready = self._conn.poll(timeout)
        except OSError as exc:
            raise self.died() from exc
        if not ready:
            self.check()
        return ready

    def recv(self) -> tuple[Any, ...]:
        try:
            reply: tuple[Any, ...] = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self.died() from exc
        return reply

    def stop(self, timeout: float = 30) -> None:
        """Ask the child to finish (it saves last-seen times), kill it if it does not, close the pipe."""
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
        self._conn.close()
