"""Each fault rule says how long its repair usually takes; the gateway opens the task with that estimate,
which is what the planner reserves of a crew member's week."""

from __future__ import annotations

import pytest

from gateway.ingest.rules import _rule, load_rules


def test_every_bundled_rule_estimates_its_repair() -> None:
    estimates = {rule.name: rule.repair_hours for rule in load_rules()}
    assert estimates["pump_failure"] == 5.0 and estimates["sensor_stuck"] == 2.5
    assert all(0 < hours <= 24 for hours in estimates.values())


@pytest.mark.parametrize("bad", [0, -1, 25, "3", True])
def test_a_repair_estimate_must_be_a_number_of_hours(bad: object) -> None:
    raw = {"name": "x", "kind": "code", "severity": "low", "device_kind": "pump", "repair_hours": bad}
    with pytest.raises(ValueError, match="repair_hours"):
        _rule(raw)
