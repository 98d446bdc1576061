"""The sample region and the generator: valid, complete, loadable twice without duplicates."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bench.synthetic.people import KEPT, MIN_PER_COMMUNITY, PEOPLE_PER_MEMBER, rule_skills, with_members
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
        (broken("members.0.hours_per_week", -1), "hours_per_week must be from 0"),
        (broken("members.0.hours_per_year", -5), "hours_per_year must be from 0"),
        (broken("members.0.roles", ["captain"]), "roles must be among"),
        (broken("members.0.sector_hours", {"piracy": 10}), "unknown sector 'piracy'"),
        (broken("members.0.sector_hours", {"food": -1}), "hours for food must be a number"),
        (broken("members.0.sector_hours", {"food": 100, "health": 100}), "add up to 200 h, more than 150 h"),
        (broken("members.0.preferred_sectors", ["food", "sailing"]), "preferred sector 'sailing'"),
        (broken("members.0.preferred_sectors", ["food", "food"]), "repeats a sector"),
        (broken("members.0.availability", [{"day": 7, "start": "08:00", "end": "12:00"}]), "0 \\(Monday\\)"),
        (broken("members.0.availability", [{"day": 1, "start": "8am", "end": "12:00"}]), "HH:MM"),
        (broken("members.0.availability", [{"day": 1, "start": "12:00", "end": "08:00"}]), "ends before"),
        (broken("members.0.away", [{"from": "2026-12-20", "to": "2026-12-01"}]), '"to" is before "from"'),
        (broken("members.0.away", [{"from": "2026-02-30", "to": "2026-03-01"}]), "YYYY-MM-DD"),
        (broken("members.0.vehicle", {"kind": "van", "capacity_kg": 0}), "capacity_kg must be > 0"),
        (broken("members", [tiny_region_data()["members"][0]] * 2), "listed twice"),
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


def test_sample_members_are_what_the_generator_writes_one_entry_a_person() -> None:
    data = read_region(sample_region_path())
    assert with_members(data) == data  # `python -m bench.synthetic.people --write` is up to date
    members = data["members"]
    assert len({(m["community"], m["name"]) for m in members}) == len(members)
    assert members[0]["name"] == "Omar Cruz Velázquez" and len(members) > 10 * KEPT
    per_community = Counter(m["community"] for m in members)
    for community in data["communities"]:
        floor = max(MIN_PER_COMMUNITY, round(community["population"] / PEOPLE_PER_MEMBER))
        assert per_community[community["slug"]] >= floor, community["slug"]


def test_sample_offers_spread_around_the_baseline_and_add_up() -> None:
    members = read_region(sample_region_path())["members"]
    years = sorted(m["hours_per_year"] for m in members)
    assert years[0] >= 60 and years[-1] <= 400 and 130 <= years[len(years) // 2] <= 170
    assert all(2 <= m["hours_per_week"] <= 12 for m in members)
    assert all(sum(m["sector_hours"].values()) == m["hours_per_year"] for m in members)
    assert 0.7 < sum(1 for m in members if m.get("availability")) / len(members) < 0.95
    assert any(m.get("away") for m in members) and any(m.get("preferred_sectors") for m in members)
    vehicles = sum(1 for m in members if m.get("vehicle"))
    assert all("driver" in m["roles"] for m in members if m.get("vehicle"))
    assert 0.25 < vehicles / len(members) < 0.4


def test_every_community_has_crew_for_the_faults_its_devices_can_raise() -> None:
    data = read_region(sample_region_path())
    needs = rule_skills()
    for community in data["communities"]:
        kinds = {d["kind"] for s in community["sites"] for d in s["devices"]}
        crew = [
            set(m["skills"])
            for m in data["members"]
            if m["community"] == community["slug"] and "crew" in m["roles"]
        ]
        for kind, skills in needs:
            if kind == "*" or kind in kinds:
                assert any(set(skills) <= held for held in crew), (community["slug"], skills)


def test_the_offer_is_loaded_and_reloaded_in_place(sqlite_engine: Engine) -> None:
    data = tiny_region_data()
    offer = {
        "hours_per_year": 120,
        "sector_hours": {"maintenance": 60, "food": 20, "other": 40},
        "preferred_sectors": ["maintenance"],
        "availability": [{"day": 5, "start": "12:00", "end": "20:00"}],
        "away": [{"from": "2026-12-20", "to": "2027-01-06"}],
    }
    data["members"][0].update(offer)
    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as session:
        load_region(session, data)
    with sessions.begin() as session:
        member = session.scalars(select(Member)).one()
        assert member.hours_per_year == 120 and member.sector_hours == {
            "maintenance": 60,
            "food": 20,
            "other": 40,
        }
        assert member.preferred_sectors == ["maintenance"] and member.away == offer["away"]
        assert member.availability == offer["availability"] and member.hours_per_week == 4
    for key in offer:
        del data["members"][0][key]
    with sessions.begin() as session:
        load_region(session, data)  # the file no longer restricts them: the baseline again
    with Session(sqlite_engine) as session:
        member = session.scalars(select(Member)).one()
        assert member.hours_per_year == 150 and member.sector_hours is None and member.away is None
        assert member.availability is None and member.preferred_sectors is None
