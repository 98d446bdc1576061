"""What the board's matcher minimises, as numbers: an open place, a pair (sector preference, rotation,
distance) and the convex load penalty, with the segments the model writes it as.

Every term is a cost >= 0, so a relative MIP gap means something; heaviest first: OPEN per place left open
(more for urgent ones); a convex piecewise-linear penalty on each person's load ratio (hours in the period /
the period's share of their yearly offer: the steeper the further up, so hours go to the least loaded and
the Gini of the ratios falls); a cost for a sector they do not prefer, or one whose share of their year is
ahead of its share of their offer; and distance. The penalty of one place stays below OPEN unless it more
than quadruples someone's ratio, so a place is left open only when nobody suited has room. (Rewarding filled
places instead is the same optimum, but its objective is ~1,000 per place, so a gap of 1e-3 would let the
solver stop anywhere among the choices that differ only in fairness and distance.)
"""

from __future__ import annotations

import bisect
import itertools
import math
from typing import Final

from logistics.tasks.data import OpenPlace

OPEN: Final = 1000.0  # per place left open
URGENCY_OPEN: Final = 250.0  # added per urgency level
# Load penalty: (ratio up to, cost per unit of ratio in that segment). Convex: about 40 x ratio squared up
# to 1.5 (so even at low loads two people with a place each beat one with both, by more than a few km),
# then steeper.
SEGMENTS: Final[tuple[tuple[float, float], ...]] = (
    (0.1, 4.0),
    (0.25, 14.0),
    (0.5, 30.0),
    (0.8, 52.0),
    (1.0, 72.0),
    (1.5, 100.0),
    (math.inf, 240.0),
)
PREFERRED: Final = 6.0  # cost of a place outside the person's preferred sectors
ROTATION: Final = 2.0  # cost x (1 - how far the sector's share of their year lags its share of their offer)
PER_KM: Final = 0.1  # cost of a km (25 km: 2.5)
ROOM_EPS: Final = 1e-9  # hours: float noise when comparing room left to a place's hours


def open_cost(place: OpenPlace) -> float:
    """What leaving a place open costs: more than any pair's cost and load penalty, more when urgent."""
    return OPEN + URGENCY_OPEN * place.urgency


def pair_cost(prefers: bool, sector_gap: float, km: float) -> float:
    """Preference, rotation and distance of one pair (the load penalty is separate)."""
    return (0.0 if prefers else PREFERRED) + ROTATION * (1.0 - sector_gap) + PER_KM * km


_BREAKS = [0.0, *(high for high, _ in SEGMENTS[:-1])]  # where each segment starts (ratio)
_SLOPES = [slope for _, slope in SEGMENTS]
_AT_BREAKS = [  # the penalty of going from ratio 0 to each break
    0.0,
    *itertools.accumulate(
        (b - a) * k for a, b, k in zip(_BREAKS[:-1], _BREAKS[1:], _SLOPES[:-1], strict=True)
    ),
]


def penalty(offer: float, start_ratio: float, hours: float) -> float:
    """The load penalty of `hours` more for someone with this period offer and ratio: what the model's
    segments charge (someone with no offer pays the steepest slope per hour)."""
    if offer <= 0 or not math.isfinite(start_ratio):
        return hours * _SLOPES[-1] / max(offer, 1.0)

    def cumulative(r: float) -> float:
        k = bisect.bisect_right(_BREAKS, r) - 1
        return _AT_BREAKS[k] + (r - _BREAKS[k]) * _SLOPES[k]

    low = max(start_ratio, 0.0)
    return cumulative(low + hours / offer) - cumulative(low)


def segments(offer: float, start_ratio: float, most_h: float) -> list[tuple[float | None, float]]:
    """(width in hours or None for unbounded, cost per hour) of the load penalty from the current ratio, as
    far as `most_h` more hours could reach (segments past that could never be used)."""
    if offer <= 0 or not math.isfinite(start_ratio):
        return [(None, SEGMENTS[-1][1] / max(offer, 1.0))]
    found: list[tuple[float | None, float]] = []
    low, reach = 0.0, 0.0
    for high, slope in SEGMENTS:
        if high > start_ratio:
            if not math.isfinite(high):
                found.append((None, slope / offer))
                break
            width = (high - max(low, start_ratio)) * offer
            reach += width
            if reach >= most_h - ROOM_EPS:
                found.append((None, slope / offer))  # the last one needed: its bound could never bind
                break
            found.append((width, slope / offer))
        low = high
    return found
