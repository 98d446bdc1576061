"""The unit lane's guard: what it lets an unmarked test do, and what it reports."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time

import pytest

from tests import lanes


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> lanes._Guard:
    """A started guard of its own, so what these tests provoke is not held against them."""
    monkeypatch.delenv("RHIZOME_TEST_MQTT_URL", raising=False)
    monkeypatch.setenv("RHIZOME_TEST_POSTGRES_URL", "postgresql://u@127.0.0.1:5433/test")
    fresh = lanes._Guard()
    fresh.start(database_allowed=False)
    monkeypatch.setattr(lanes, "GUARD", fresh)
    return fresh


@pytest.mark.parametrize(
    ("address", "complaint"),
    [
        (("192.0.2.7", 80), "off this machine"),
        (("example.org", 443), "off this machine"),
        (("127.0.0.1", 1883), "MQTT broker's port 1883"),
        (("::1", 8883), "MQTT broker's port 8883"),
        (("127.0.0.1", 5432), "PostgreSQL's port 5432"),
        (("127.0.0.1", 5433), "PostgreSQL's port 5433"),  # the one the environment names
    ],
)
def test_services_and_other_machines_are_reported(
    guard: lanes._Guard, address: tuple[str, int], complaint: str
) -> None:
    guard.connecting(address)
    assert len(guard.stop()) == 1 and complaint in guard.violations[0]


def test_loopback_servers_of_the_test_itself_are_allowed(guard: lanes._Guard) -> None:
    guard.connecting(("127.0.0.1", 40123))
    guard.connecting(("localhost", 8080))
    guard.connecting(("127.0.0.1", 1))  # a closed port: how the spool tests stay offline
    assert guard.stop() == []


def test_postgresql_is_allowed_through_database_url_only(guard: lanes._Guard) -> None:
    guard.start(database_allowed=True)
    guard.connecting(("127.0.0.1", 5432))
    assert guard.stop() == []


def test_subprocesses_are_reported_except_the_lp_solver(guard: lanes._Guard) -> None:
    guard.spawning(["/site-packages/pulp/solverdir/cbc/linux/i64/cbc", "/tmp/model.mps"])
    assert guard.violations == []
    guard.spawning(["/usr/sbin/mosquitto", "-c", "m.conf"])
    guard.spawning("node --check map.js")
    assert [v.split("'")[1] for v in guard.stop()] == ["/usr/sbin/mosquitto", "node --check map.js"]


def test_long_sleeps_are_reported_short_ones_are_not(guard: lanes._Guard) -> None:
    guard.sleeping(lanes.MAX_SLEEP_S)
    guard.sleeping(lanes.MAX_SLEEP_S + 0.5)
    assert len(guard.stop()) == 1


def test_a_stopped_guard_records_nothing(guard: lanes._Guard) -> None:
    guard.stop()
    guard.connecting(("192.0.2.7", 80))
    guard.spawning(["mosquitto"])
    guard.sleeping(60)
    assert guard.violations == []


def test_the_real_calls_go_through_the_guard(guard: lanes._Guard) -> None:
    with socket.socket() as sock:
        sock.settimeout(0.01)
        with contextlib.suppress(OSError):
            sock.connect(("192.0.2.7", 9))  # TEST-NET-1: never answers; the timeout ends it
    with pytest.raises(FileNotFoundError):
        subprocess.Popen(["/nonexistent/rhizome-guard-probe"])
    time.sleep(0)
    assert [v.split(" ")[0] for v in guard.stop()] == ["connects", "starts"]


def test_lane_markers_are_the_ones_pytest_knows(pytestconfig: pytest.Config) -> None:
    declared = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    assert set(lanes.LANE_MARKERS) <= declared


def test_the_shards_are_disjoint_and_together_all_the_tests() -> None:
    items = list(range(11))
    parts = [lanes.shard(items, k, 3) for k in (1, 2, 3)]
    assert sorted(x for part in parts for x in part) == items
    assert [len(part) for part in parts] == [4, 4, 3] and parts[1] == [1, 4, 7, 10]


def test_a_shard_runs_its_part_of_the_selected_tests(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.lanes import pytest_addoption, pytest_collection_modifyitems\n")
    for name, n in (("test_a", 3), ("test_b", 2), ("test_c", 1)):
        body = "import pytest\n" + "".join(
            f"@pytest.mark.slow\ndef test_{k}_slow(): pass\ndef test_{k}(): pass\n" for k in range(n)
        )
        pytester.makepyfile(**{name: body})
    ran = [
        pytester.runpytest("-m", "not slow", "--shard", f"{k}/2").parseoutcomes().get("passed", 0)
        for k in (1, 2)
    ]
    assert ran == [3, 3]  # the 6 tests left once the slow ones are deselected, 3 each
