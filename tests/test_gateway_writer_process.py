"""The gateway and its store writer child die together, and say so: a killed writer stops the gateway with a
message naming it, its pid and its signal; a killed gateway takes the writer with it, even during start-up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.contract.target import MqttTarget
from tests.conftest import ShippedBroker
from tests.gateway_procs import Gateway, publish_stream, region_topics, wait_for_count

pytestmark = [pytest.mark.network, pytest.mark.slow]


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc, so no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _writer_of(pid: int, timeout: float = 30) -> int:
    """The gateway's store writer: its child started by multiprocessing's spawn (not the resource tracker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _children(pid):
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return child
            except OSError:
                continue
        time.sleep(0.002)
    raise AssertionError(f"no writer child of {pid} within {timeout} s")


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaped has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _seconds_until_gone(pid: int, timeout: float) -> float:
    start = time.monotonic()
    while _alive(pid) and time.monotonic() - start < timeout:
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.mark.parametrize("streaming", [False, True], ids=["idle", "mid-stream"])
def test_a_killed_writer_stops_the_gateway_with_a_message_naming_it(
    shipped_mosquitto: ShippedBroker, engine: Engine, database_url: str, tmp_path: Path, streaming: bool
) -> None:
    gateway = Gateway(tmp_path, shipped_mosquitto.url, database_url, f"gw-{uuid.uuid4().hex[:6]}")
    gateway.start()
    assert gateway.process is not None
    publisher = threading.Thread(
        target=publish_stream,
        args=(MqttTarget.from_url(shipped_mosquitto.url), region_topics(engine, 10), 20_000, "wk"),
        daemon=True,
    )
    try:
        writer = _writer_of(gateway.process.pid)
        if streaming:
            publisher.start()
            wait_for_count(engine, 1, timeout=20)  # batches are flowing through the writer
        os.kill(writer, signal.SIGKILL)
        code = gateway.process.wait(10)  # when idle, noticed without a batch having to fail first
    finally:
        gateway.stop()
        if streaming:
            publisher.join(60)
    log = (tmp_path / f"{gateway.client_id}.log").read_text()
    assert code == 1, log
    assert f"the store writer process (pid {writer}) was killed by SIGKILL" in log, log
    assert "Broken pipe" not in log and "Traceback" not in log, log


@pytest.mark.parametrize("after_s", [0.05, 0.3])
def test_a_gateway_killed_during_start_up_takes_its_writer_with_it(
    shipped_mosquitto: ShippedBroker, tmp_path: Path, after_s: float
) -> None:
    """The database accepts connections and never answers (a host dropping packets): a writer left behind
    would wait on it for psycopg's connect timeout, 130 s by default, after its gateway was gone."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts
        database = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/rhizome"
        args = ["--mqtt", shipped_mosquitto.url, "--db", database, "gateway", "--client-id", "gw-startup"]
        with (tmp_path / "gateway.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway.process.cli", *args], stdout=log, stderr=log
            )
        try:
            writer = _writer_of(process.pid)
            time.sleep(after_s)  # the writer is still starting: importing, connecting
        finally:
            process.kill()
            process.wait()
        assert _seconds_until_gone(writer, 5) < 2.0, (tmp_path / "gateway.log").read_text()


def test_the_parent_watch_ends_a_child_whose_parent_died_without_prctl(tmp_path: Path) -> None:
    """The fallback where PR_SET_PDEATHSIG is unavailable: the child polls its parent pid."""
    child = textwrap.dedent(
        """
        import os, time
        from gateway.process.procutil import watch_parent
        watch_parent(os.getppid(), every_s=0.2)
        time.sleep(30)
        """
    )
    middle = textwrap.dedent(
        f"""
        import subprocess, sys, time
        print(subprocess.Popen([sys.executable, "-c", {child!r}]).pid, flush=True)
        time.sleep(30)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        grandchild = int(process.stdout.readline())
        time.sleep(0.5)  # the grandchild is running its watch
        assert _alive(grandchild)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
    assert _seconds_until_gone(grandchild, 5) < 1.0
