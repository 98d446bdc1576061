"""The open task board's matcher: open places x volunteers -> suggestions, in PuLP.

`solve_match(MatchInput) -> MatchPlan` is the door: every place gets one suited person with room (skill,
distance, free time, weekly pledge, yearly sector offer, no overlap, no decline) or a reason; urgent places
first, then load spread (a convex penalty on load ratios), preferred sectors and rotation, then distance.
Week by week: a cost-aware first fit over up to `MatchInput.candidates` people a place (`candidates.py`),
improved region by region by a MIP (`week.py`, `model.py`, objective in `costs.py`) within a time limit.
"""

from logistics.tasks.data import (
    SECTORS,
    MatchInput,
    MatchPlan,
    OpenPlace,
    Suggestion,
    Unmatched,
    Volunteer,
    gini,
    week_of,
)
from logistics.tasks.model import build_match_model
from logistics.tasks.solve import check, solve_match, volunteers_after, why_not

__all__ = [
    "SECTORS",
    "MatchInput",
    "MatchPlan",
    "OpenPlace",
    "Suggestion",
    "Unmatched",
    "Volunteer",
    "build_match_model",
    "candidates",
    "check",
    "gini",
    "solve_match",
    "volunteers_after",
    "week_of",
    "why_not",
]
