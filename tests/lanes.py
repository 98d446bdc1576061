"""The test lanes, and a guard that keeps the unit lane free of services, subprocesses and long sleeps.

A test that needs an MQTT broker is marked `network`, PostgreSQL `postgres`, Chromium `browser`; one that
starts a subprocess or runs for more than a few seconds is `slow`. Every other test is a unit test, and
`make check` runs exactly those. The guard fails an unmarked test that
- requests a fixture that starts or reaches a service (`broker`, `shipped_mosquitto`, `postgres_url`);
- connects to a non-loopback address, to an MQTT port, or to PostgreSQL's port (except through
  `database_url`, which is PostgreSQL in CI and a SQLite file elsewhere: `make check` runs it on SQLite);
- starts a subprocess (except the LP solver binary PuLP runs: solving is what the planner's unit tests test);
- sleeps for more than MAX_SLEEP_S at once.
It records and reports at teardown rather than raising inside the code under test, so a violation in a
background thread, where an exception could be swallowed by a retry loop, fails the test all the same.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import pytest

LANE_MARKERS: Final = ("network", "postgres", "browser", "slow")
SERVICE_FIXTURES: Final = {"broker": "network", "shipped_mosquitto": "network", "postgres_url": "postgres"}
MAX_SLEEP_S: Final = 0.5
SOLVER_BINARIES: Final = frozenset({"cbc", "highs"})
MQTT_PORTS: Final = frozenset({1883, 8883})
POSTGRES_PORTS: Final = frozenset({5432})
T = TypeVar("T")


def _env_port(name: str) -> set[int]:
    """The port of the service URL in environment variable `name`, if it names one."""
    try:
        port = urlsplit(os.environ.get(name, "")).port
    except ValueError:
        return set()
    return {port} if port else set()


class _Guard:
    """What the current unit test did that a unit test must not do (inactive outside unit tests)."""

    def __init__(self) -> None:
        self.active = False
        self.database_allowed = False
        self.violations: list[str] = []
        self.mqtt_ports = set(MQTT_PORTS)
        self.postgres_ports = set(POSTGRES_PORTS)

    def start(self, database_allowed: bool) -> None:
        self.mqtt_ports = set(MQTT_PORTS) | _env_port("RHIZOME_TEST_MQTT_URL")
        self.postgres_ports = set(POSTGRES_PORTS) | _env_port("RHIZOME_TEST_POSTGRES_URL")
        self.database_allowed = database_allowed
        self.violations = []
        self.active = True

    def stop(self) -> list[str]:
        self.active = False
        return self.violations

    def connecting(self, address: Any) -> None:
        if not self.active or not isinstance(address, tuple):
            return
        host, port = str(address[0]), int(address[1])
        if not _is_loopback(host):
            self.violations.append(f"connects to {host}:{port}, off this machine (mark it network)")
        elif port in self.mqtt_ports:
            self.violations.append(f"connects to the MQTT broker's port {port} (mark it network)")
        elif port in self.postgres_ports and not self.database_allowed:
            self.violations.append(f"connects to PostgreSQL's port {port} (mark it postgres)")

    def spawning(self, args: Any) -> None:
        if not self.active:
            return
        first = args if isinstance(args, str | bytes | os.PathLike) else next(iter(args), "")
        program = os.fsdecode(first).strip()
        if Path(program.split(maxsplit=1)[0] if program else "").name not in SOLVER_BINARIES:
            self.violations.append(f"starts a subprocess {program[:80]!r} (mark it slow)")

    def sleeping(self, seconds: float) -> None:
        if self.active and seconds > MAX_SLEEP_S:
            self.violations.append(f"sleeps {seconds} s at once (wait on an event, or mark it slow)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost: resolved elsewhere, so off this machine


GUARD = _Guard()


def _install() -> None:
    """Wrap socket connects, subprocess starts and time.sleep once per session; the guard decides."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    popen_init, sleep = subprocess.Popen.__init__, time.sleep

    def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                GUARD.connecting(address)
            return method(sock, address)

        return wrapper

    def guarded_popen(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        GUARD.spawning(args)
        popen_init(self, args, *rest, **kwargs)

    def guarded_sleep(seconds: float) -> None:
        GUARD.sleeping(seconds)
        sleep(seconds)

    socket.socket.connect = guarded(connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded(connect_ex)  # type: ignore[method-assign]
    subprocess.Popen.__init__ = guarded_popen  # type: ignore[assignment,method-assign]
    time.sleep = guarded_sleep


_install()


def lane_of(item: pytest.Item) -> list[str]:
    """The lane markers a test carries; none: a unit test."""
    return [name for name in LANE_MARKERS if item.get_closest_marker(name) is not None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Refuse an unmarked test that asks for a service fixture, before the fixture starts anything."""
    if lane_of(item):
        return
    wanted = sorted(set(getattr(item, "fixturenames", ())) & set(SERVICE_FIXTURES))
    if wanted:
        marks = sorted({SERVICE_FIXTURES[name] for name in wanted})
        pytest.fail(
            f"a unit test cannot use {', '.join(wanted)}: mark it {' and '.join(marks)}", pytrace=False
        )


@pytest.fixture(autouse=True)
def unit_lane_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Watch an unmarked test (and the function fixtures it uses) for what only marked tests may do."""
    if lane_of(request.node):
        yield
        return
    GUARD.start(database_allowed="database_url" in request.fixturenames)
    yield
    violations = GUARD.stop()
    if violations:
        shown = sorted(set(violations))
        pytest.fail("unit test (no lane marker) " + "; ".join(shown[:5]), pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="run the K-th of N disjoint parts of the selected tests, every N-th test from the K-th (CI runs "
        "the unit lane as two parts, so both cores work to the end)",
    )


def shard(items: Sequence[T], k: int, n: int) -> list[T]:
    """The K-th of N parts: every N-th item from the K-th. Interleaved rather than by file, so slow files
    and slow parametrized runs spread over the parts; each part collects the same tests in the same order,
    so the parts are disjoint and together are all of them."""
    return list(items[k - 1 :: n])


@pytest.hookimpl(trylast=True)  # after `-m` deselected: the parts split what the markers selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --shard K/N, keep the K-th part of the selected tests."""
    spec = config.getoption("--shard")
    if not spec:
        return
    try:
        k, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--shard takes K/N (e.g. 1/2), got {spec!r}") from None
    if not 1 <= k <= n:
        raise pytest.UsageError(f"--shard {spec}: K must be 1..N")
    mine = shard(items, k, n)
    kept = {id(item) for item in mine}
    config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
    items[:] = mine
