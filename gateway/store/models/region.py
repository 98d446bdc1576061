"""Places, devices, goods, stock and needs: what the region is made of."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.store.models.base import Base, BigId, utcnow
from gateway.store.models.vocab import (
    DEVICE_KINDS,
    DEVICE_STATES,
    GOOD_SECTORS,
    LEDGER_SOURCES,
    SITE_KINDS,
    one_of,
)


class Community(Base):
    """A town, barrio or settlement that holds stock and has needs."""

    __tablename__ = "communities"
    __table_args__ = (
        CheckConstraint("population >= 0", name="population"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float]
    lon: Mapped[float]
    population: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sites: Mapped[list[Site]] = relationship(back_populates="community", cascade="all, delete-orphan")


class Site(Base):
    """A farm, pump, storage hub, clinic or workshop belonging to one community."""

    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("community_id", "slug"),
        one_of("kind", SITE_KINDS),
        CheckConstraint("people_served >= 0", name="people_served"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    lat: Mapped[float]
    lon: Mapped[float]
    people_served: Mapped[int] = mapped_column(default=0)

    community: Mapped[Community] = relationship(back_populates="sites")
    devices: Mapped[list[Device]] = relationship(back_populates="site")


class Device(Base):
    """A sensor box; its slug is its MQTT identity, unique across the region."""

    __tablename__ = "devices"
    __table_args__ = (
        one_of("kind", DEVICE_KINDS),
        one_of("state", DEVICE_STATES),
        CheckConstraint("expected_interval_s > 0", name="expected_interval_s"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(48), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # A reference to the credentials (e.g. the broker username), never the secret itself.
    credential_ref: Mapped[str | None] = mapped_column(String(100))
    expected_interval_s: Mapped[int] = mapped_column(default=60)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    state_changed_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    last_seq: Mapped[int | None] = mapped_column(BigId)
    session: Mapped[int | None] = mapped_column(BigId)  # birth/will pairing counter (Sparkplug bdSeq)

    site: Mapped[Site] = relationship(back_populates="devices")


class Good(Base):
    """An item of the catalogue: water, rice, insulin, solar lamps..."""

    __tablename__ = "goods"
    __table_args__ = (
        one_of("sector", GOOD_SECTORS),
        CheckConstraint("perishability_hours IS NULL OR perishability_hours > 0", name="perishability"),
        CheckConstraint("weight_kg_per_unit >= 0", name="weight"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(20))
    sector: Mapped[str] = mapped_column(String(16))
    essential: Mapped[bool] = mapped_column(default=False)
    perishability_hours: Mapped[float | None]
    weight_kg_per_unit: Mapped[float] = mapped_column(default=1.0)


class Stock(Base):
    """Current quantity of one good at one site; every change also lands in the ledger."""

    __tablename__ = "stock"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity"),)

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    good_id: Mapped[int] = mapped_column(ForeignKey("goods.id"), primary_key=True)
    quantity: Mapped[float] = mapped_column(default=0.0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StockLedgerEntry(Base):
    """Append-only history of stock changes, each with a reason and a source (triggers forbid edits)."""

    __tablename__ = "stock_ledger"
    __table_args__ = (
        one_of("source", LEDGER_SOURCES),
        CheckConstraint("quantity_after >= 0", name="quantity_after"),
        Index(None, "site_id", "good_id", "created_at"),
        Index(None, "created_at"),  # the planner's recent use of every community (logistics.loader)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No cascades: an audit trail blocks deleting what it refers to rather than being rewritten.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    good_id: Mapped[int] = mapped_column(ForeignKey("goods.id"))
    delta: Mapped[float]
    quantity_after: Mapped[float]
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int | None] = mapped_column(BigId)
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NeedLevel(Base):
    """How much of a good a community must hold (minimum) and wants to hold (target)."""

    __tablename__ = "need_levels"
    __table_args__ = (CheckConstraint("minimum >= 0 AND target >= minimum", name="levels"),)

    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    good_id: Mapped[int] = mapped_column(ForeignKey("goods.id"), primary_key=True)
    minimum: Mapped[float]
    target: Mapped[float]
