"""What a coordinator sees at /crew: every crew member's open tasks at a glance (by name, never ranked) and
the repairs nobody has yet, each member's own page one link away."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.models import Community, Member, RepairTask, Site
from gateway.store.tasks import SHOWN_TO_CREW, TO_PLAN


@dataclass(frozen=True)
class CrewLine:
    """A crew member and how many tasks are on their list."""

    member_id: int
    name: str
    community: str
    open_tasks: int


@dataclass(frozen=True)
class Waiting:
    """A repair task nobody has yet."""

    id: int
    title: str
    urgency: int
    site: str
    community: str


def crew_lines(session: Session) -> list[CrewLine]:
    """Active crew members by name, each with the tasks on their list."""
    counts = dict(
        session.execute(
            select(RepairTask.assigned_member_id, func.count())
            .where(RepairTask.status.in_(SHOWN_TO_CREW), RepairTask.assigned_member_id.is_not(None))
            .group_by(RepairTask.assigned_member_id)
        ).all()
    )
    rows = session.execute(
        select(Member.id, Member.name, Community.name)
        .join(Community, Member.community_id == Community.id)
        .where(Member.is_crew.is_(True), Member.active.is_(True))
        .order_by(Member.name, Member.id)
    )
    return [CrewLine(i, name, community, int(counts.get(i, 0))) for i, name, community in rows]


def waiting(session: Session, limit: int = 50) -> list[Waiting]:
    """Open repair tasks nobody has, most urgent first."""
    rows = session.execute(
        select(RepairTask.id, RepairTask.title, RepairTask.urgency, Site.name, Community.name)
        .join(Site, RepairTask.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .where(RepairTask.status.in_(TO_PLAN), RepairTask.assigned_member_id.is_(None))
        .order_by(RepairTask.urgency.desc(), RepairTask.id)
        .limit(limit)
    )
    return [Waiting(*row) for row in rows]
