"""Simulation control without a broker: the message format, a crew's repair at the current simulated time,
and goods a driver loads or unloads at a stock box."""

from __future__ import annotations

import json

import pytest

from devices.control import Command, parse_command
from devices.faults import Transition
from devices.models import StockModel, device_rng
from devices.simulator import Schedule
from gateway.contract.topics import SIM_CONTROL_FILTER, UPSTREAM_FILTER, sim_control_topic
from tests.test_devices_models import START
from tests.test_devices_scenario import PUMP, SPECS, pump_is_normal, scenario


def test_the_control_topic_is_outside_the_gateways_subscription() -> None:
    topic = sim_control_topic("adjuntas-pump-1-pump")
    assert topic == "rhizome/v1/sim/adjuntas-pump-1-pump"
    assert len(topic.split("/")) != len(UPSTREAM_FILTER.split("/"))
    assert SIM_CONTROL_FILTER == "rhizome/v1/sim/+"


def test_repair_and_receive_parse() -> None:
    repair = parse_command(sim_control_topic("a-pump"), b'{"action": "repair"}')
    assert repair == Command("a-pump", "repair")
    body = json.dumps({"action": "receive", "goods": {"rice": 40, "drinking-water": -500.5}}).encode()
    assert parse_command(sim_control_topic("a-hub-stock"), body).goods == {
        "rice": 40.0,
        "drinking-water": -500.5,
    }


@pytest.mark.parametrize(
    ("topic", "payload", "says"),
    [
        ("rhizome/v1/sim/Bad Slug", b'{"action": "repair"}', "does not name a device"),
        ("rhizome/v1/other/x", b'{"action": "repair"}', "does not name a device"),
        ("rhizome/v1/sim/a-pump", b"not json", "not JSON"),
        ("rhizome/v1/sim/a-pump", b'{"action": "explode"}', "needs an action"),
        ("rhizome/v1/sim/a-pump", b"[1]", "needs an action"),
        ("rhizome/v1/sim/a-hub", b'{"action": "receive"}', "needs goods"),
        ("rhizome/v1/sim/a-hub", b'{"action": "receive", "goods": {"rice": "lots"}}', "numeric quantity"),
        ("rhizome/v1/sim/a-hub", b'{"action": "receive", "goods": {"rice": true}}', "numeric quantity"),
    ],
)
def test_bad_control_messages_are_refused_with_a_reason(topic: str, payload: bytes, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_command(topic, payload)


def test_a_crew_repair_ends_the_fault_at_the_time_it_is_sent() -> None:
    sc = scenario({"at": "1h", "device": PUMP.slug, "event": "pump_failure"})
    schedule = Schedule(SPECS, 1, START, sc)
    assert schedule.faults is not None
    readings = []
    repaired = False
    while schedule.peek() <= 30 * 3600:
        if not repaired and schedule.peek() >= 20 * 3600:
            schedule.faults.repair_now(0, schedule.peek())  # what the simulator does on a repair command
            repaired = True
        item = schedule.pop()
        if isinstance(item, Transition):
            if item.event == "repair":
                assert item.cause == "crew" and abs((item.at - START).total_seconds() - 20 * 3600) < 600
            continue
        if item.index == 0:
            readings.append(((item.at - START).total_seconds() / 3600, item.values))
    failing = [v for h, v in readings if 2 <= h < 20 and v and v["running"]]
    assert failing and not any(pump_is_normal(v) for v in failing)
    assert all(pump_is_normal(v) for h, v in readings if h > 20.1 and v)


def test_goods_received_change_the_next_stock_report() -> None:
    model = StockModel(device_rng(1, "hub-stock"), -66.0, {"rice": 100.0}, "storage")
    assert model.receive("rice", 40.0) and model.levels["rice"] == 140.0
    assert model.receive("rice", -500.0) and model.levels["rice"] == 0.0  # never below nothing
    assert not model.receive("insulin", 5.0) and "insulin" not in model.levels
