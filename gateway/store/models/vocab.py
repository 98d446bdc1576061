"""Closed vocabularies of the store, enforced by CHECK constraints on both databases."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import CheckConstraint

from gateway.contract.protocol import DEVICE_KINDS

SITE_KINDS = ("farm", "pump", "storage", "clinic", "workshop")
GOOD_SECTORS = ("water", "food", "health", "energy", "other")
# Sectors in which members contribute hours (the community baseline counts these, see logistics).
WORK_SECTORS = ("water", "food", "health", "energy", "education", "maintenance", "governance", "other")
DEVICE_STATES = ("unknown", "online", "offline", "stale", "fault")
LEDGER_SOURCES = ("initial", "sensor", "delivery", "adjustment")
READING_KINDS = ("telemetry", "stock")
SEVERITIES = ("critical", "high", "medium", "low")
FAULT_STATUSES = ("open", "cleared")
TASK_STATUSES = (
    "open",
    "assigned",
    "accepted",
    "in_progress",
    "fixed_pending",
    "closed",
    "escalated",
)
TASK_EVENTS = (
    "created",
    "assigned",
    "accepted",
    "declined",
    "started",
    "marked_fixed",
    "confirmed",
    "closed",
    "reassigned",
    "escalated",
)
PLAN_STATUSES = ("proposed", "active", "done", "superseded")
SHIPMENT_STATUSES = ("planned", "assigned", "picked_up", "delivered", "failed", "cancelled")
ROUTE_STATUSES = ("proposed", "accepted", "declined", "in_progress", "done")
STOP_ACTIONS = ("pickup", "delivery")
STOP_STATUSES = ("pending", "done", "failed")
# Who holds an MQTT account: a sensor box, a member's phone app, or the gateway service.
BROKER_ACCOUNT_KINDS = ("device", "member", "gateway")
VEHICLE_KINDS = ("car", "pickup", "van", "truck", "motorcycle", "bicycle", "boat")

__all__ = ["DEVICE_KINDS"]


def one_of(column: str, values: Sequence[str], name: str | None = None) -> CheckConstraint:
    """CHECK (column IN (...)) named after the column."""
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name or column)
