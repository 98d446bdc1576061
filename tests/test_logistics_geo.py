"""Great-circle distances and the nearest-neighbour masks the sparse network is built from."""

from __future__ import annotations

import numpy as np
import pytest

from logistics.common.geo import distance_matrix_km, haversine_km, mutual_nearest_mask, nearest_columns


def test_haversine_known_distances() -> None:
    assert haversine_km(0, 0, 1, 0) == pytest.approx(111.195, abs=0.001)  # one degree of a meridian
    assert haversine_km(18.27, -66.7, 18.27, -66.7) == 0.0
    assert haversine_km(0, 0, 0, 180) == pytest.approx(np.pi * 6371.0088)  # antipodes
    assert haversine_km(0, 0, 0, 90) == pytest.approx(np.pi / 2 * 6371.0088)  # a quarter of the equator
    assert haversine_km(60, 0, 60, 1) == pytest.approx(111.195 / 2, abs=0.01)  # cos(60 deg) shrinks longitude


def test_matrix_agrees_with_the_scalar_formula() -> None:
    rng = np.random.default_rng(1)
    a = rng.uniform([-60, -170], [60, 170], (5, 2))
    b = rng.uniform([-60, -170], [60, 170], (7, 2))
    matrix = distance_matrix_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    assert matrix.shape == (5, 7)
    for i in range(5):
        for j in range(7):
            assert matrix[i, j] == pytest.approx(haversine_km(a[i, 0], a[i, 1], b[j, 0], b[j, 1]))


def test_nearest_columns_picks_the_k_smallest() -> None:
    dist = np.array([[5.0, 1.0, 3.0, 2.0], [0.5, 9.0, 8.0, 7.0]])
    assert [sorted(row) for row in nearest_columns(dist, 2).tolist()] == [[1, 3], [0, 3]]
    assert nearest_columns(dist, 10).tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    with pytest.raises(ValueError):
        nearest_columns(dist, 0)


def test_mutual_mask_keeps_each_sides_nearest() -> None:
    # Suppliers (rows) at 0 and 100 km, demanders (columns) at 1, 2 and 99 km on a line.
    dist = np.abs(np.array([[0.0], [100.0]]) - np.array([[1.0, 2.0, 99.0]]))
    mask = mutual_nearest_mask(dist, 1)
    # Row 0 -> col 0, row 1 -> col 2; col 0 -> row 0, col 1 -> row 0, col 2 -> row 1.
    assert mask.tolist() == [[True, True, False], [False, False, True]]
    assert mutual_nearest_mask(np.zeros((0, 3)), 2).shape == (0, 3)
