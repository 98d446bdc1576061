"""A board with work in every sector for the demo: what guilds and assemblies of a region typically post,
and the region's goals for the month.

The same few kinds of task in each of the first communities, recurring or one-off, with skilled places and
places for newcomers, all through gateway.store.board (so they pass the same checks as a posted task).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store import board, goals
from gateway.store.models import BoardTask, Community

# (title, sector, poster kind, poster, weekly days or None, start hour, hours, places)
Kind: TypeAlias = tuple[str, str, str, str, tuple[int, ...] | None, int, int, list[dict[str, Any]]]
KINDS: Final[tuple[Kind, ...]] = (
    ("Food-saving pickup at the market", "food", "guild", "Food-saving group", (1,), 9, 3,
     [{"skill": "logistics"}, {"newcomer": True}, {"newcomer": True}]),
    ("Homework club", "education", "assembly", "Neighbourhood assembly", (2, 4), 15, 2,
     [{}, {"newcomer": True}]),
    ("Blood-pressure check afternoon", "health", "guild", "Health circle", None, 14, 3,
     [{"skill": "first-aid"}, {"newcomer": True}]),
    ("Solar retrofit of the community centre", "maintenance", "guild", "Solar guild", None, 9, 4,
     [{"skill": "solar"}, {"skill": "electrician"}, {"newcomer": True}, {"newcomer": True}]),
    ("Assembly minutes and facilitation", "governance", "assembly", "Community assembly", (3,), 18, 2,
     [{}, {}]),
    ("Community garden work morning", "other", "member", "", (5,), 8, 3,
     [{"newcomer": True}, {"newcomer": True}, {}]),
)  # fmt: skip


def post_sample_tasks(session: Session, now: datetime, communities: int = 6) -> int:
    """Post the sample tasks in the first `communities` communities (none twice); returns how many."""
    if session.scalar(select(BoardTask.id).limit(1)) is not None:
        return 0
    posted = 0
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for n, community in enumerate(
        session.scalars(select(Community).order_by(Community.id).limit(communities))
    ):
        for k, (title, sector, kind, poster, days, hour, length, places) in enumerate(KINDS):
            start = day + timedelta(days=1 + (n + k) % 5, hours=hour)
            raw: dict[str, Any] = {
                "title": title,
                "sector": sector,
                "community": community.slug,
                "place": f"{community.name} community centre",
                "poster_kind": kind,
                "poster_name": f"{poster} of {community.name}" if poster else "",
                "urgency": 2 if sector == "maintenance" else 1,
                "slots": places,
            }
            if days is None:
                raw |= {
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=length)).isoformat(),
                }
            else:
                clock = {"start": f"{hour:02d}:00", "end": f"{hour + length:02d}:00"}
                raw |= {
                    "starts_at": day.isoformat(),
                    "ends_at": (day + timedelta(days=90)).isoformat(),
                    "recurrence": {"days": list(days), **clock},
                }
            board.post(session, board.parse_draft(raw), member_id=None, account="demo", now=now)
            posted += 1
    return posted


# Modest region goals for the demo's month, by sector: (hours given, places filled).
SAMPLE_GOALS: Final[dict[str, tuple[float, int]]] = {
    "food": (60.0, 20),
    "education": (30.0, 12),
    "health": (30.0, 10),
    "maintenance": (80.0, 16),
    "governance": (20.0, 8),
    "other": (40.0, 15),
}


def set_sample_goals(session: Session, now: datetime) -> int:
    """A region goal of hours and one of places filled in each of the six sectors for `now`'s month, through
    gateway.store.goals; one the region already has this month is left as it is. Returns how many it set."""
    month = goals.month_of(now)
    existing = {(g.sector, g.kind) for g in goals.goals_for(session, month, None)}
    count = 0
    for sector, (hours_target, slots_target) in SAMPLE_GOALS.items():
        for kind, target in (("hours", hours_target), ("slots", float(slots_target))):
            if (sector, kind) in existing:
                continue
            goals.set_goal(
                session,
                community_id=None,
                sector=sector,
                month=month,
                kind=kind,
                target=target,
                set_by="demo",
            )
            count += 1
    return count
