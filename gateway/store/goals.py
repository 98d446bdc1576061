"""Monthly sector goals: what a community (or the whole region) sets out to give in a sector this month, in
hours of work or in board places filled. The only writer of sector_goals.

A goal is one row per (community or region, sector, month, kind); setting it again changes its target.
Progress against it is collective (dashboard.read.progress): sums over the ledger and the board, never a
person's share.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.errors import InvalidInput, NotFound
from gateway.store.models import Community, SectorGoal
from gateway.store.models.vocab import BOARD_SECTORS, GOAL_KINDS, GoalKind

MONTH_RE: Final = re.compile(r"^(\d{4})-(\d{2})$")
FIRST_YEAR, LAST_YEAR = 2000, 2999
# A month of a whole region: 100,000 h is some 8,000 people giving all of a month's baseline share.
MAX_TARGET: Final = {GoalKind.HOURS.value: 100_000.0, GoalKind.SLOTS.value: 100_000.0}
MAX_SET_BY: Final = 48  # sector_goals.set_by
REGION: Final = "region"  # what forms and the CLI call a goal of no single community


def parse_month(value: Any) -> str:
    """ "YYYY-MM" as given (surrounding spaces dropped), or InvalidInput naming the field."""
    text = value.strip() if isinstance(value, str) else None
    found = MONTH_RE.match(text) if text else None
    if text is None or found is None:
        raise InvalidInput("month must be YYYY-MM, like 2026-12")
    year, month = int(found.group(1)), int(found.group(2))
    if not 1 <= month <= 12:
        raise InvalidInput(f"month must be YYYY-MM with a month from 01 to 12, not {text!r}")
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidInput(f"month must be in the years {FIRST_YEAR} to {LAST_YEAR}")
    return text


def month_of(at: datetime) -> str:
    """The "YYYY-MM" month `at` falls in, UTC."""
    return at.astimezone(UTC).strftime("%Y-%m") if at.tzinfo else at.strftime("%Y-%m")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a "YYYY-MM" month, UTC."""
    text = parse_month(month)
    year, number = int(text[:4]), int(text[5:])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if number == 12 else datetime(year, number + 1, 1, tzinfo=UTC)
    return start, end


def parse_sector(value: Any) -> str:
    """One of the six board sectors."""
    if not isinstance(value, str) or value.strip().lower() not in BOARD_SECTORS:
        raise InvalidInput(f"sector must be one of {', '.join(BOARD_SECTORS)}")
    return value.strip().lower()


def parse_kind(value: Any) -> str:
    """hours (of work given) or slots (board places filled)."""
    if not isinstance(value, str) or value.strip().lower() not in GOAL_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(GOAL_KINDS)}")
    return value.strip().lower()


def parse_target(value: Any, kind: str) -> float:
    """A finite number above zero and within the kind's bound; a whole number of slots."""
    if isinstance(value, bool):
        raise InvalidInput("target must be a number")
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,3}(,\d{3})+\s*", value):
        raise InvalidInput("target: write it without a thousands separator (1000, not 1,000)")
    try:
        target = float(value.strip().replace(",", ".") if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InvalidInput("target must be a number") from None
    if not math.isfinite(target) or target <= 0:
        raise InvalidInput("target must be a number above 0")
    high = MAX_TARGET[kind]
    if target > high:
        raise InvalidInput(f"target must be at most {high:,.0f} {kind} a month")
    if kind == GoalKind.SLOTS and not target.is_integer():
        raise InvalidInput("a slots target is a whole number of places")
    return target


def community_id_of(session: Session, slug: Any) -> int | None:
    """The id of the community `slug` names; None for "", "region" or no value (a goal of the region)."""
    if slug is None or (isinstance(slug, str) and slug.strip().lower() in ("", REGION)):
        return None
    if not isinstance(slug, str):
        raise InvalidInput("community must be a community's slug, or region")
    found = session.scalar(select(Community.id).where(Community.slug == slug.strip()))
    if found is None:
        raise InvalidInput(f"no community {slug.strip()[:60]!r}")
    return found


def set_goal(
    session: Session,
    *,
    community_id: int | None,
    sector: str,
    month: str,
    kind: str,
    target: float | str,
    set_by: str,
) -> SectorGoal:
    """Set (or change the target of) a community's goal, or the region's with `community_id` None.

    Every field is checked here, whoever calls (form, CLI, demo); InvalidInput names the field."""
    sector, month, kind = parse_sector(sector), parse_month(month), parse_kind(kind)
    value = parse_target(target, kind)
    if not isinstance(set_by, str):
        raise InvalidInput("set_by must be text")
    if community_id is not None and (
        isinstance(community_id, bool)
        or not isinstance(community_id, int)
        or session.get(Community, community_id) is None
    ):
        raise InvalidInput(f"no community with id {community_id!r}")
    goal = _find(session, community_id, sector, month, kind)
    if goal is None:
        goal = SectorGoal(community_id=community_id, sector=sector, month=month, kind=kind)
        session.add(goal)
    goal.target = value
    goal.set_by = set_by.strip()[:MAX_SET_BY]
    session.flush()
    return goal


def _find(
    session: Session, community_id: int | None, sector: str, month: str, kind: str
) -> SectorGoal | None:
    """The goal of that key (a NULL community is not unique to the database, so it is looked up here)."""
    where = (
        SectorGoal.community_id.is_(None) if community_id is None else SectorGoal.community_id == community_id
    )
    return session.scalar(
        select(SectorGoal)
        .where(where, SectorGoal.sector == sector, SectorGoal.month == month, SectorGoal.kind == kind)
        .order_by(SectorGoal.id)
        .limit(1)
    )


def remove_goal(session: Session, goal_id: int) -> SectorGoal:
    """Delete a goal; returns it (detached) so the caller can say what went. NotFound if there is none."""
    goal = session.get(SectorGoal, goal_id) if isinstance(goal_id, int) else None
    if goal is None:
        raise NotFound(f"no goal {goal_id!r}")
    session.delete(goal)
    session.flush()
    return goal


def goals_for(
    session: Session, month: str, community_id: int | Literal["all"] | None = "all"
) -> list[SectorGoal]:
    """The month's goals: every one ("all"), the region's (None) or one community's (its id); in the
    board's sector order, the region's first, hours before slots."""
    query = select(SectorGoal).where(SectorGoal.month == parse_month(month))
    if community_id is None:
        query = query.where(SectorGoal.community_id.is_(None))
    elif community_id != "all":
        query = query.where(SectorGoal.community_id == community_id)
    return sorted(
        session.scalars(query),
        key=lambda g: (
            BOARD_SECTORS.index(g.sector),
            g.community_id is not None,
            g.community_id or 0,
            GOAL_KINDS.index(g.kind),
        ),
    )
