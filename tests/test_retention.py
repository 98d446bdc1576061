"""`rhizome db prune`: old readings go, each device's newest stays, and nothing else is touched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from gateway.process.cli import main
from gateway.store.db import make_session_factory
from gateway.store.models import Device, DeviceStateChange, Reading, utcnow
from gateway.store.region import load_region
from gateway.store.retention import prune_readings
from tests.conftest import tiny_region_data


def _fill(engine: Engine) -> dict[str, list[int]]:
    """Device A: three readings 40-42 days old and one from today; device B: two old ones only."""
    sessions = make_session_factory(engine)
    now = utcnow()
    with sessions.begin() as session:
        load_region(session, tiny_region_data())
        a, b = session.scalars(select(Device).order_by(Device.id).limit(2)).all()
        rows = {"a": [], "b": []}
        ages = {"a": [42, 41, 40, 0], "b": [45, 44]}
        for name, device in (("a", a), ("b", b)):
            for seq, days in enumerate(ages[name]):
                at = now - timedelta(days=days, minutes=1)
                reading = Reading(
                    device_id=device.id, seq=seq, kind="telemetry", device_ts=at, received_at=at, payload={}
                )
                session.add(reading)
                session.flush()
                rows[name].append(reading.id)
        session.add(DeviceStateChange(device_id=b.id, state="online", at=now - timedelta(days=50)))
    return rows


def _left(engine: Engine) -> set[int]:
    with make_session_factory(engine)() as session:
        return set(session.scalars(select(Reading.id)))


@pytest.mark.parametrize("batch", [1, 2, 5_000])
def test_old_readings_go_in_batches_and_each_devices_newest_stays(engine: Engine, batch: int) -> None:
    rows = _fill(engine)
    counted: list[int] = []
    gone = prune_readings(
        make_session_factory(engine), utcnow() - timedelta(days=30), batch=batch, progress=counted.append
    )
    assert gone == 4 and counted[-1] == 4
    assert _left(engine) == {rows["a"][-1], rows["b"][-1]}  # A's from today, B's newest (45 days old)
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(DeviceStateChange)) == 1  # other history stays
    assert prune_readings(make_session_factory(engine), utcnow() - timedelta(days=30)) == 0  # nothing twice


def test_the_cli_prunes_by_days_and_refuses_a_bad_number(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _fill(engine)
    assert main(["--db", database_url, "db", "prune", "--readings-older-than", "41"]) == 0
    assert "3 readings received before" in capsys.readouterr().out  # A's from 42 and 41 days, B's from 45
    assert _left(engine) == {rows["a"][2], rows["a"][3], rows["b"][1]}
    with pytest.raises(SystemExit) as refused:
        main(["--db", database_url, "db", "prune", "--readings-older-than", "0"])
    assert refused.value.code == 2
    assert "0 is not in the range x>=1" in capsys.readouterr().err
