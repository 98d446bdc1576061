"""The work clock: real time in production, one shared simulated clock in the demo and the region week."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from gateway.contract import clock


def test_without_the_variable_the_work_clock_is_real_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(clock.ENV, raising=False)
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 1
    assert clock.speed() == 1.0 and not clock.simulating()
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    assert clock.at_or_now(stamp) == stamp


def test_a_simulated_clock_runs_at_its_speed_in_every_process_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2025, 6, 2, 4, 0, tzinfo=UTC)
    sim = clock.WorkClock(start, time.time() - 10.0, 360.0)  # ten real seconds ago: one simulated hour
    monkeypatch.setenv(clock.ENV, sim.encode())
    assert clock.parse(sim.encode()) == clock.WorkClock(start, round(sim.real_start, 3), 360.0)
    assert abs((clock.now() - (start + timedelta(hours=1))).total_seconds()) < 60
    assert clock.simulating() and clock.speed() == 360.0
    assert abs((clock.at_or_now(start) - clock.now()).total_seconds()) < 60  # events happen now, simulated


@pytest.mark.parametrize("text", ["nonsense", "2025-06-02T04:00:00@x5", "2025-06-02T04:00:00@1.0x0"])
def test_a_malformed_clock_names_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="RHIZOME_WORK_CLOCK"):
        clock.parse(text)
