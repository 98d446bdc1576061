"""The crew page's reads: a member's tasks still on their list, and the alerts queued for them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.read import alert_words
from gateway.contract.topics import member_alerts_topic
from gateway.store.models import Community, Fault, Member, MemberSkill, OutboxMessage, RepairTask, Site
from gateway.store.tasks import SHOWN_TO_CREW, TO_PLAN
from logistics.common.geo import haversine_km

MAX_ALERT_TEXT = 500
NEAR_KM = 25.0  # as far as the board looks for a member (dashboard.read.board.fitting_tasks)
MAX_NEAR = 20
LINK = re.compile(
    r"/(?!/)[A-Za-z0-9/_#?=&.-]{0,199}"
)  # a path on this dashboard; never another site's address


@dataclass(frozen=True)
class CrewTask:
    """A task as the crew page shows it."""

    id: int
    title: str
    status: str
    urgency: int
    skills: tuple[str, ...]
    site_name: str
    community_name: str
    lat: float
    lon: float
    explanation: str | None
    created_at: datetime
    fault_kind: str | None = None  # the fault rule that opened it (gateway/ingest/faults/rules.toml)


@dataclass(frozen=True)
class Alert:
    """One alert addressed to a member, as text, with its kind and the dashboard path it points to."""

    id: int
    at: datetime
    text: str
    kind: str = "alert"
    link: str | None = None


def member_tasks(session: Session, member_id: int) -> list[CrewTask]:
    """The member's tasks not yet closed, most urgent first."""
    rows = session.execute(
        select(RepairTask, Site.name, Community.name, Site.lat, Site.lon, Fault.kind)
        .join(Site, RepairTask.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .outerjoin(Fault, Fault.id == RepairTask.fault_id)
        .where(RepairTask.assigned_member_id == member_id, RepairTask.status.in_(SHOWN_TO_CREW))
        .order_by(RepairTask.urgency.desc(), RepairTask.created_at, RepairTask.id)
    )
    return [
        CrewTask(
            t.id,
            t.title,
            t.status,
            t.urgency,
            tuple(str(s) for s in t.required_skills or ()),
            site,
            community,
            lat,
            lon,
            t.explanation,
            t.created_at,
            kind,
        )
        for t, site, community, lat, lon, kind in rows
    ]


def open_near(session: Session, member: Member, within_km: float = NEAR_KM) -> list[CrewTask]:
    """Repairs nobody has yet (open or escalated) that the member could take: at a site of their community or
    within `within_km` of their home, needing no skill they lack; most urgent first. While no planner runs
    these would otherwise wait unseen."""
    skills = set(session.scalars(select(MemberSkill.skill).where(MemberSkill.member_id == member.id)))
    rows = session.execute(
        select(RepairTask, Site.name, Community.name, Site.lat, Site.lon, Fault.kind, Site.community_id)
        .join(Site, RepairTask.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .outerjoin(Fault, Fault.id == RepairTask.fault_id)
        .where(RepairTask.status.in_(TO_PLAN), RepairTask.helper_ref.is_(None))
        .order_by(RepairTask.urgency.desc(), RepairTask.created_at, RepairTask.id)
    )
    found = []
    for t, site, community, lat, lon, kind, community_id in rows:
        needs = tuple(str(s) for s in t.required_skills or ())
        if not set(needs) <= skills:
            continue
        if community_id != member.community_id and haversine_km(member.lat, member.lon, lat, lon) > within_km:
            continue
        found.append(
            CrewTask(
                t.id, t.title, t.status, t.urgency, needs, site, community, lat, lon, None, t.created_at, kind
            )
        )
        if len(found) == MAX_NEAR:
            break
    return found


def read_alert(payload: bytes) -> tuple[str, str, str | None]:
    """An alert payload as (text, kind, link): a sentence for every kind (dashboard.read.alert_words), the
    payload's text itself when it is not JSON; `link` only when it is a path on this dashboard."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload.decode("utf-8", errors="replace")[:MAX_ALERT_TEXT], "alert", None
    if not isinstance(body, dict):
        return alert_words.sentence({"value": body})[:MAX_ALERT_TEXT], "alert", None
    link = body.get("link")
    path = link if isinstance(link, str) and LINK.fullmatch(link) else None
    return alert_words.sentence(body)[:MAX_ALERT_TEXT], alert_words.kind_of(body)[:48], path


def member_alerts(session: Session, member_id: int, after_id: int = 0, limit: int = 50) -> list[Alert]:
    """Alerts queued for the member (topic rhizome/v1/members/<id>/alerts) newer than `after_id`."""
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.created_at, OutboxMessage.payload)
        .where(OutboxMessage.topic == member_alerts_topic(member_id), OutboxMessage.id > after_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    return sorted((Alert(i, at, *read_alert(p)) for i, at, p in rows), key=lambda a: a.id)
