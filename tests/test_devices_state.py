"""Device-side bookkeeping without a broker: persisted seq/session, the client's guards, backoff, imports."""

from __future__ import annotations

import ast
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import devices
from devices.client import DeviceClient
from devices.link import BACKOFF_MAX_S, backoff_delay
from devices.state import DeviceState
from gateway.contract.payloads import MAX_SEQ, StateMessage, Telemetry
from gateway.contract.reasons import ProtocolError
from gateway.contract.target import MqttTarget

TARGET = MqttTarget.from_url("mqtt://dev:pw@127.0.0.1:1")  # never connected in these tests


def test_fresh_state_starts_from_the_clock(tmp_path: Path) -> None:
    before = time.time()
    state = DeviceState(tmp_path / "d.json", "d")
    assert before - 1 <= state.session <= time.time()
    assert state.take() >= int(before * 1000)
    assert state.next_seq < MAX_SEQ


def test_clean_restart_continues_exactly_and_bumps_session(tmp_path: Path) -> None:
    state = DeviceState(tmp_path / "d.json", "d", block=10)
    seqs = [state.take() for _ in range(25)]
    state.close()
    again = DeviceState(tmp_path / "d.json", "d", block=10)
    assert again.session == state.session + 1
    assert again.take() == seqs[-1] + 1
    assert seqs == list(range(seqs[0], seqs[0] + 25))


def test_crash_skips_at_most_a_block_and_never_repeats(tmp_path: Path) -> None:
    state = DeviceState(tmp_path / "d.json", "d", block=10)
    last = [state.take() for _ in range(13)][-1]  # no close(): the process died
    again = DeviceState(tmp_path / "d.json", "d", block=10)
    first = again.take()
    assert last < first <= last + 10


def test_unreadable_state_restarts_above_everything_used(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    state = DeviceState(path, "d")
    used = state.take()
    state.close()
    path.write_text("{not json")
    again = DeviceState(path, "d")
    assert again.session >= state.session and again.take() > used


def test_state_file_is_written_atomically(tmp_path: Path) -> None:
    state = DeviceState(tmp_path / "d.json", "d", block=1)
    for _ in range(5):
        state.take()
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["format"] == "rhizome-device-state/1" and data["next_seq"] == state.next_seq


def test_block_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DeviceState(tmp_path / "d.json", "d", block=0)


def test_seq_and_session_survive_client_recreation(tmp_path: Path) -> None:
    first = DeviceClient(TARGET, "c", "s", "d-1", state_dir=tmp_path, seq_block=50)
    seqs = [first.next_seq() for _ in range(3)]
    first.stop()
    second = DeviceClient(TARGET, "c", "s", "d-1", state_dir=tmp_path, seq_block=50)
    try:
        assert second.session == first.session + 1
        assert second.next_seq() == seqs[-1] + 1
    finally:
        second.stop()


def test_client_refuses_uninvented_seq_and_state_messages(tmp_path: Path) -> None:
    client = DeviceClient(TARGET, "c", "s", "d-2", state_dir=tmp_path)
    try:
        now = datetime.now(UTC)
        with pytest.raises(ValueError, match="not issued"):
            client.publish(Telemetry(client.channel.state.next_seq + 5, now, {"running": True}))
        with pytest.raises(ValueError, match="managed by the client"):
            client.publish(StateMessage("online", client.session))
        with pytest.raises(ProtocolError, match="value_out_of_range"):
            client.send_telemetry({"temperature_c": 999.0})
        with pytest.raises(ProtocolError, match="unknown_metric"):
            client.send_telemetry({"temprature_c": 4.0})
    finally:
        client.stop()


def test_client_rejects_bad_slugs_before_writing_state(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DeviceClient(TARGET, "c", "s", "Not A Slug", state_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng) for n in range(12)]
    assert 0.5 <= delays[0] <= 1.0
    assert delays[5] > delays[0] * 8
    assert all(d <= BACKOFF_MAX_S for d in delays)
    assert len({round(backoff_delay(3, rng), 6) for _ in range(20)}) > 10  # jittered


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_devices_imports_only_stdlib_paho_and_the_contract() -> None:
    package = Path(devices.__file__).parent
    for path in package.glob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top in ("paho", "devices")
                or name.startswith("gateway.contract.")
                # the adapter to the `rhizome` command (tests/test_layering.py says what it may use)
                or (path.name == "cli.py" and top == "click")
            )
            assert allowed, f"{path.name} imports {name}"


def test_cli_registers_devices_simulate() -> None:
    from gateway.process.cli import parse

    ctx = parse(["devices", "simulate", "--limit", "5", "--speed", "60", "--mode", "multiplexed"])
    options = ctx.params
    assert options["limit"] == 5 and options["speed"] == 60.0 and options["mode"] == "multiplexed"
    assert ctx.command.name == "simulate" and callable(ctx.command.callback)
