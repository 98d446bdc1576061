"""The members of the sample region: people in every community in proportion to its population, each with an
offer (yearly hours and their split by sector, a weekly pledge, weekly windows, time away).

The 60 hand-written members at the head of gateway/contract/regions/puerto_rico.json stay as they are (name,
community, home, skills, roles, weekly pledge, vehicle: tests and the demo refer to them); they gain the offer
fields. Everyone else is generated, deterministically from SEED, so the file is rewritten byte for byte:

    .venv/bin/python -m bench.synthetic.people            # print what the file would hold
    .venv/bin/python -m bench.synthetic.people --check    # exit 1 if the file is not what it would write
    .venv/bin/python -m bench.synthetic.people --write    # rewrite the sample region's members

A person is one member whatever their roles (crew, driver or both). Every person is fictional.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final

from gateway.store.region import read_region, sample_region_path

SEED: Final = 2017
KEPT: Final = 60  # hand-written members at the head of the file: kept, offer fields added
PEOPLE_PER_MEMBER: Final = 4000  # one member per this many inhabitants
MIN_PER_COMMUNITY: Final = 2
UTC_OFFSET_H: Final = -4  # Puerto Rico keeps Atlantic Standard Time all year; windows are stored in UTC

# Roles of a generated person (crew only, driver only, both) and the share of drivers who lend a vehicle:
# about a third of all members then have one.
ROLE_WEIGHTS: Final = {("crew",): 0.45, ("driver",): 0.33, ("crew", "driver"): 0.22}
VEHICLE_P: Final = 0.6
# Repair skills, weighted by how often a crew member holds them (the fault rules need the first four).
REPAIR_SKILLS: Final = {
    "pump-mechanic": 3.0,
    "electrician": 3.0,
    "refrigeration": 2.5,
    "electronics": 2.5,
    "plumbing": 1.5,
    "solar": 1.5,
    "welding": 1.0,
}
MECHANIC_SKILLS: Final = frozenset(REPAIR_SKILLS)
# The community baseline of a year's volunteering (docs/planning.md): 150 h.
BASELINE: Final = {
    "food": 20,
    "education": 20,
    "health": 20,
    "maintenance": 20,
    "governance": 20,
    "other": 50,
}
YEAR_MEDIAN_H: Final = 150.0
YEAR_RANGE_H: Final = (60, 400)
WEEK_RANGE_H: Final = (2, 12)
# (kind, capacity low, high in kg, weight): what people lend in Puerto Rico, pickups first.
VEHICLES: Final = (
    ("pickup", 700, 1000, 0.40),
    ("car", 250, 400, 0.30),
    ("van", 900, 1400, 0.15),
    ("motorcycle", 100, 150, 0.10),
    ("truck", 2500, 4000, 0.05),
)
COLOURS: Final = ("White", "Red", "Blue", "Grey", "Silver", "Black", "Green", "Yellow")
AWAY_FROM, AWAY_DAYS = date(2025, 6, 1), 760  # time away falls between June 2025 and mid 2027

GIVEN: Final = (
    "Ana", "Carmen", "María", "Luz", "Rosa", "Gladys", "Iris", "Wanda", "Sonia", "Nilda", "Lourdes",
    "Maritza", "Mildred", "Migdalia", "Yolanda", "Zoraida", "Xiomara", "Betzaida", "Damaris", "Glorimar",
    "Ivelisse", "Keila", "Marisol", "Nereida", "Noemí", "Yamilet", "Yesenia", "Aixa", "Brenda", "Judith",
    "Natalia", "Yaritza", "Keishla", "Coral", "Jannette", "Lizbeth", "Maribel", "Omayra", "Sheila", "Tamara",
    "Vilmarie", "Zuleika", "Daisy", "Elba", "Enid", "Frances", "Ileana", "Jessica", "Lissette", "Madeline",
    "Carlos", "José", "Luis", "Juan", "Pedro", "Miguel", "Ramón", "Rafael", "Jorge", "Javier", "Héctor",
    "Víctor", "Ángel", "Jesús", "Manuel", "Roberto", "Samuel", "Edwin", "Wilfredo", "Ernesto", "Efraín",
    "Félix", "Gilberto", "Heriberto", "Ismael", "Orlando", "Raúl", "Tomás", "Omar", "Jomar", "Yadiel",
    "Alexis", "Benjamín", "Cristian", "Eliezer", "Fernando", "Gabriel", "Israel", "Joel", "Kelvin",
    "Nelson", "Osvaldo", "Pablo", "Reinaldo", "Sixto", "Wilson", "Xavier", "Abdiel", "Edgardo", "Noel",
)  # fmt: skip
# Common Puerto Rican surnames, most frequent first (a person carries two: father's, then mother's).
SURNAMES: Final = (
    "Rivera", "Rodríguez", "Santiago", "Ortiz", "Torres", "González", "Colón", "Pérez", "Díaz", "Cruz",
    "Hernández", "Ramos", "Vázquez", "Morales", "Martínez", "López", "Figueroa", "Sánchez", "Rosario",
    "Reyes", "Nieves", "Medina", "Maldonado", "Meléndez", "Negrón", "Rosado", "Vega", "Serrano", "Ayala",
    "Acevedo", "Feliciano", "Quiñones", "Pagán", "Irizarry", "Burgos", "Matos", "Alicea", "Velázquez",
    "Cordero", "Padilla", "Marrero", "Santana", "Cintrón", "Soto", "Lugo", "Delgado", "Otero", "Jiménez",
    "Rosa", "Ruiz", "Class", "Mercado", "Báez", "Fuentes", "Carrasquillo", "Berríos", "Olmeda", "Toledo",
)  # fmt: skip


def rule_skills() -> list[tuple[str, tuple[str, ...]]]:
    """(device kind or '*', skills one person must hold) for every bundled fault rule."""
    text = (resources.files("gateway.ingest") / "faults" / "rules.toml").read_text(encoding="utf-8")
    needs = {(rule["device_kind"], tuple(rule.get("skills", []))) for rule in tomllib.loads(text)["rule"]}
    return sorted(need for need in needs if need[1])


def members_of(region: dict[str, Any], seed: int = SEED) -> list[dict[str, Any]]:
    """The region's members: the first KEPT as written (with an offer), then the generated people."""
    kept = [_with_offer(m, random.Random(f"{seed}/kept/{m['name']}")) for m in region["members"][:KEPT]]
    names = {m["name"] for m in kept}
    needs = rule_skills()
    people = list(kept)
    for community in region["communities"]:
        rng = random.Random(f"{seed}/{community['slug']}")
        here = [m for m in kept if m["community"] == community["slug"]]
        target = max(MIN_PER_COMMUNITY, round(community["population"] / PEOPLE_PER_MEMBER))
        new = [_person(rng, community, names) for _ in range(max(0, target - len(here)))]
        new += _cover_skills(rng, community, here + new, new, needs, names)
        people += new
    return people


def with_members(region: dict[str, Any], seed: int = SEED) -> dict[str, Any]:
    """A copy of the region with its members regenerated (everything else as it was)."""
    changed = copy.deepcopy(region)
    changed["members"] = members_of(region, seed)
    return changed


def _person(rng: random.Random, community: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """One generated person of `community`: name, home, roles, skills, offer and perhaps a vehicle."""
    roles = list(rng.choices(list(ROLE_WEIGHTS), weights=list(ROLE_WEIGHTS.values()))[0])
    lat, lon = _home(rng, community)
    person: dict[str, Any] = {
        "name": _name(rng, names),
        "community": community["slug"],
        "lat": lat,
        "lon": lon,
        "skills": _skills(rng, roles),
        "roles": roles,
        "hours_per_week": None,  # drawn with the offer
    }
    person = _with_offer(person, rng)
    if "driver" in roles and rng.random() < VEHICLE_P:
        person["vehicle"] = _vehicle(rng)
    return person


def _name(rng: random.Random, taken: set[str]) -> str:
    """A given name and two different surnames, unique in the file (common surnames more often)."""
    weights = [1 / (rank + 4) for rank in range(len(SURNAMES))]
    while True:
        first, second = rng.choices(SURNAMES, weights=weights, k=2)
        name = f"{rng.choice(GIVEN)} {first} {second}"
        if first != second and name not in taken:
            taken.add(name)
            return name


def _home(rng: random.Random, community: dict[str, Any]) -> tuple[float, float]:
    """A point in the triangle of the community's centre and two of its sites (all on land; sites lie within
    0.05 degrees of the centre), a hundred metres or so off: homes stay on land, near the town."""
    sites = community["sites"]
    a, b = rng.sample(sites, 2) if len(sites) > 1 else (sites[0], sites[0])
    u, v = rng.random(), rng.random()
    if u + v > 1:
        u, v = 1 - u, 1 - v
    u, v = 0.9 * u, 0.9 * v
    points = []
    for key in ("lat", "lon"):
        centre = community[key]
        value = centre + u * (a[key] - centre) + v * (b[key] - centre) + rng.gauss(0, 0.0015)
        points.append(round(value, 5))
    return points[0], points[1]


def _skills(rng: random.Random, roles: Sequence[str]) -> list[str]:
    """Repair skills for crew (one to three), logistics and first aid mostly for drivers."""
    skills: set[str] = set()
    if "crew" in roles:
        while len(skills) < rng.choice((1, 2, 2, 3)):
            skills.add(rng.choices(list(REPAIR_SKILLS), weights=list(REPAIR_SKILLS.values()))[0])
    if "driver" in roles and rng.random() < 0.7:
        skills.add("logistics")
    if rng.random() < (0.3 if "driver" in roles else 0.2):
        skills.add("first-aid")
    return _ordered(skills)


def _ordered(skills: Iterable[str]) -> list[str]:
    """Repair skills in their usual order, then first aid and logistics."""
    order = [*REPAIR_SKILLS, "first-aid", "logistics"]
    return sorted(set(skills), key=lambda s: (order.index(s) if s in order else len(order), s))


def _with_offer(member: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The member with an offer drawn around the baseline; a weekly pledge already given is kept."""
    year = _year_hours(rng)
    week = member.get("hours_per_week")
    if week is None:
        week = min(WEEK_RANGE_H[1], max(WEEK_RANGE_H[0], round(year / 52 * rng.uniform(1.5, 3.5))))
    year = max(year, 12 * int(week))  # a weekly pledge of 12 h is at least 144 h a year
    roles, skills = member["roles"], set(member["skills"])
    split = _sector_hours(rng, year, roles, skills)
    out = {key: value for key, value in member.items() if key != "vehicle"}
    out.update(hours_per_week=week, hours_per_year=year, sector_hours=split)
    if rng.random() < 0.7:
        out["preferred_sectors"] = _preferred(rng, split)
    if rng.random() < 0.85:
        out["availability"] = _availability(rng, float(week))
    if rng.random() < 0.15:
        out["away"] = _away(rng)
    if member.get("vehicle"):
        out["vehicle"] = member["vehicle"]
    return out


def _year_hours(rng: random.Random) -> int:
    """Yearly hours: lognormal around the 150 h baseline, 60 to 400, in steps of 5."""
    value = YEAR_MEDIAN_H * math.exp(rng.gauss(0, 0.4))
    return int(5 * round(min(YEAR_RANGE_H[1], max(YEAR_RANGE_H[0], value)) / 5))


def _sector_hours(rng: random.Random, year: int, roles: Sequence[str], skills: set[str]) -> dict[str, int]:
    """The year's hours by sector: the baseline's shares, perturbed; mechanics lean to maintenance, drivers
    to food and other work, first-aiders to health. Whole hours adding up to `year`."""
    weights = {sector: share * math.exp(rng.gauss(0, 0.35)) for sector, share in BASELINE.items()}
    if "crew" in roles and skills & MECHANIC_SKILLS:
        weights["maintenance"] *= 3.0
    if "driver" in roles:
        weights["food"] *= 2.0
        weights["other"] *= 1.5
    if "first-aid" in skills:
        weights["health"] *= 1.5
    total = sum(weights.values())
    exact = {sector: year * w / total for sector, w in weights.items()}
    split = {sector: math.floor(h) for sector, h in exact.items()}
    for sector in sorted(exact, key=lambda s: split[s] - exact[s])[: year - sum(split.values())]:
        split[sector] += 1  # largest remainders first
    return split


def _preferred(rng: random.Random, split: dict[str, int]) -> list[str]:
    """One or two sectors among the three they give most to (other work is nobody's preference)."""
    top = [s for s in sorted(split, key=lambda s: -split[s]) if s != "other"][:3]
    return rng.sample(top, k=rng.choice((1, 1, 2)))


# Weekly patterns in local time: (weekdays to choose from, how many, start hours, length hours). All end by
# 20:00 local time, 24:00 UTC, so no window runs over midnight on the store's clock.
PATTERNS: Final = {
    "evenings": ((0, 1, 2, 3, 4), (2, 5), (16, 17), (3, 4)),
    "weekend": ((5, 6), (1, 2), (8, 9, 10), (4, 8)),
    "mornings": ((0, 1, 2, 3, 4), (3, 5), (8,), (4, 5)),
    "days": ((0, 1, 2, 3, 4, 5, 6), (3, 6), (8, 9), (7, 8)),
}
LATEST_LOCAL_H: Final = 20
PATTERN_WEIGHTS: Final = {"evenings": 0.35, "weekend": 0.25, "mornings": 0.15, "days": 0.25}


def _availability(rng: random.Random, week_h: float) -> list[dict[str, Any]]:
    """Weekly windows (UTC) from one or two local patterns, at least 1.5 times the weekly pledge in all."""
    local: list[tuple[int, float, float]] = []
    names = list(PATTERN_WEIGHTS)
    count = 2 if rng.random() < 0.4 else 1
    while count > 0 or sum(end - start for _, start, end in local) < 1.5 * week_h:
        pattern = rng.choices(names, weights=list(PATTERN_WEIGHTS.values()))[0] if count > 0 else "days"
        days, (low, high), starts, (short, long) = PATTERNS[pattern]
        start = rng.choice(starts)
        length = min(rng.randint(short, long), LATEST_LOCAL_H - start)
        local += [(day, start, start + length) for day in rng.sample(days, k=rng.randint(low, high))]
        count -= 1
    return _windows(_to_utc(local))


def _to_utc(local: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """Local (day, start h, end h) as UTC pieces, split at midnight."""
    pieces = []
    for day, start, end in local:
        start, end = start - UTC_OFFSET_H, end - UTC_OFFSET_H
        for offset in (0, 1):
            lo, hi = max(start, 24 * offset), min(end, 24 * (offset + 1))
            if hi > lo:
                pieces.append(((day + offset) % 7, lo - 24 * offset, hi - 24 * offset))
    return pieces


def _windows(pieces: list[tuple[int, float, float]]) -> list[dict[str, Any]]:
    """Merge overlapping pieces per day into `{"day", "start", "end"}` windows, Monday first."""
    merged: list[list[float]] = []
    for day, start, end in sorted(pieces):
        if merged and merged[-1][0] == day and start <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], end)
        else:
            merged.append([day, start, end])
    return [{"day": int(d), "start": _clock(s), "end": _clock(e)} for d, s, e in merged]


def _clock(hours: float) -> str:
    return f"{int(hours):02d}:{round((hours % 1) * 60):02d}"


def _away(rng: random.Random) -> list[dict[str, str]]:
    """One or two periods away (3 to 21 days, both ends included), in date order, not overlapping."""
    periods: list[tuple[date, date]] = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        start = AWAY_FROM + timedelta(days=rng.randrange(AWAY_DAYS))
        end = start + timedelta(days=rng.randint(3, 21) - 1)
        if all(end < a or start > b for a, b in periods):
            periods.append((start, end))
    return [{"from": a.isoformat(), "to": b.isoformat()} for a, b in sorted(periods)]


def _vehicle(rng: random.Random) -> dict[str, Any]:
    """A vehicle a driver lends: kind, a colour for its name, a capacity within the kind's range (50 kg)."""
    kind, low, high, _ = rng.choices(VEHICLES, weights=[v[3] for v in VEHICLES])[0]
    step = 50 if high > 200 else 10
    capacity = step * round(rng.uniform(low, high) / step)
    return {"name": f"{rng.choice(COLOURS)} {kind}", "kind": kind, "capacity_kg": capacity}


def _cover_skills(
    rng: random.Random,
    community: dict[str, Any],
    members: list[dict[str, Any]],
    new: list[dict[str, Any]],
    needs: list[tuple[str, tuple[str, ...]]],
    names: set[str],
) -> list[dict[str, Any]]:
    """Make sure the community's crew can take every fault its devices can raise: a missing skill set goes to
    a generated crew member (a generated driver joins the crew for it; else one more person). Returns the
    people added."""
    kinds = {device["kind"] for site in community["sites"] for device in site.get("devices", [])}
    added: list[dict[str, Any]] = []
    for kind, skills in needs:
        if not kinds or (kind != "*" and kind not in kinds):
            continue
        everyone = members + added
        if any("crew" in m["roles"] and set(skills) <= set(m["skills"]) for m in everyone):
            continue
        pool = [m for m in new + added if "crew" in m["roles"]] or [m for m in new + added]
        if not pool:
            person = _person(rng, community, names)
            person["roles"] = sorted({*person["roles"], "crew"})
            added.append(person)
            pool = [person]
        chosen = min(pool, key=lambda m: (len(m["skills"]), (new + added).index(m)))
        chosen["roles"] = sorted({*chosen["roles"], "crew"})
        chosen["skills"] = _ordered({*chosen["skills"], *skills})
        split = random.Random(f"cover/{chosen['name']}")  # their year leans to repairs now
        chosen["sector_hours"] = _sector_hours(
            split, chosen["hours_per_year"], chosen["roles"], set(chosen["skills"])
        )
    return added


def summary(members: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and the spread of the offers, for the report and the docs."""
    roles = Counter(tuple(sorted(m["roles"])) for m in members)
    year = sorted(m["hours_per_year"] for m in members)
    week = sorted(m["hours_per_week"] for m in members)
    return {
        "members": len(members),
        "crew": sum(n for r, n in roles.items() if "crew" in r),
        "drivers": sum(n for r, n in roles.items() if "driver" in r),
        "both": roles[("crew", "driver")],
        "with_vehicle": sum(1 for m in members if m.get("vehicle")),
        "with_availability": sum(1 for m in members if m.get("availability")),
        "with_away": sum(1 for m in members if m.get("away")),
        "communities": len({m["community"] for m in members}),
        "hours_per_year": (year[0], year[len(year) // 2], year[-1], sum(year)),
        "hours_per_week": (week[0], week[len(week) // 2], week[-1], sum(week)),
    }


def _text(region: dict[str, Any]) -> str:
    return json.dumps(region, indent=1, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary; --write rewrites the sample region's members, --check tells if it is up to date."""
    parser = argparse.ArgumentParser(description="regenerate the members of the sample region (seeded)")
    parser.add_argument("--write", action="store_true", help="rewrite the bundled puerto_rico.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not what it would write")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed [{SEED}]")
    args = parser.parse_args(argv)
    path = sample_region_path()
    region = read_region(path)
    text = _text(with_members(region, args.seed))
    print(json.dumps(summary(json.loads(text)["members"])), file=sys.stderr)
    if args.check:
        return 0 if path.read_text(encoding="utf-8") == text else 1
    if args.write:
        Path(path).write_text(text, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
