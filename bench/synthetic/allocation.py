"""Seeded synthetic allocation problems, for benchmarks and scale tests (no store needed)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from logistics.allocation.data import AllocationInput, GoodInfo, Holding, Place

# (slug, sector, essential, perishability_hours): a mix of goods that keep and goods that spoil on the road.
CATALOGUE = (
    ("drinking-water", "water", True, None),
    ("insulin", "health", True, 4.0),
    ("oral-rehydration-salts", "health", True, None),
    ("rice", "food", True, None),
    ("fresh-fish", "food", False, 3.0),
    ("plantains", "food", False, 48.0),
    ("eggs", "food", False, 24.0),
    ("solar-lamps", "energy", True, None),
    ("batteries", "energy", False, None),
    ("soap", "other", False, None),
)


def synthetic_input(
    communities: int,
    goods: int = 10,
    *,
    seed: int = 1,
    square_km: float = 200.0,
    centre: tuple[float, float] = (18.2, -66.5),
    plenty: tuple[float, float] = (1.2, 2.5),
) -> AllocationInput:
    """Communities at random in a square; per good, stock drawn so some are short and others have surplus.

    Each good's stock is drawn between none and up to `plenty` (a range) times the target."""
    if communities < 1 or not 1 <= goods <= len(CATALOGUE):
        raise ValueError(f"need at least 1 community and 1..{len(CATALOGUE)} goods")
    rng = np.random.default_rng(seed)
    half_lat = square_km / 2 / 111.32
    half_lon = half_lat / math.cos(math.radians(centre[0]))
    lats = centre[0] + rng.uniform(-half_lat, half_lat, communities)
    lons = centre[1] + rng.uniform(-half_lon, half_lon, communities)
    places = [Place(i + 1, f"community-{i + 1}", float(lats[i]), float(lons[i])) for i in range(communities)]
    infos = [
        GoodInfo(j + 1, slug, sector, essential, hours)
        for j, (slug, sector, essential, hours) in enumerate(CATALOGUE[:goods])
    ]
    holdings = []
    for good in infos:
        targets = rng.uniform(50.0, 500.0, communities).round(1)
        # Stock between none and up to 1.2-2.5 times the target: some goods are scarce, others plentiful.
        stock = (targets * rng.uniform(0.0, rng.uniform(*plenty), communities)).round(1)
        holdings += [
            Holding(p.id, good.id, float(stock[i]), float(targets[i] / 2), float(targets[i]))
            for i, p in enumerate(places)
        ]
    return AllocationInput(places, infos, holdings)


def scarce_input(communities: int, goods: int = 10, *, seed: int = 1) -> AllocationInput:
    """Scarcity, with one hard-to-reach community: stock up to 1.0-1.3 times the target (little surplus, many
    short), people and hours short drawn at random, and an island 250 km off whose only neighbour in reach
    of a perishable good is an islet with one unit to spare (the issue's floor that collapsed to 1%)."""
    base = synthetic_input(communities, goods, seed=seed, plenty=(1.0, 1.3))
    rng = np.random.default_rng(seed + 1)
    people = rng.integers(50, 5000, len(base.places))
    places = [replace(p, people=float(people[i])) for i, p in enumerate(base.places)]
    holdings = [
        replace(h, short_hours=float(rng.uniform(0.0, 336.0))) if h.stock < h.minimum else h
        for h in base.holdings
    ]
    lat, lon = base.places[0].lat, base.places[0].lon
    island, islet = len(places) + 1, len(places) + 2
    east = 250.0 / (111.32 * math.cos(math.radians(lat)))
    places += [
        Place(island, "island", lat, lon + east, people=800.0),
        Place(islet, "islet", lat, lon + east + 0.05, people=20.0),
    ]
    for good in base.goods:
        holdings += [
            Holding(island, good.id, 0.0, 50.0, 100.0, short_hours=72.0),
            Holding(islet, good.id, 101.0, 100.0, 100.0),
        ]
    return replace(base, places=places, holdings=holdings)
