"""Facts replicate between community nodes over real brokers: once each, nothing lost, across cuts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.federation.sim import SimFederation
from gateway.store.federation import append_fact
from tests.conftest import require_mosquitto

pytestmark = pytest.mark.network

NAMES = ("valle", "rio", "monte")
LINKS = (("rio", "valle"), ("monte", "valle"), ("monte", "rio"))


def write(fed: SimFederation, name: str, count: int, kind: str = "stock") -> None:
    with fed.nodes[name].sessions.begin() as session:
        for i in range(count):
            append_fact(session, name, kind, {"n": i, "community": name}, datetime.now(UTC))


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[SimFederation]:
    require_mosquitto()
    with SimFederation(tmp_path, NAMES, LINKS, beat_s=0.5, resend_s=1.0, lease_s=3.0) as federation:
        yield federation


def test_facts_reach_every_node_once(fed: SimFederation) -> None:
    for name in NAMES:
        write(fed, name, 20)
    assert fed.wait_converged(20, expected=60) is not None
    for node in fed.nodes.values():
        assert node.count() == 60 and len(node.facts()) == 60


def test_a_node_cut_off_converges_with_exact_counts(fed: SimFederation) -> None:
    write(fed, "valle", 5)
    assert fed.wait_converged(20, expected=5) is not None
    fed.isolate("monte")
    write(fed, "monte", 30)  # written while cut off: it keeps them
    write(fed, "valle", 10)
    write(fed, "rio", 10)
    time.sleep(3)  # beats and resends keep trying through the cut
    assert {origin for origin, _ in fed.nodes["monte"].facts()} == {"valle", "monte"}
    assert len(fed.nodes["monte"].facts()) == 35  # its own 30 and what it had before the cut
    assert {origin for origin, _ in fed.nodes["valle"].facts()} == {"valle", "rio"}
    fed.reconnect("monte")
    assert fed.wait_converged(30, expected=55) is not None
    expected = {
        (name, seq) for name, n in (("valle", 15), ("rio", 10), ("monte", 30)) for seq in range(1, n + 1)
    }
    for node in fed.nodes.values():
        assert node.facts() == expected
        assert node.count() == len(expected)  # 0 duplicated


def test_the_planning_role_moves_when_its_holder_goes(fed: SimFederation) -> None:
    write(fed, "valle", 1)
    assert fed.wait_converged(20, expected=1) is not None
    rio = fed.nodes["rio"].agent
    assert rio is not None
    assert rio.holder() == "monte"  # every node by name when the file names no planners: monte < rio < valle
    fed.stop_agent("monte")
    deadline = datetime.now(UTC).timestamp() + 15
    while rio.holder() == "monte" and datetime.now(UTC).timestamp() < deadline:
        time.sleep(0.2)
    assert rio.holder() == "rio"


def test_a_failed_commit_sends_no_ack_and_loses_nothing(fed: SimFederation) -> None:
    """An ack promises what the store holds: a tick whose transaction fails must send none of its frames,
    or the peer would stop resending facts the rollback took back."""
    valle = fed.nodes["valle"].agent
    assert valle is not None
    state = {"failures": 3, "failing": False, "leaked": 0}
    tick_in, note, publish = valle._tick_in, valle._note, valle._publish

    def watched_tick(now: float) -> None:
        state["failing"] = False
        tick_in(now)

    def failing_note(session: object, now: float) -> None:
        if state["failures"] > 0:  # inside the transaction, after this tick's frames were handled
            state["failures"] -= 1
            state["failing"] = True
            raise RuntimeError("the store refused the commit")
        note(session, now)  # type: ignore[arg-type]

    def watched_publish(peer: str, topic: str, payload: bytes) -> None:
        state["leaked"] += state["failing"]
        publish(peer, topic, payload)

    valle._tick_in, valle._note, valle._publish = watched_tick, failing_note, watched_publish  # type: ignore[method-assign]
    deadline = time.monotonic() + 20
    write(fed, "rio", 5)
    while state["failures"] and time.monotonic() < deadline:  # rio's facts arrive while valle's commits fail
        time.sleep(0.1)
    write(fed, "rio", 5)
    assert fed.wait_converged(30, expected=10) is not None
    assert state["failures"] == 0 and state["leaked"] == 0
    for node in fed.nodes.values():
        assert node.facts() == {("rio", seq) for seq in range(1, 11)}
