"""Delivery plans: shipments of goods between sites, and the routes volunteers drive to carry them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, utcnow
from gateway.store.models.vocab import (
    DRIVER_ACTION_KINDS,
    PLAN_RUN_OUTCOMES,
    PLAN_STATUSES,
    ROUTE_STATUSES,
    SHIPMENT_STATUSES,
    STOP_ACTIONS,
    STOP_STATUSES,
    one_of,
)


class DeliveryPlan(Base):
    """One run of the planner: a suggestion people accept or decline."""

    __tablename__ = "delivery_plans"
    __table_args__ = (one_of("status", PLAN_STATUSES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    solver_status: Mapped[str] = mapped_column(String(40), default="")
    objective: Mapped[float | None]
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Shipment(Base):
    """A quantity of one good to move from one site to another."""

    __tablename__ = "shipments"
    __table_args__ = (
        one_of("status", SHIPMENT_STATUSES),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("from_site_id <> to_site_id", name="distinct_sites"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("delivery_plans.id", ondelete="CASCADE"), index=True)
    good_id: Mapped[int] = mapped_column(ForeignKey("goods.id"))
    from_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    to_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    quantity: Mapped[float]
    status: Mapped[str] = mapped_column(String(16), default="planned")
    route_id: Mapped[int | None] = mapped_column(ForeignKey("routes.id", ondelete="SET NULL"))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    # A shipment to another community node, from a plan both communities accepted ("<origin>/<seq>#<id>"):
    # the local planner never revises it, and its goods leave this node's ledger at pickup (the receiving
    # node books them when it learns of the delivery).
    fed_ref: Mapped[str | None] = mapped_column(String(120), unique=True)


class Route(Base):
    """An ordered trip for one driver and vehicle."""

    __tablename__ = "routes"
    __table_args__ = (
        one_of("status", ROUTE_STATUSES),
        CheckConstraint("distance_km >= 0 AND duration_min >= 0", name="length"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("delivery_plans.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    vehicle_id: Mapped[int | None] = mapped_column(ForeignKey("vehicles.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    distance_km: Mapped[float] = mapped_column(default=0.0)
    duration_min: Mapped[float] = mapped_column(default=0.0)
    # When the driver is expected to leave home and be back (the planner keeps it inside their time).
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("routes.id", ondelete="SET NULL"))
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    # Set while the route waits for a coordinator's approval (gateway.store.planner): the notice its driver
    # gets once it is approved. A held route is not offered to its driver.
    held_notice: Mapped[dict[str, Any] | None]


class RouteStop(Base):
    """One stop of a route, in order: pick up or deliver a shipment at a site."""

    __tablename__ = "route_stops"
    __table_args__ = (
        UniqueConstraint("route_id", "position"),
        one_of("action", STOP_ACTIONS),
        one_of("status", STOP_STATUSES),
        CheckConstraint("position >= 0", name="position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id", ondelete="CASCADE"))
    position: Mapped[int]
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    action: Mapped[str] = mapped_column(String(16))
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    eta: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="pending")


class DriverAction(Base):
    """A driver's action (picked up, delivered, failed, accept, decline) under the id their phone made for
    it: recorded once, so a phone re-sending its offline queue gets the first answer back and nothing is
    applied twice. `refused` is None when it was applied, else the kind of refusal (invalid, not_found,
    conflict) with its message."""

    __tablename__ = "driver_actions"
    __table_args__ = (one_of("kind", DRIVER_ACTION_KINDS),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID, lowercase
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id", ondelete="CASCADE"), index=True)
    stop_id: Mapped[int | None]
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    asked: Mapped[dict[str, Any]] = mapped_column(default=dict)  # quantity and reason, as sent
    refused: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(600), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlannerControl(Base):
    """What coordinators ask of the delivery planner (one row, id 1): pause it, re-plan now, hold new routes
    for approval. The planner reads it before each run (gateway.store.planner)."""

    __tablename__ = "planner_control"

    id: Mapped[int] = mapped_column(primary_key=True)
    paused: Mapped[bool] = mapped_column(default=False)
    require_approval: Mapped[bool] = mapped_column(default=False)
    replan_requested_at: Mapped[datetime | None]
    changed_by: Mapped[str] = mapped_column(String(64), default="")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_by: Mapped[str] = mapped_column(String(64), default="")
    approved_at: Mapped[datetime | None]


class PlanRun(Base):
    """One run of the delivery planner as coordinators see it: when, why it ran, what it planned, what share
    of each shortage it covers and what it could not reach, and why."""

    __tablename__ = "plan_runs"
    __table_args__ = (one_of("outcome", PLAN_RUN_OUTCOMES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
    trigger: Mapped[str] = mapped_column(String(16), default="timer")
    outcome: Mapped[str] = mapped_column(String(16))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_plans.id", ondelete="SET NULL"))
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # counts: shipments, kg, routes, ...
    shortfalls: Mapped[list[Any]] = mapped_column(default=list)  # per (community, good): need, planned, why
    unrouted: Mapped[list[Any]] = mapped_column(default=list)  # planned goods no route carries, by reason
    error: Mapped[str] = mapped_column(String(500), default="")
