"""Turn detector events into store rows in the caller's transaction: fault, repair task, device state,
task history and the alerts to publish (outbox), so nothing is lost if the broker is down."""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.alerts import crew_task_link, place_fields
from gateway.contract.events import TaskCreated
from gateway.contract.payloads import format_ts
from gateway.contract.topics import community_alerts_topic, member_alerts_topic
from gateway.ingest.detector import Cleared, Event, Opened
from gateway.store import tasks
from gateway.store.models import (
    Community,
    Device,
    DeviceStateChange,
    Fault,
    Good,
    RepairTask,
    Site,
    Stock,
)
from gateway.store.models.vocab import FaultStatus
from gateway.store.outbox import enqueue, enqueue_event

log = logging.getLogger(__name__)


def urgency(base: int, people_served: int) -> int:
    """Severity first, then the people affected: a pump serving 2,000 people outranks a farm's soil probe."""
    return base + round(10 * math.log10(1 + max(people_served, 0)))


def apply_event(session: Session, event: Event) -> int | None:
    """Write what `event` means; return the repair task id it opened or closed."""
    if isinstance(event, Opened):
        return _open(session, event)
    return _clear(session, event)


def _place(session: Session, device_id: int) -> tuple[Device, Site, Community]:
    device = session.get(Device, device_id)
    assert device is not None
    site = session.get(Site, device.site_id)
    assert site is not None
    community = session.get(Community, site.community_id)
    assert community is not None
    return device, site, community


def _open(session: Session, event: Opened) -> int:
    device, site, community = _place(session, event.device_id)
    rule = event.rule
    details: dict[str, Any] = {"rule": rule.name, **event.details}
    if rule.name == "cold_chain_breach":
        details["perishable_at_risk"] = _perishable_stock(session, site.id)
    fault = Fault(
        device_id=device.id,
        site_id=site.id,
        kind=rule.name,
        severity=rule.severity,
        first_abnormal_at=event.first_abnormal_at,
        opened_at=event.at,
        details=json.loads(json.dumps(details, default=str)),
    )
    session.add(fault)
    session.flush()
    task = tasks.open_task(
        session,
        fault_id=fault.id,
        site_id=site.id,
        title=f"{rule.title} at {site.name}",
        urgency=urgency(rule.urgency, site.people_served),
        skills=rule.skills,
        reason=rule.name,
        at=event.at,
        estimated_hours=rule.repair_hours,
    )
    if rule.kind != "silent":  # a silent device is already "stale"; that says more than "fault"
        set_state(session, device, "fault", event.at, rule.name)
    alert = {
        "type": "fault",
        "fault_id": fault.id,
        "task_id": task.id,
        "kind": rule.name,
        "severity": rule.severity,
        "title": task.title,
        "community": community.slug,
        "site": site.slug,
        "device": device.slug,
        **place_fields(site.name, site.lat, site.lon, crew_task_link(task.id)),
        "urgency": task.urgency,
        "skills": list(rule.skills),
        "first_abnormal_at": format_ts(event.first_abnormal_at),
        "at": format_ts(event.at),
    }
    enqueue(session, community_alerts_topic(community.slug), alert)
    enqueue_event(session, TaskCreated(task_id=task.id, fault_id=fault.id, at=event.at))
    log.warning(
        "fault %s (%s) at %s/%s: task %s, urgency %s",
        rule.name,
        rule.severity,
        community.slug,
        site.slug,
        task.id,
        task.urgency,
    )
    return task.id


def _clear(session: Session, event: Cleared) -> int | None:
    fault = session.scalars(
        select(Fault)
        .where(
            Fault.device_id == event.device_id,
            Fault.kind == event.rule.name,
            Fault.status == FaultStatus.OPEN,
        )
        .order_by(Fault.id.desc())
    ).first()
    if fault is None:
        return None
    fault.status, fault.cleared_at = FaultStatus.CLEARED.value, event.at
    device, site, community = _place(session, event.device_id)
    still_open = session.scalar(
        select(Fault.id).where(
            Fault.device_id == device.id, Fault.status == FaultStatus.OPEN, Fault.id != fault.id
        )
    )
    if still_open is None:
        set_state(session, device, "online", event.at, f"{event.rule.name} cleared")
    task = session.scalars(select(RepairTask).where(RepairTask.fault_id == fault.id)).first()
    if task is None or not tasks.allows(task.status, tasks.TaskAction.CONFIRM):
        return None
    notice = {
        "type": "fault_cleared",
        "fault_id": fault.id,
        "task_id": task.id,
        "kind": fault.kind,
        "community": community.slug,
        "site": site.slug,
        "at": format_ts(event.at),
        **place_fields(site.name, site.lat, site.lon, crew_task_link(task.id)),
    }
    enqueue(session, community_alerts_topic(community.slug), notice)
    if task.assigned_member_id is not None:
        enqueue(session, member_alerts_topic(task.assigned_member_id), notice)
    reason = f"readings normal for {event.rule.clear_after_s:.0f} s"
    tasks.apply(session, task, tasks.TaskAction.CONFIRM, reason=reason, at=event.at)
    log.info(
        "fault %s at %s/%s cleared by the data; task %s closed",
        fault.kind,
        community.slug,
        site.slug,
        task.id,
    )
    return task.id


def _perishable_stock(session: Session, site_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Good.slug, Good.name, Stock.quantity, Good.unit, Good.perishability_hours)
        .join(Stock, Stock.good_id == Good.id)
        .where(Stock.site_id == site_id, Stock.quantity > 0, Good.perishability_hours.is_not(None))
    )
    return [{"good": s, "name": n, "quantity": q, "unit": u, "hours": h} for s, n, q, u, h in rows]


def set_state(session: Session, device: Device, state: str, at: datetime, reason: str) -> int:
    """Change a device's state and record the change; 1 if it changed, else 0."""
    if device.state == state:
        return 0
    device.state, device.state_changed_at = state, at
    session.add(DeviceStateChange(device_id=device.id, state=state, at=at, reason=reason[:200]))
    return 1
