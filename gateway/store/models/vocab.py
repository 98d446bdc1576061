"""Closed vocabularies of the store, enforced by CHECK constraints on both databases."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import CheckConstraint

from gateway.contract.payloads import DEVICE_KINDS

SITE_KINDS = ("farm", "pump", "storage", "clinic", "workshop")
GOOD_SECTORS = ("water", "food", "health", "energy", "other")
# Sectors in which members contribute hours (the community baseline counts these, see logistics).
WORK_SECTORS = ("water", "food", "health", "energy", "education", "maintenance", "governance", "other")
DEVICE_STATES = ("unknown", "online", "offline", "stale", "fault")


class LedgerSource(StrEnum):
    """Where a stock change came from (gateway.store.stock writes every ledger row)."""

    INITIAL = "initial"
    SENSOR = "sensor"
    DELIVERY = "delivery"
    ADJUSTMENT = "adjustment"


class FaultStatus(StrEnum):
    """A fault is open until the data clears it."""

    OPEN = "open"
    CLEARED = "cleared"


class TaskStatus(StrEnum):
    """A repair task's state; gateway.store.tasks holds the transitions between them."""

    OPEN = "open"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    FIXED_PENDING = "fixed_pending"
    CLOSED = "closed"
    ESCALATED = "escalated"


class TaskEventKind(StrEnum):
    """What a task_events row records."""

    CREATED = "created"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    STARTED = "started"
    MARKED_FIXED = "marked_fixed"
    CONFIRMED = "confirmed"
    CLOSED = "closed"
    REASSIGNED = "reassigned"
    ESCALATED = "escalated"


class PlanStatus(StrEnum):
    """A delivery plan's state."""

    PROPOSED = "proposed"
    ACTIVE = "active"
    DONE = "done"
    SUPERSEDED = "superseded"


class ShipmentStatus(StrEnum):
    """A shipment's state; gateway.store.deliveries holds the transitions between them."""

    PLANNED = "planned"
    ASSIGNED = "assigned"
    PICKED_UP = "picked_up"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RouteStatus(StrEnum):
    """A driver's route's state; gateway.store.deliveries holds the transitions between them."""

    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    SUPERSEDED = "superseded"  # the planner revised it before it was accepted: see the route replacing it
    WITHDRAWN = "withdrawn"  # the planner took it back before it was accepted (nothing left to carry)


class WorkKind(StrEnum):
    """What an hours entry counts: a repair task, a delivery route or a board slot (its signup's id)."""

    REPAIR = "repair"
    ROUTE = "route"
    TASK = "task"  # a board slot signup
    HELP = "help"  # a neighbour's repair task a member helps with (its fed_help row's id)


class HoursState(StrEnum):
    """An hours entry's state: offered (planned), reserved (accepted), done (actual hours), released."""

    OFFERED = "offered"
    RESERVED = "reserved"
    DONE = "done"
    RELEASED = "released"


class HelpState(StrEnum):
    """A member's offer to help with a neighbour node's repair task (gateway.federation.help)."""

    OFFERED = "offered"  # published; the task's node has not answered
    ACCEPTED = "accepted"  # the task's node took it and the hours are reserved
    REFUSED = "refused"  # the task's node took another helper, or the task was taken or closed
    WITHDRAWN = "withdrawn"  # the member (or the hours ledger: over the offer) took it back
    DONE = "done"  # the task closed with this helper: the hours count as given


class BoardTaskStatus(StrEnum):
    """A board task is open until its poster cancels it or its last occurrence is over."""

    OPEN = "open"
    CANCELLED = "cancelled"
    DONE = "done"


class ShiftStatus(StrEnum):
    """One occurrence of a board task."""

    OPEN = "open"
    CANCELLED = "cancelled"
    DONE = "done"


class SignupState(StrEnum):
    """A person in a board slot; gateway.store.board holds the moves between them."""

    SUGGESTED = "suggested"  # the matcher asked; they have not answered
    TAKEN = "taken"  # they opted in, or accepted a suggestion
    DECLINED = "declined"  # they said no to a suggestion (no reason needed)
    RELEASED = "released"  # they stepped back, or the task changed or was cancelled
    LAPSED = "lapsed"  # a suggestion nobody answered in time
    DONE = "done"  # the shift is over: the hours count as given


class PosterKind(StrEnum):
    """Who posted a board task."""

    MEMBER = "member"
    GUILD = "guild"
    ASSEMBLY = "assembly"
    COORDINATOR = "coordinator"


class GoalKind(StrEnum):
    """What a monthly sector goal counts."""

    HOURS = "hours"  # hours of work given in the sector
    SLOTS = "slots"  # board places filled in the sector


class StopAction(StrEnum):
    """What a driver does at a route stop."""

    PICKUP = "pickup"
    DELIVERY = "delivery"


class StopStatus(StrEnum):
    """A route stop's state: pending until the driver records it done or failed."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class DriverActionKind(StrEnum):
    """What a driver's page sends, each once under its own action id (gateway.store.route_actions)."""

    PICKED_UP = "picked_up"
    DELIVERED = "delivered"
    FAILED = "failed"
    ACCEPT = "accept"
    DECLINE = "decline"  # a proposed route, or an accepted one given back before it starts


def _values(vocabulary: type[StrEnum]) -> tuple[str, ...]:
    """The plain string values, in declaration order (the CHECK constraints list them in this order)."""
    return tuple(member.value for member in vocabulary)


LEDGER_SOURCES = _values(LedgerSource)
READING_KINDS = ("telemetry", "stock")
SEVERITIES = ("critical", "high", "medium", "low")
FAULT_STATUSES = _values(FaultStatus)
TASK_STATUSES = _values(TaskStatus)
TASK_EVENTS = _values(TaskEventKind)
PLAN_STATUSES = _values(PlanStatus)
# How a delivery planner run ended (plan_runs.outcome): planned, skipped while paused, or failed.
PLAN_RUN_OUTCOMES = ("planned", "paused", "failed")
SHIPMENT_STATUSES = _values(ShipmentStatus)
ROUTE_STATUSES = _values(RouteStatus)
STOP_ACTIONS = _values(StopAction)
STOP_STATUSES = _values(StopStatus)
DRIVER_ACTION_KINDS = _values(DriverActionKind)
WORK_KINDS = _values(WorkKind)
HOURS_STATES = _values(HoursState)
HELP_STATES = _values(HelpState)
BOARD_TASK_STATUSES = _values(BoardTaskStatus)
SHIFT_STATUSES = _values(ShiftStatus)
SIGNUP_STATES = _values(SignupState)
POSTER_KINDS = _values(PosterKind)
GOAL_KINDS = _values(GoalKind)
# The sectors of people's offers and of the board (water and energy work counts as maintenance or other).
BOARD_SECTORS = ("food", "education", "health", "maintenance", "governance", "other")
# Who holds an MQTT account: a sensor box, a member's phone app, the gateway service, a community broker's
# bridge, a named service process with its own topic list, or a peer node of a federation.
BROKER_ACCOUNT_KINDS = ("device", "member", "gateway", "bridge", "service", "node")
# What the security audit trail records (gateway/store/audit.py); a new kind needs a migration of the CHECK.
SECURITY_EVENT_KINDS = (
    "login_ok",
    "login_failed",
    "throttled",
    "logout",
    "session_ended",
    "account_added",
    "account_changed",
    "account_removed",
    "credentials_provisioned",
    "credentials_rotated",
    "credentials_revoked",
    "plan_requested",
    "plan_paused",
    "plan_resumed",
    "plan_approved",
    "plan_approval_set",
)
BRIDGE_LINK_STATES = ("up", "down")
VEHICLE_KINDS = ("car", "pickup", "van", "truck", "motorcycle", "bicycle", "boat")

__all__ = ["DEVICE_KINDS"]


def one_of(column: str, values: Sequence[str], name: str | None = None) -> CheckConstraint:
    """CHECK (column IN (...)) named after the column."""
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name or column)
