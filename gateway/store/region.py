"""Load a region file (`rhizome-region/1` JSON, see docs/region.md) into the store, idempotently."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.errors import InvalidInput
from gateway.contract.text import has_control
from gateway.contract.topics import is_slug
from gateway.store.models import (
    Community,
    Device,
    Good,
    Member,
    MemberSkill,
    NeedLevel,
    Site,
    Stock,
    Vehicle,
)
from gateway.store.models.vocab import DEVICE_KINDS, GOOD_SECTORS, SITE_KINDS, VEHICLE_KINDS, WORK_SECTORS
from gateway.store.offers import BASELINE_YEAR_HOURS, validate_sector_hours
from gateway.store.stock import initial_level

log = logging.getLogger(__name__)
FORMAT = "rhizome-region/1"
SAMPLE_REGION = "puerto_rico.json"
ROLES = ("crew", "driver")


class RegionError(ValueError):
    """The region file is malformed; the message names the offending entry."""


@dataclass(frozen=True)
class LoadSummary:
    """What a load created or changed."""

    communities: int
    sites: int
    devices: int
    goods: int
    members: int
    stock_changes: int


def sample_region_path() -> Path:
    """Path of the bundled sample region (Puerto Rico's 78 municipalities)."""
    return Path(str(resources.files("gateway.contract") / "regions" / SAMPLE_REGION))


def read_region(path: Path | str) -> dict[str, Any]:
    """Read and structurally validate a region file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegionError(f"cannot read region file {path}: {exc}") from exc
    validate_region(data)
    return data


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise RegionError(message)


def _control_in(value: Any, where: str) -> str | None:
    """The path of the first text in `value` holding a control character (names go to pages, GPX, CSV)."""
    if isinstance(value, str):
        return where if has_control(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _control_in(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def validate_region(data: Any) -> None:
    """Raise RegionError for the first rule a region document breaks."""
    _check(isinstance(data, dict) and data.get("format") == FORMAT, f"not a {FORMAT} document")
    bad = _control_in(data, "")
    _check(bad is None, f"{bad}: a control character in the text; write plain text")
    goods = {g.get("slug") for g in data.get("goods", [])}
    for good in data.get("goods", []):
        _check(is_slug(good.get("slug")), f"good slug {good.get('slug')!r} invalid")
        _check(good.get("sector") in GOOD_SECTORS, f"good {good['slug']}: sector {good.get('sector')!r}")
    device_slugs: set[str] = set()
    community_slugs: set[str] = set()
    for community in data.get("communities", []):
        slug = community.get("slug")
        _check(is_slug(slug) and slug not in community_slugs, f"community slug {slug!r} invalid or repeated")
        community_slugs.add(slug)
        _check(_is_coordinate(community), f"community {slug}: bad coordinates")
        site_slugs: set[str] = set()
        for site in community.get("sites", []):
            where = f"{slug}/{site.get('slug')}"
            _check(is_slug(site.get("slug")) and site["slug"] not in site_slugs, f"site {where}: bad slug")
            site_slugs.add(site["slug"])
            _check(site.get("kind") in SITE_KINDS, f"site {where}: kind {site.get('kind')!r}")
            _check(_is_coordinate(site), f"site {where}: bad coordinates")
            for good, quantity in site.get("stock", {}).items():
                _check(good in goods, f"site {where}: unknown good {good!r}")
                _check(_is_number(quantity) and quantity >= 0, f"site {where}: stock of {good} must be >= 0")
            for device in site.get("devices", []):
                dslug = device.get("slug")
                _check(is_slug(dslug) and dslug not in device_slugs, f"device {dslug!r} invalid or repeated")
                device_slugs.add(dslug)
                _check(device.get("kind") in DEVICE_KINDS, f"device {dslug}: kind {device.get('kind')!r}")
        for good, level in community.get("needs", {}).items():
            _check(good in goods, f"community {slug}: need for unknown good {good!r}")
            low, high = level.get("minimum"), level.get("target")
            _check(_is_number(low) and _is_number(high) and 0 <= low <= high, f"{slug}/{good}: need levels")
    people: set[tuple[str, str]] = set()
    for member in data.get("members", []):
        validate_member(member, community_slugs)
        key = (member["community"], member["name"])
        _check(
            key not in people, f"member {member['name']!r} of {key[0]} is listed twice (one entry a person)"
        )
        people.add(key)


def validate_member(member: Any, communities: set[str]) -> None:
    """Raise RegionError for the first rule a member entry breaks: who they are, their roles and skills, and
    their offer (hours a week and a year, the split by sector, preferences, weekly windows, time away)."""
    _check(isinstance(member, dict), "a member entry must be an object")
    name = member.get("name")
    _check(isinstance(name, str) and 0 < len(name.strip()) <= 200, f"member name {name!r} invalid")
    who = f"member {name!r}"
    _check(member.get("community") in communities, f"{who}: unknown community")
    _check(_is_coordinate(member), f"{who}: bad coordinates")
    roles, skills = member.get("roles", []), member.get("skills", [])
    _check(isinstance(roles, list) and set(roles) <= set(ROLES), f"{who}: roles must be among {ROLES}")
    _check(isinstance(skills, list) and all(is_slug(s) for s in skills), f"{who}: skills must be slugs")
    week = member.get("hours_per_week", 0)
    _check(_is_number(week) and 0 <= week <= 168, f"{who}: hours_per_week must be from 0 to 168")
    year = member.get("hours_per_year", BASELINE_YEAR_HOURS)
    _check(_is_number(year) and 0 <= year <= 8760, f"{who}: hours_per_year must be from 0 to 8760")
    if member.get("sector_hours") is not None:
        try:
            validate_sector_hours(member["sector_hours"], float(year))
        except InvalidInput as exc:
            raise RegionError(f"{who}: sector_hours: {exc}") from exc
    _check_preferred(who, member.get("preferred_sectors"))
    _check_windows(who, member.get("availability"))
    _check_away(who, member.get("away"))
    vehicle = member.get("vehicle")
    if vehicle:
        _check(vehicle.get("kind") in VEHICLE_KINDS, f"{who}: vehicle kind {vehicle.get('kind')!r}")
        capacity = vehicle.get("capacity_kg")
        _check(_is_number(capacity) and capacity > 0, f"{who}: vehicle capacity_kg must be > 0")


def _check_preferred(who: str, sectors: Any) -> None:
    """Preferred sectors: None, or a list of distinct work sectors."""
    if sectors is None:
        return
    _check(isinstance(sectors, list), f"{who}: preferred_sectors must be a list")
    for sector in sectors:
        _check(sector in WORK_SECTORS, f"{who}: preferred sector {sector!r} is not one of {WORK_SECTORS}")
    _check(len(set(sectors)) == len(sectors), f"{who}: preferred_sectors repeats a sector")


def _check_windows(who: str, windows: Any) -> None:
    """Weekly windows on the store's clock (UTC): None (unrestricted), or a list of
    {"day": 0-6, "start": "HH:MM", "end": "HH:MM"} with start before end."""
    if windows is None:
        return
    _check(isinstance(windows, list), f"{who}: availability must be a list of weekly windows")
    for window in windows:
        _check(isinstance(window, dict), f"{who}: availability window {window!r} is not an object")
        day = window.get("day")
        _check(
            isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6,
            f"{who}: availability day {day!r} must be 0 (Monday) to 6 (Sunday)",
        )
        start, end = _clock_h(window.get("start")), _clock_h(window.get("end"))
        _check(
            start is not None and end is not None,
            f"{who}: availability window {window!r}: start and end are HH:MM, 00:00 to 24:00",
        )
        _check(start < end, f"{who}: availability window {window!r} ends before it starts")  # type: ignore[operator]


def _clock_h(text: Any) -> float | None:
    """Hours of an "HH:MM" time of day (24:00 allowed as the end of a day); None if it is not one."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":" or not text.replace(":", "").isdigit():
        return None
    hours, minutes = int(text[:2]), int(text[3:])
    value = hours + minutes / 60
    return value if minutes < 60 and value <= 24 else None


def _check_away(who: str, periods: Any) -> None:
    """Time away: None, or [{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}], both days included, to >= from."""
    if periods is None:
        return
    _check(isinstance(periods, list), f"{who}: away must be a list of periods")
    for period in periods:
        _check(isinstance(period, dict), f"{who}: away period {period!r} is not an object")
        first, last = _date(period.get("from")), _date(period.get("to"))
        _check(first is not None and last is not None, f"{who}: away period {period!r}: dates are YYYY-MM-DD")
        _check(last >= first, f'{who}: away period {period!r}: "to" is before "from"')  # type: ignore[operator]


def _date(text: Any) -> date | None:
    try:
        return date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_coordinate(entry: Mapping[str, Any]) -> bool:
    lat, lon = entry.get("lat"), entry.get("lon")
    return _is_number(lat) and _is_number(lon) and -90 <= lat <= 90 and -180 <= lon <= 180  # type: ignore[operator]


def load_region(session: Session, data: Mapping[str, Any]) -> LoadSummary:
    """Insert or update `data`; rows are matched by slug (members by name), live stock is kept."""
    validate_region(data)
    goods = _load_goods(session, data.get("goods", []))
    communities, counts = _load_communities(session, data.get("communities", []), goods)
    members = _load_members(session, data.get("members", []), communities)
    session.flush()
    summary = LoadSummary(
        len(data.get("communities", [])),
        counts["sites"],
        counts["devices"],
        len(goods),
        members,
        counts["stock"],
    )
    log.info(
        "region loaded: %s communities, %s sites, %s devices, %s goods, %s members, %s stock changes",
        summary.communities,
        summary.sites,
        summary.devices,
        summary.goods,
        summary.members,
        summary.stock_changes,
    )
    return summary


def _load_goods(session: Session, specs: list[dict[str, Any]]) -> dict[str, Good]:
    """Upsert the goods; returns every good in the store by slug (flushed, so ids are set)."""
    goods = {g.slug: g for g in session.scalars(select(Good))}
    for spec in specs:
        good = goods.get(spec["slug"]) or Good(slug=spec["slug"])
        good.name, good.unit, good.sector = spec["name"], spec["unit"], spec["sector"]
        good.essential = bool(spec.get("essential", False))
        good.perishability_hours = spec.get("perishability_hours")
        good.weight_kg_per_unit = float(spec.get("weight_kg_per_unit", 1.0))
        goods[good.slug] = good
        session.add(good)
    session.flush()
    return goods


def _load_communities(
    session: Session, specs: list[dict[str, Any]], goods: Mapping[str, Good]
) -> tuple[dict[str, Community], dict[str, int]]:
    """Upsert communities with their sites, devices, initial stock and needs; returns them by slug and
    the counts of sites, devices and stock changes."""
    communities = {c.slug: c for c in session.scalars(select(Community))}
    sites = {(s.community_id, s.slug): s for s in session.scalars(select(Site))}
    devices = {d.slug: d for d in session.scalars(select(Device))}
    stock = {(s.site_id, s.good_id): s for s in session.scalars(select(Stock))}
    needs = {(n.community_id, n.good_id): n for n in session.scalars(select(NeedLevel))}
    counts = {"sites": 0, "devices": 0, "stock": 0}
    for spec in specs:
        community = communities.get(spec["slug"]) or Community(slug=spec["slug"])
        community.name, community.lat, community.lon = spec["name"], spec["lat"], spec["lon"]
        community.population = int(spec.get("population", 0))
        session.add(community)
        session.flush()
        communities[community.slug] = community
        for site_spec in spec.get("sites", []):
            site = _upsert_site(session, sites, community.id, site_spec)
            counts["sites"] += 1
            counts["devices"] += _load_devices(session, devices, site.id, site_spec.get("devices", []))
            for good_slug, quantity in site_spec.get("stock", {}).items():
                counts["stock"] += _set_initial_stock(session, stock, site.id, goods[good_slug].id, quantity)
        _load_needs(session, needs, community.id, spec.get("needs", {}), goods)
    return communities, counts


def _upsert_site(
    session: Session, sites: dict[tuple[int, str], Site], community_id: int, spec: Mapping[str, Any]
) -> Site:
    """Insert or update one site of a community (flushed, so its id is set)."""
    site = sites.get((community_id, spec["slug"])) or Site(community_id=community_id, slug=spec["slug"])
    site.name, site.kind = spec["name"], spec["kind"]
    site.lat, site.lon = spec["lat"], spec["lon"]
    site.people_served = int(spec.get("people_served", 0))
    session.add(site)
    session.flush()
    return site


def _load_devices(
    session: Session, devices: dict[str, Device], site_id: int, specs: list[dict[str, Any]]
) -> int:
    """Insert or update a site's devices (a device named again elsewhere moves to this site)."""
    for spec in specs:
        device = devices.get(spec["slug"]) or Device(slug=spec["slug"])
        device.site_id, device.kind = site_id, spec["kind"]
        device.expected_interval_s = int(spec.get("interval_s", 60))
        device.credential_ref = spec.get("credential_ref", device.credential_ref)
        session.add(device)
        devices[device.slug] = device
    return len(specs)


def _load_needs(
    session: Session,
    needs: dict[tuple[int, int], NeedLevel],
    community_id: int,
    specs: Mapping[str, Mapping[str, Any]],
    goods: Mapping[str, Good],
) -> None:
    """Insert or update a community's need levels (minimum and target per good)."""
    for good_slug, level in specs.items():
        key = (community_id, goods[good_slug].id)
        need = needs.get(key) or NeedLevel(community_id=key[0], good_id=key[1])
        need.minimum, need.target = float(level["minimum"]), float(level["target"])
        session.add(need)
        needs[key] = need


def _set_initial_stock(
    session: Session, stock: dict[tuple[int, int], Stock], site_id: int, good_id: int, quantity: float
) -> int:
    """Initialise a stock level from the file; live levels already in the store are never overwritten."""
    if (site_id, good_id) in stock:
        return 0
    stock[(site_id, good_id)] = initial_level(session, site_id, good_id, quantity)
    return 1


def _load_members(session: Session, specs: list[dict[str, Any]], communities: dict[str, Community]) -> int:
    """Insert or update members (matched by community and name) with their offer, skills and vehicle."""
    existing = {(m.community_id, m.name): m for m in session.scalars(select(Member))}
    vehicles = {(v.member_id, v.name): v for v in session.scalars(select(Vehicle))}
    for spec in specs:
        community = communities[spec["community"]]
        member = existing.get((community.id, spec["name"])) or Member(
            name=spec["name"], community_id=community.id
        )
        roles = set(spec.get("roles", []))
        member.lat, member.lon = spec["lat"], spec["lon"]
        member.is_crew, member.is_driver = "crew" in roles, "driver" in roles
        member.hours_per_week = float(spec.get("hours_per_week", 0))
        member.hours_per_year = float(spec.get("hours_per_year", BASELINE_YEAR_HOURS))
        split = spec.get("sector_hours")
        member.sector_hours = None if split is None else {k: float(v) for k, v in split.items()}
        member.preferred_sectors = spec.get("preferred_sectors")
        member.availability = spec.get("availability")
        member.away = spec.get("away")
        member.skills = [MemberSkill(skill=skill) for skill in sorted(set(spec.get("skills", [])))]
        session.add(member)
        session.flush()
        existing[(community.id, member.name)] = member
        if spec.get("vehicle"):
            v = spec["vehicle"]
            name = v.get("name") or f"{member.name}'s {v['kind']}"
            vehicle = vehicles.get((member.id, name)) or Vehicle(member_id=member.id, name=name)
            vehicle.kind, vehicle.capacity_kg = v["kind"], float(v["capacity_kg"])
            vehicle.community_id = community.id
            session.add(vehicle)
    return len(specs)
