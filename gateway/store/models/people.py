"""Members who volunteer as crew or drivers, their skills, hours and vehicles."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.store.models.base import Base, utcnow
from gateway.store.models.vocab import VEHICLE_KINDS, WORK_SECTORS, one_of


class Member(Base):
    """A person of a community; roles are opt-in and every suggestion can be declined."""

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("hours_per_week >= 0", name="hours_per_week"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    lat: Mapped[float]
    lon: Mapped[float]
    is_crew: Mapped[bool] = mapped_column(default=False)
    is_driver: Mapped[bool] = mapped_column(default=False)
    hours_per_week: Mapped[float] = mapped_column(default=0.0)
    availability: Mapped[list[Any] | None]  # weekly windows: [{"day": 0-6, "start": "08:00", "end": "12:00"}]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    skills: Mapped[list[MemberSkill]] = relationship(cascade="all, delete-orphan")


class MemberSkill(Base):
    """One skill of one member (pump-mechanic, electrician, refrigeration, ...)."""

    __tablename__ = "member_skills"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    skill: Mapped[str] = mapped_column(String(48), primary_key=True)


class ContributedHours(Base):
    """Hours a member gave to a sector in a period; the fairness term of repair assignment reads these."""

    __tablename__ = "contributed_hours"
    __table_args__ = (one_of("sector", WORK_SECTORS), CheckConstraint("hours >= 0", name="hours"))

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    sector: Mapped[str] = mapped_column(String(16), primary_key=True)
    period_start: Mapped[date] = mapped_column(primary_key=True)
    hours: Mapped[float] = mapped_column(default=0.0)


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
