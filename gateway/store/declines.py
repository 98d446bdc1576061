"""Declines are remembered: a person who said no to a task or to a route's shipments is not asked for them
again for DECLINE_DAYS, unless they ask for it after all (`ask_again`).

A route's decline is kept per shipment lane (good, from site, to site), not per shipment id: the allocation
may revise a shipment into a new row, and "I cannot carry rice from Utuado to Lares this week" still holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract import clock
from gateway.contract.errors import Conflict, NotFound
from gateway.store.models import Decline, Shipment

DECLINE_DAYS: Final = 7
MAX_REASON: Final = 500


def record_task(
    session: Session, task_id: int, member_id: int, reason: str, at: datetime | None = None
) -> Decline:
    """`member_id` declined task `task_id`."""
    at = at or clock.now()
    row = Decline(
        member_id=member_id,
        task_id=task_id,
        at=at,
        until=at + timedelta(days=DECLINE_DAYS),
        reason=reason[:MAX_REASON],
    )
    session.add(row)
    return row


def record_board_task(
    session: Session, board_task_id: int, member_id: int, reason: str = "", at: datetime | None = None
) -> Decline:
    """`member_id` said no to a suggestion from board task `board_task_id` (no reason needed)."""
    at = at or clock.now()
    row = Decline(
        member_id=member_id,
        board_task_id=board_task_id,
        at=at,
        until=at + timedelta(days=DECLINE_DAYS),
        reason=reason[:MAX_REASON],
    )
    session.add(row)
    return row


def record_route(
    session: Session,
    route_id: int,
    member_id: int,
    shipments: Sequence[Shipment],
    reason: str,
    at: datetime | None = None,
) -> list[Decline]:
    """`member_id` declined route `route_id`: one row per lane of the shipments it carried."""
    at = at or clock.now()
    lanes = sorted({(s.good_id, s.from_site_id, s.to_site_id) for s in shipments})
    rows = [
        Decline(
            member_id=member_id,
            route_id=route_id,
            good_id=good,
            from_site_id=source,
            to_site_id=destination,
            at=at,
            until=at + timedelta(days=DECLINE_DAYS),
            reason=reason[:MAX_REASON],
        )
        for good, source, destination in lanes
    ]
    session.add_all(rows)
    return rows


def active(session: Session, now: datetime | None = None) -> list[Decline]:
    """Declines that still hold at `now`: not expired, not withdrawn."""
    now = now or clock.now()
    return list(
        session.scalars(
            select(Decline)
            .where(Decline.until > now, Decline.withdrawn_at.is_(None))
            .order_by(Decline.member_id, Decline.id)
        )
    )


def declined_tasks(declines: Sequence[Decline]) -> dict[int, set[int]]:
    """Task id -> members whose decline of it still holds."""
    out: dict[int, set[int]] = {}
    for d in declines:
        if d.task_id is not None:
            out.setdefault(d.task_id, set()).add(d.member_id)
    return out


def declined_lanes(declines: Sequence[Decline]) -> dict[tuple[int, int, int], set[int]]:
    """(good, from site, to site) -> members whose decline of that lane still holds."""
    out: dict[tuple[int, int, int], set[int]] = {}
    for d in declines:
        if d.good_id is not None and d.from_site_id is not None and d.to_site_id is not None:
            out.setdefault((d.good_id, d.from_site_id, d.to_site_id), set()).add(d.member_id)
    return out


def of_member(session: Session, member_id: int, now: datetime | None = None) -> list[Decline]:
    """A person's own declines that still hold (their page lists them, with "ask for it again")."""
    return [d for d in active(session, now) if d.member_id == member_id]


def ask_again(session: Session, decline_id: int, member_id: int, at: datetime | None = None) -> Decline:
    """The person asks for what they declined after all: planners may offer it to them again."""
    row = session.get(Decline, decline_id)
    if row is None or row.member_id != member_id:
        raise NotFound("no such decline among yours")
    if row.withdrawn_at is not None:
        raise Conflict("you already asked for this again")
    row.withdrawn_at = at or clock.now()
    return row
