"""The sample region and the generator: valid, complete, loadable twice without duplicates."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bench.synthetic.region import generate_region
from gateway.store.db import make_session_factory
from gateway.store.models import Community, Device, Member, Site, StockLedgerEntry, Vehicle
from gateway.store.region import RegionError, load_region, read_region, sample_region_path, validate_region
from tests.conftest import tiny_region_data


def test_sample_region_is_puerto_rico_with_real_places() -> None:
    data = read_region(sample_region_path())
    communities = {c["slug"]: c for c in data["communities"]}
    assert len(communities) == 78
    assert communities["san-juan"]["population"] == 342259
    assert {"culebra", "vieques", "mayaguez", "loiza"} <= communities.keys()
    kinds = {s["kind"] for c in data["communities"] for s in c["sites"]}
    assert {"farm", "pump", "storage", "clinic"} <= kinds
    assert len(data["members"]) >= 24
    assert data["source"]["licence"]


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_loading_twice_changes_nothing(sqlite_engine: Engine) -> None:
    data = read_region(sample_region_path())
    sessions = make_session_factory(sqlite_engine)
    for _ in range(2):
        with sessions.begin() as session:
            load_region(session, data)
    with Session(sqlite_engine) as session:
        devices = sum(len(s["devices"]) for c in data["communities"] for s in c["sites"])
        assert count(session, Community) == 78
        assert count(session, Site) == sum(len(c["sites"]) for c in data["communities"])
        assert count(session, Device) == devices
        assert count(session, Member) == len(data["members"])
        assert count(session, Vehicle) == sum(1 for m in data["members"] if m.get("vehicle"))
        stocked = sum(len(s.get("stock", {})) for c in data["communities"] for s in c["sites"])
        assert count(session, StockLedgerEntry) == stocked  # one "initial" entry each, not two


def broken(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(tiny_region_data())
    target: Any = data
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "other"}, "rhizome-region/1"),
        (broken("communities.0.slug", "Utuado"), "community slug"),
        (broken("communities.1.slug", "utuado"), "community slug"),
        (broken("communities.0.lat", 123), "coordinates"),
        (broken("communities.0.sites.0.kind", "castle"), "kind"),
        (broken("communities.0.sites.1.stock", {"gold": 1}), "unknown good"),
        (broken("communities.0.sites.1.stock", {"rice": -1}), ">= 0"),
        (broken("communities.0.sites.0.devices.0.kind", "toaster"), "kind"),
        (broken("communities.0.needs", {"water": {"minimum": 5, "target": 1}}), "need levels"),
        (broken("members.0.community", "atlantis"), "unknown community"),
        (broken("goods.0.sector", "luxury"), "sector"),
    ],
)
def test_invalid_regions_are_rejected_with_the_offending_entry(data: dict[str, Any], message: str) -> None:
    with pytest.raises(RegionError, match=message):
        validate_region(data)


def test_generator_is_reproducible_and_valid(tmp_path: Path) -> None:
    first, second = generate_region(50, seed=7), generate_region(50, seed=7)
    assert first == second
    assert generate_region(50, seed=8) != first
    validate_region(first)
    assert len(first["communities"]) == 50
    path = tmp_path / "r.json"
    path.write_text(json.dumps(first))
    assert read_region(path) == first


def test_generated_region_loads(sqlite_engine: Engine) -> None:
    with make_session_factory(sqlite_engine).begin() as session:
        summary = load_region(session, generate_region(120, seed=3))
    assert summary.communities == 120
    assert summary.devices > 120
