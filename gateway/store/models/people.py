"""Members who volunteer as crew or drivers: what they offer (hours, time, skills), the hours they gave, and
the vehicles they lend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.store.models.base import Base, BigId, utcnow
from gateway.store.models.vocab import HOURS_STATES, VEHICLE_KINDS, WORK_KINDS, WORK_SECTORS, one_of


class Member(Base):
    """A person of a community; roles are opt-in and every suggestion can be declined."""

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("hours_per_week >= 0", name="hours_per_week"),
        CheckConstraint("hours_per_year >= 0", name="hours_per_year"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    lat: Mapped[float]
    lon: Mapped[float]
    is_crew: Mapped[bool] = mapped_column(default=False)
    is_driver: Mapped[bool] = mapped_column(default=False)
    # The offer: the weekly pledge (the hard limit in any week), the year's hours and their split by sector
    # (None: the baseline, see gateway.store.offers), the sectors they prefer, and when they are free.
    hours_per_week: Mapped[float] = mapped_column(default=0.0)
    hours_per_year: Mapped[float] = mapped_column(default=150.0)
    sector_hours: Mapped[dict[str, Any] | None]
    preferred_sectors: Mapped[list[Any] | None]
    availability: Mapped[list[Any] | None]  # weekly windows: [{"day": 0-6, "start": "08:00", "end": "12:00"}]
    away: Mapped[list[Any] | None]  # [{"from": "2026-12-20", "to": "2027-01-06"}], both days included
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The secret in the private address of their calendar feed (what they took); None until first shown.
    calendar_token: Mapped[str | None] = mapped_column(String(64), unique=True)

    skills: Mapped[list[MemberSkill]] = relationship(cascade="all, delete-orphan")


class MemberSkill(Base):
    """One skill of one member (pump-mechanic, electrician, refrigeration, ...)."""

    __tablename__ = "member_skills"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    skill: Mapped[str] = mapped_column(String(48), primary_key=True)


class HoursEntry(Base):
    """One person's hours for one piece of work: offered when planned, reserved when accepted, done with the
    actual hours, or released (declined, withdrawn). Only gateway.store.hours writes these rows."""

    __tablename__ = "hours_entries"
    __table_args__ = (
        UniqueConstraint("work", "work_id", "member_id"),
        one_of("work", WORK_KINDS),
        one_of("sector", WORK_SECTORS),
        one_of("state", HOURS_STATES),
        CheckConstraint("hours >= 0 AND (actual_hours IS NULL OR actual_hours >= 0)", name="hours"),
        CheckConstraint("ends_at >= starts_at", name="interval"),
        Index("ix_hours_entries_member_id_starts_at", "member_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    work: Mapped[str] = mapped_column(String(8))
    work_id: Mapped[int]
    sector: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(10), default="offered")
    hours: Mapped[float]
    actual_hours: Mapped[float | None]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Decline(Base):
    """A person said no to a task or to a route's shipments (by lane: good, from, to, so a re-planned shipment
    of the same lane is still theirs to refuse): planners do not ask them again before `until`, unless they
    withdraw the decline (they ask for it after all)."""

    __tablename__ = "declines"
    __table_args__ = (Index("ix_declines_member_id_until", "member_id", "until"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    until: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    task_id: Mapped[int | None] = mapped_column(ForeignKey("repair_tasks.id", ondelete="CASCADE"))
    board_task_id: Mapped[int | None] = mapped_column(ForeignKey("board_tasks.id", ondelete="CASCADE"))
    route_id: Mapped[int | None] = mapped_column(ForeignKey("routes.id", ondelete="CASCADE"))
    good_id: Mapped[int | None] = mapped_column(ForeignKey("goods.id", ondelete="CASCADE"))
    from_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    to_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    withdrawn_at: Mapped[datetime | None]


class Vehicle(Base):
    """A vehicle a driver lends to deliveries."""

    __tablename__ = "vehicles"
    __table_args__ = (one_of("kind", VEHICLE_KINDS), CheckConstraint("capacity_kg > 0", name="capacity"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    capacity_kg: Mapped[float]
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    active: Mapped[bool] = mapped_column(default=True)
