"""A seeded synthetic month of the open task board: members with offers around the 150 h/year baseline,
clustered in communities, and board tasks across the six sectors (many recurring weekly) whose places ask
for about `demand` of the month's offered hours. Plain matcher input, no store.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from logistics.tasks import MatchInput, OpenPlace, Volunteer

START: Final = datetime(2027, 2, 1, tzinfo=UTC)  # a Monday; February: four ISO weeks
DAYS: Final = 28
BASELINE: Final = {
    "food": 20.0,
    "education": 20.0,
    "health": 20.0,
    "maintenance": 20.0,
    "governance": 20.0,
    "other": 50.0,
}
SECTOR_SHARE: Final = {
    "food": 0.25,
    "education": 0.15,
    "health": 0.15,
    "maintenance": 0.15,
    "governance": 0.10,
    "other": 0.20,
}
# (sector, skill, share of that sector's slots needing it)
SKILLED: Final = (
    ("maintenance", "electrician", 0.12),
    ("maintenance", "solar-installer", 0.10),
    ("maintenance", "plumbing", 0.08),
    ("health", "first-aid", 0.25),
    ("education", "teacher", 0.20),
    ("food", "food-safety", 0.05),
)
SKILL_P: Final = {  # share of members with each skill
    "electrician": 0.08,
    "solar-installer": 0.06,
    "plumbing": 0.06,
    "first-aid": 0.12,
    "teacher": 0.10,
    "food-safety": 0.08,
}
TITLES: Final = {
    "food": "food-saving pickup",
    "education": "homework club",
    "health": "clinic help",
    "maintenance": "repair day",
    "governance": "assembly minutes",
    "other": "community garden",
}


@dataclass(frozen=True)
class Month:
    """The month's input and what it took to make it (for the bench's header)."""

    data: MatchInput
    tasks: int
    slots: int
    offered_h: float
    asked_h: float
    sector_of_task: dict[int, str]


def synthetic_month(members: int = 5000, communities: int = 60, demand: float = 0.5, seed: int = 1) -> Month:
    """Members, then tasks until the places ask for `demand` of the month's share of the yearly offers."""
    rng = random.Random(seed)
    centres = [(rng.uniform(18.0, 18.45), rng.uniform(-67.15, -65.65)) for _ in range(communities)]
    sizes = [rng.lognormvariate(0, 0.6) for _ in centres]
    vols = [_volunteer(rng, i + 1, centres, sizes) for i in range(members)]
    offered = sum(sum(v.year_offer.values()) for v in vols) * DAYS / 365
    places: list[OpenPlace] = []
    task_id, slot_id, shift_id = 0, 0, 0
    sector_of: dict[int, str] = {}
    asked = 0.0
    while asked < demand * offered:
        task_id += 1
        sector = rng.choices(list(SECTOR_SHARE), weights=list(SECTOR_SHARE.values()))[0]
        sector_of[task_id] = sector
        c = rng.choices(range(communities), weights=sizes)[0]
        lat, lon = _near(rng, centres[c], 2.0)
        length = rng.choice((2, 2, 3, 3, 4))
        hour = rng.choice((8, 9, 10, 13, 14, 16, 17, 18))
        urgency = rng.choices((0, 1, 2, 3), weights=(3, 6, 2, 1))[0]
        weekly = rng.random() < 0.7
        days = [rng.randrange(7)] if weekly else [rng.randrange(DAYS)]
        starts = (
            [START + timedelta(days=days[0] + 7 * w, hours=hour) for w in range(4)]
            if weekly
            else [START + timedelta(days=days[0], hours=hour)]
        )
        slots = []
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            slot_id += 1
            skill = next((s for sec, s, p in SKILLED if sec == sector and rng.random() < p), None)
            newcomer = skill is None and rng.random() < 0.25
            slots.append((slot_id, skill, newcomer))
        for at in starts:
            shift_id += 1
            for sid, skill, newcomer in slots:
                places.append(
                    OpenPlace(
                        shift_id,
                        sid,
                        task_id,
                        c,
                        sector,
                        skill,
                        newcomer,
                        lat,
                        lon,
                        at,
                        at + timedelta(hours=length),
                        float(length),
                        urgency,
                        title=TITLES[sector],
                    )
                )
                asked += length
    data = MatchInput(places, vols, now=START - timedelta(hours=1), period_days=DAYS)
    return Month(data, task_id, slot_id, offered, asked, sector_of)


def _near(rng: random.Random, centre: tuple[float, float], km: float) -> tuple[float, float]:
    lat = centre[0] + rng.gauss(0, km) / 111.0
    lon = centre[1] + rng.gauss(0, km) / (111.0 * math.cos(math.radians(centre[0])))
    return lat, lon


def _volunteer(
    rng: random.Random, mid: int, centres: list[tuple[float, float]], sizes: list[float]
) -> Volunteer:
    c = rng.choices(range(len(centres)), weights=sizes)[0]
    lat, lon = _near(rng, centres[c], 3.0)
    scale = min(2.5, max(0.5, rng.lognormvariate(0, 0.3)))
    offer = {s: round(h * scale, 1) for s, h in BASELINE.items()}
    # January is over: about a twelfth of each offer given, give or take.
    year_load = {s: round(h * rng.uniform(0.0, 0.17), 1) for s, h in offer.items()}
    skills = frozenset(s for s, p in SKILL_P.items() if rng.random() < p)
    preferred = (
        frozenset(rng.sample(list(BASELINE), rng.choice((1, 2)))) if rng.random() < 0.4 else frozenset()
    )
    return Volunteer(
        id=mid,
        community_id=c,
        lat=lat,
        lon=lon,
        skills=skills,
        hours_per_week=float(rng.choice((3, 4, 4, 5, 5, 6))),
        year_offer=offer,
        year_load=year_load,
        preferred_sectors=preferred,
        free=_free(rng),
    )


def _free(rng: random.Random) -> tuple[tuple[datetime, datetime], ...]:
    """Half the people gave weekly windows (3-5 of 4-10 h), the rest 07:00-21:00 daily; some are away."""
    if rng.random() < 0.5:
        windows = [
            (rng.randrange(7), rng.choice((7, 8, 12, 13, 16)), rng.choice((4, 6, 8, 10)))
            for _ in range(rng.randint(3, 5))
        ]
        spans = [
            (
                START + timedelta(days=d + 7 * w, hours=h),
                START + timedelta(days=d + 7 * w, hours=min(24, h + n)),
            )
            for w in range(5)
            for d, h, n in windows
        ]
    else:
        spans = [
            (START + timedelta(days=d, hours=7), START + timedelta(days=d, hours=21)) for d in range(DAYS + 7)
        ]
    if rng.random() < 0.12:
        first = date(2027, 2, 1) + timedelta(days=rng.randrange(DAYS))
        away_from = datetime(first.year, first.month, first.day, tzinfo=UTC)
        away_to = away_from + timedelta(days=rng.randint(3, 10))
        spans = [
            piece
            for s, e in spans
            for piece in ((s, min(e, away_from)), (max(s, away_to), e))
            if piece[1] > piece[0]
        ]
    return tuple(spans)
