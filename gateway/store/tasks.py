"""Crew work on repair tasks: the allowed transitions, each recorded as a TaskEvent; and a member's alerts.

A task marked fixed waits in `fixed_pending` for sensor data to confirm the repair (the gateway closes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.protocol import member_alerts_topic
from gateway.store.models import Community, OutboxMessage, RepairTask, Site, TaskEvent, utcnow

ACTIVE_STATUSES = ("assigned", "accepted", "in_progress", "fixed_pending")
MAX_REASON = 500


@dataclass(frozen=True)
class Transition:
    """What a crew action needs and does."""

    allowed_from: tuple[str, ...]
    status: str
    event: str
    needs_reason: bool = False


ACTIONS = {
    "accept": Transition(("assigned",), "accepted", "accepted"),
    # Declining hands the task back to the assigner; the reason is kept so nobody is asked twice for nothing.
    "decline": Transition(("assigned", "accepted"), "open", "declined", needs_reason=True),
    "start": Transition(("accepted",), "in_progress", "started"),
    "fixed": Transition(("in_progress",), "fixed_pending", "marked_fixed"),
}


class TaskActionError(ValueError):
    """A crew action that cannot be applied; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


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


@dataclass(frozen=True)
class Alert:
    """One alert addressed to a member, as text."""

    id: int
    at: datetime
    text: str


def member_tasks(session: Session, member_id: int) -> list[CrewTask]:
    """The member's tasks not yet closed, most urgent first."""
    rows = session.execute(
        select(RepairTask, Site.name, Community.name, Site.lat, Site.lon)
        .join(Site, RepairTask.site_id == Site.id)
        .join(Community, Site.community_id == Community.id)
        .where(RepairTask.assigned_member_id == member_id, RepairTask.status.in_(ACTIVE_STATUSES))
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
        )
        for t, site, community, lat, lon in rows
    ]


def apply_action(session: Session, task_id: int, member_id: int, action: str, reason: str = "") -> RepairTask:
    """Apply a crew action to one of the member's tasks and record it; raises TaskActionError."""
    transition = ACTIONS.get(action)
    if transition is None:
        raise TaskActionError(f"unknown action {action[:40]!r}; use one of {', '.join(ACTIONS)}", 404)
    reason = reason.strip()
    if transition.needs_reason and not reason:
        raise TaskActionError("say why you decline, so the next person is not asked for nothing", 400)
    if len(reason) > MAX_REASON:
        raise TaskActionError(f"the reason is longer than {MAX_REASON} characters", 400)
    task = session.scalar(select(RepairTask).where(RepairTask.id == task_id).with_for_update())
    if task is None or task.assigned_member_id != member_id:
        raise TaskActionError("no such task among yours", 404)
    if task.status not in transition.allowed_from:
        raise TaskActionError(f"the task is {task.status.replace('_', ' ')}: it cannot be {transition.event}")
    task.status = transition.status
    task.updated_at = utcnow()
    if action == "decline":
        task.assigned_member_id = None
    session.add(TaskEvent(task_id=task.id, member_id=member_id, event=transition.event, reason=reason))
    return task


def alert_text(payload: bytes) -> str:
    """Readable text of an alert payload: its text/title/message field, else the JSON itself."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload.decode("utf-8", errors="replace")[:500]
    if isinstance(body, dict):
        for key in ("text", "message", "title", "summary"):
            if isinstance(body.get(key), str):
                return body[key][:500]
    return json.dumps(body, ensure_ascii=False)[:500]


def member_alerts(session: Session, member_id: int, after_id: int = 0, limit: int = 50) -> list[Alert]:
    """Alerts queued for the member (topic rhizome/v1/members/<id>/alerts) newer than `after_id`."""
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.created_at, OutboxMessage.payload)
        .where(OutboxMessage.topic == member_alerts_topic(member_id), OutboxMessage.id > after_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    return sorted((Alert(i, at, alert_text(p)) for i, at, p in rows), key=lambda a: a.id)
