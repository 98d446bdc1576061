"""What the gateway records: readings, state changes, faults, repair tasks, dead letters, outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, BigId, utcnow
from gateway.store.models.vocab import (
    DEVICE_STATES,
    FAULT_STATUSES,
    READING_KINDS,
    SEVERITIES,
    TASK_EVENTS,
    TASK_STATUSES,
    one_of,
)


class Reading(Base):
    """One stored telemetry or stock message; (device, seq) is unique so redeliveries never duplicate."""

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("device_id", "seq"),
        one_of("kind", READING_KINDS),
        CheckConstraint("seq >= 0", name="seq"),
        Index(None, "device_id", "device_ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(16))
    device_ts: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]]


class DeviceStateChange(Base):
    """History of device states, for downtime and detection-latency figures."""

    __tablename__ = "device_state_changes"
    __table_args__ = (one_of("state", DEVICE_STATES), Index(None, "device_id", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(String(200), default="")


class Fault(Base):
    """An incident detected from a device's data; one per incident, not one per message."""

    __tablename__ = "faults"
    __table_args__ = (one_of("severity", SEVERITIES), one_of("status", FAULT_STATUSES))

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(48))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    first_abnormal_at: Mapped[datetime]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RepairTask(Base):
    """Work to fix a fault; closed only when the data confirms the fix."""

    __tablename__ = "repair_tasks"
    __table_args__ = (
        one_of("status", TASK_STATUSES),
        CheckConstraint("urgency >= 0", name="urgency"),
        CheckConstraint("estimated_hours > 0", name="estimated_hours"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fault_id: Mapped[int | None] = mapped_column(ForeignKey("faults.id", ondelete="SET NULL"), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="open")
    urgency: Mapped[int] = mapped_column(default=0)
    estimated_hours: Mapped[float] = mapped_column(default=2.0)  # what the planner reserves of a week
    required_skills: Mapped[list[Any]] = mapped_column(default=list)
    assigned_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    # Taken by a neighbour node's crew member: the opaque helper ref of their `help` fact (never a name).
    helper_ref: Mapped[str | None] = mapped_column(String(120))
    explanation: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]


class TaskEvent(Base):
    """Lifecycle history of a repair task: who was asked, who declined and why, when it closed."""

    __tablename__ = "task_events"
    __table_args__ = (one_of("event", TASK_EVENTS),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("repair_tasks.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetter(Base):
    """A message that broke the contract, kept byte for byte with the reason."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    topic: Mapped[str] = mapped_column(String(1024))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(String(40), index=True)
    detail: Mapped[str] = mapped_column(String(500), default="")


class OutboxMessage(Base):
    """A message the system must publish; written in the transaction that decided it, drained later."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("qos IN (0, 1, 2)", name="qos"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(None, "published_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    topic: Mapped[str] = mapped_column(String(1024))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    qos: Mapped[int] = mapped_column(default=1)
    retain: Mapped[bool] = mapped_column(default=False)
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
