"""The open task board: work of every sector that guilds, assemblies, coordinators and members post, the
dates it happens on, the places it has for people, and who signed up (gateway.store.board writes them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, BigId, utcnow
from gateway.store.models.vocab import (
    BOARD_SECTORS,
    BOARD_TASK_STATUSES,
    GOAL_KINDS,
    POSTER_KINDS,
    SHIFT_STATUSES,
    SIGNUP_STATES,
    one_of,
)

LIVE_SIGNUP_SQL = "state IN ('suggested', 'taken', 'done')"  # a signup that holds its place


class BoardTask(Base):
    """A piece of work posted on the board: one window, or a weekly schedule (`recurrence`) between
    `starts_at` and `ends_at`. Each occurrence is a TaskShift; each place for a person a TaskSlot."""

    __tablename__ = "board_tasks"
    __table_args__ = (
        one_of("sector", BOARD_SECTORS),
        one_of("status", BOARD_TASK_STATUSES),
        one_of("poster_kind", POSTER_KINDS),
        CheckConstraint("urgency BETWEEN 0 AND 3", name="urgency"),
        CheckConstraint("hours_per_slot > 0", name="hours_per_slot"),
        CheckConstraint("ends_at > starts_at", name="interval"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
        Index(None, "status", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    sector: Mapped[str] = mapped_column(String(16))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    place: Mapped[str] = mapped_column(String(200), default="")
    lat: Mapped[float]
    lon: Mapped[float]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    # {"days": [1], "start": "09:00", "end": "12:00"} (0 = Monday, UTC): every such day from starts_at's
    # date to ends_at's; None: one window, starts_at to ends_at.
    recurrence: Mapped[dict[str, Any] | None]
    hours_per_slot: Mapped[float]  # what one person gives to one occurrence
    urgency: Mapped[int] = mapped_column(default=1)  # 0 low, 1 normal, 2 high, 3 urgent
    status: Mapped[str] = mapped_column(String(12), default="open")
    poster_kind: Mapped[str] = mapped_column(String(12), default="member")
    poster_name: Mapped[str] = mapped_column(String(200), default="")  # the guild or assembly, if any
    posted_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    posted_by_account: Mapped[str] = mapped_column(String(48), default="")
    cancel_reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    cancelled_at: Mapped[datetime | None]


class TaskSlot(Base):
    """One place for one person in every occurrence of a task, with the skill it needs (None: anyone);
    `newcomer` marks a place where no experience is needed."""

    __tablename__ = "task_slots"
    __table_args__ = (UniqueConstraint("task_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("board_tasks.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    skill: Mapped[str | None] = mapped_column(String(48))
    newcomer: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(String(200), default="")


class TaskShift(Base):
    """One occurrence of a task: the window its slots are filled for."""

    __tablename__ = "task_shifts"
    __table_args__ = (
        UniqueConstraint("task_id", "starts_at"),
        one_of("status", SHIFT_STATUSES),
        CheckConstraint("ends_at > starts_at", name="interval"),
        Index(None, "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("board_tasks.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="open")
    urgent_alerted_at: Mapped[datetime | None]  # when the "starting soon, nobody yet" alert went out


class SlotSignup(Base):
    """A person in one slot of one shift: suggested by the matcher (until they answer), taken (they opted
    in or accepted), declined, released (they stepped back, or the task changed), lapsed (no answer in
    time) or done. At most one signup per (shift, slot) holds the place."""

    __tablename__ = "slot_signups"
    __table_args__ = (
        one_of("state", SIGNUP_STATES),
        Index(
            "uq_slot_signups_live_place",
            "shift_id",
            "slot_id",
            unique=True,
            postgresql_where=text(LIVE_SIGNUP_SQL),
            sqlite_where=text(LIVE_SIGNUP_SQL),
        ),
        Index(None, "member_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("task_shifts.id", ondelete="CASCADE"), index=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("task_slots.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(12))
    explanation: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    answered_at: Mapped[datetime | None]


class SectorGoal(Base):
    """A monthly goal a community (or, with no community, the region) sets for a sector: hours of work given,
    or slots filled. Stock goals are the communities' need levels (NeedLevel)."""

    __tablename__ = "sector_goals"
    __table_args__ = (
        UniqueConstraint("community_id", "sector", "month", "kind"),
        one_of("sector", BOARD_SECTORS),
        one_of("kind", GOAL_KINDS),
        CheckConstraint("target > 0", name="target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    sector: Mapped[str] = mapped_column(String(16))
    month: Mapped[str] = mapped_column(String(7))  # "2026-12"
    kind: Mapped[str] = mapped_column(String(8))
    target: Mapped[float]
    set_by: Mapped[str] = mapped_column(String(48), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
