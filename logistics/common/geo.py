"""Great-circle distances and nearest neighbours, vectorised with numpy (no spatial index at 2,000 places)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dlat, dlon = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dlat / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def distance_matrix_km(
    lat_a: Sequence[float] | NDArray[np.float64],
    lon_a: Sequence[float] | NDArray[np.float64],
    lat_b: Sequence[float] | NDArray[np.float64],
    lon_b: Sequence[float] | NDArray[np.float64],
) -> NDArray[np.float64]:
    """Great-circle km from every point of A (rows) to every point of B (columns)."""
    pa, la = np.radians(np.asarray(lat_a, dtype=float))[:, None], np.radians(np.asarray(lon_a, dtype=float))
    pb, lb = np.radians(np.asarray(lat_b, dtype=float))[None, :], np.radians(np.asarray(lon_b, dtype=float))
    h = np.sin((pb - pa) / 2) ** 2 + np.cos(pa) * np.cos(pb) * np.sin((lb[None, :] - la[:, None]) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def nearest_columns(dist: NDArray[np.float64], k: int) -> NDArray[np.intp]:
    """Column indices of the k smallest entries of each row (all columns when there are at most k)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    rows, cols = dist.shape
    if cols <= k:
        return np.broadcast_to(np.arange(cols), (rows, cols)).copy()
    # argpartition is O(cols) per row; the order inside the k nearest does not matter to callers.
    return np.argpartition(dist, k - 1, axis=1)[:, :k]


def mutual_nearest_mask(dist: NDArray[np.float64], k: int) -> NDArray[np.bool_]:
    """True where a column is among its row's k nearest, or the row among its column's k nearest."""
    rows, cols = dist.shape
    mask = np.zeros((rows, cols), dtype=bool)
    if rows == 0 or cols == 0:
        return mask
    mask[np.arange(rows)[:, None], nearest_columns(dist, k)] = True
    mask[nearest_columns(dist.T, k), np.arange(cols)[:, None]] = True
    return mask
