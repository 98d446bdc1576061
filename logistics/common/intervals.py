"""Sets of time as sorted, disjoint intervals: merged and cut. One definition for every planner, whether it
counts in hours from now (repairs) or in datetimes (routing, the task board)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

T = TypeVar("T", float, datetime)


def merge(intervals: Iterable[tuple[T, T]]) -> list[tuple[T, T]]:
    """Sorted, with overlapping or touching intervals joined; empty ones dropped."""
    out: list[tuple[T, T]] = []
    for a, b in sorted(iv for iv in intervals if iv[1] > iv[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(intervals: Iterable[tuple[T, T]], cuts: Iterable[tuple[T, T]]) -> list[tuple[T, T]]:
    """`intervals` without the time any of `cuts` covers (sorted and disjoint)."""
    pieces = merge(intervals)
    for c0, c1 in merge(cuts):
        kept: list[tuple[T, T]] = []
        for a, b in pieces:
            if c1 <= a or b <= c0:
                kept.append((a, b))
                continue
            if a < c0:
                kept.append((a, c0))
            if c1 < b:
                kept.append((c1, b))
        pieces = kept
    return pieces
