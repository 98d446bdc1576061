"""Seeded synthetic allocation problems, for benchmarks and scale tests (no store needed)."""

from __future__ import annotations

import math

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
) -> AllocationInput:
    """Communities at random in a square; per good, stock drawn so some are short and others have surplus."""
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
        stock = (targets * rng.uniform(0.0, rng.uniform(1.2, 2.5), communities)).round(1)
        holdings += [
            Holding(p.id, good.id, float(stock[i]), float(targets[i] / 2), float(targets[i]))
            for i, p in enumerate(places)
        ]
    return AllocationInput(places, infos, holdings)
